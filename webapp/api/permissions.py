"""Who may do what through the API: the pages' rules, from webapp/accounts/services.py.

- Reading: any member of the object's team (viewer included). Another team's object is 404, never
  403, so ids do not reveal what exists.
- Submitting runs and sweeps, uploading datasets, cancelling runs and sweeps: owner, admin, member
  (`can_submit`), as on the pages (the run page's Cancel button is offered to every submitter of the team).
- Editing a run (name, tags, notes, star, archive): `can_edit_run` (owner/admin any run of the team,
  a member their own runs).
"""

from rest_framework import serializers
from rest_framework.exceptions import NotFound, PermissionDenied

from webapp import params
from webapp.accounts.services import can_edit_run, can_submit, teams_for
from webapp.datasets.models import Dataset
from webapp.runs.models import Run
from webapp.sweeps.models import Sweep
from webapp.sweeps.services import with_trial_counts

VIEWER_MESSAGE = "Viewers cannot {what}; ask a team owner or admin for the member role."
EDIT_MESSAGE = "You can edit only your own runs (owners and admins: any run of the team)."


# What a run's representation reads with it; its trial (sweep id, number) without the trial's JSON.
RUN_RELATED = ("team", "dataset", "cluster", "created_by", "sweep_trial")
RUN_TRIAL_DEFER = ("sweep_trial__params", "sweep_trial__system_attrs", "sweep_trial__status_reason")


def visible_runs(user):
    return Run.objects.for_user(user)


def team_run(user, pk) -> Run:
    run = visible_runs(user).select_related(*RUN_RELATED).defer(*RUN_TRIAL_DEFER).filter(pk=pk).first()
    if run is None:
        raise NotFound("No such run.")
    return run


def team_dataset(user, pk) -> Dataset:
    ds = Dataset.objects.for_user(user).select_related("team", "created_by").filter(pk=pk).first()
    if ds is None:
        raise NotFound("No such dataset.")
    return ds


def visible_sweeps(user):
    """The user's teams' sweeps, with what their representation reads (trial counts included)."""
    qs = Sweep.objects.for_user(user).select_related("team", "dataset", "cluster", "created_by")
    return with_trial_counts(qs)


def team_sweep(user, pk) -> Sweep:
    sweep = visible_sweeps(user).filter(pk=pk).first()
    if sweep is None:
        raise NotFound("No such sweep.")
    return sweep


def require_submit(user, team, what: str) -> None:
    if not can_submit(user, team):
        raise PermissionDenied(VIEWER_MESSAGE.format(what=what))


def require_cancel(user, run: Run) -> None:
    require_submit(user, run.team, "cancel runs")


def require_edit(user, run: Run) -> None:
    if not can_edit_run(user, run):
        if not can_submit(user, run.team):
            raise PermissionDenied(VIEWER_MESSAGE.format(what="edit runs"))
        raise PermissionDenied(EDIT_MESSAGE)


def teams_param(user, raw):
    """The user's teams, or the one `raw` (an id or a slug) names; a malformed value → BadParam (400),
    another team or none → ValidationError."""
    teams = teams_for(user)
    if raw in (None, ""):
        return teams
    ref = params.id_or_slug(raw, "team")
    team = teams.filter(pk=ref).first() if isinstance(ref, int) else teams.filter(slug=ref).first()
    if team is None:
        raise serializers.ValidationError({"team": ["No such team among yours."]})
    return teams.filter(pk=team.pk)


def write_team(request, raw):
    """The team a submit or upload goes to: the one named (id or slug); else the user's only team, or
    the team chosen in the browser session. Several teams and none named: the client must say."""
    teams = teams_param(request.user, raw)
    if raw not in (None, ""):
        return teams.get()
    count = teams.count()
    if count == 0:
        raise PermissionDenied("You are not a member of any team; ask an admin to add you.")
    if count == 1:
        return teams.get()
    chosen = getattr(request, "session", None) and request.session.get("team_id")
    team = teams.filter(pk=chosen).first() if chosen else None
    if team is None:
        names = ", ".join(f"{t.slug} ({t.pk})" for t in teams[:20])
        raise serializers.ValidationError({"team": [f"You are in several teams; say which (id or slug): {names}."]})
    return team
