"""Teams and roles: which team a request works in, what each role may do, managing members.

Roles (Membership.Role), strongest first:
- owner:  everything an admin can, and makes, changes or removes owners;
- admin:  manages members (adds users, changes roles other than owner, removes them), edits any run;
- member: submits runs and uploads, edits their own runs (name, tags, notes, star, archive);
- viewer: reads only.

The helpers take a user and a team (or a run) and answer from the database; views and the API both
call them. A user with no membership in the team has no role: every `can_*` answers False.
"""

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404

from .models import Membership, Team

Role = Membership.Role
MANAGERS = frozenset({Role.OWNER, Role.ADMIN})
SUBMITTERS = frozenset({Role.OWNER, Role.ADMIN, Role.MEMBER})


def teams_for(user):
    return Team.objects.filter(memberships__user=user).order_by("name")


def current_team(request):
    """The team the user works in: the one chosen in the session, else their first."""
    teams = teams_for(request.user)
    chosen = request.session.get("team_id")
    team = teams.filter(pk=chosen).first() if chosen else None
    team = team or teams.first()
    if team is None:
        raise Http404("You are not a member of any team; ask an admin to add you.")
    return team


def _team_id(team) -> int:
    return team if isinstance(team, int) else team.pk


def role_of(user, team) -> str | None:
    """The user's role in `team` (a Team or its id): "owner", "admin", "member", "viewer", or None."""
    if user is None or not user.is_authenticated:
        return None
    return Membership.objects.filter(team_id=_team_id(team), user=user).values_list("role", flat=True).first()


def can_view(user, team) -> bool:
    return role_of(user, team) is not None


def can_submit(user, team) -> bool:
    """Submit runs, upload datasets and models: owner, admin, member."""
    return role_of(user, team) in SUBMITTERS


def can_manage_members(user, team) -> bool:
    return role_of(user, team) in MANAGERS


def can_edit_run_as(role: str | None, user, run) -> bool:
    """can_edit_run when the user's role in the run's team is already known (one query per page)."""
    if role in MANAGERS:
        return True
    return role == Role.MEMBER and run.created_by_id is not None and run.created_by_id == user.pk


def can_edit_run(user, run) -> bool:
    """Rename, tag, annotate, star, archive: owner/admin any run of the team, a member their own runs."""
    return can_edit_run_as(role_of(user, run.team_id), user, run)


# ---------------------------------------------------------------- managing members


class MembershipError(ValueError):
    """A member change that is not allowed or makes no sense; the message is for the user."""


def members(team):
    return team.memberships.select_related("user").order_by("user__username")


def _check_manager(by, team) -> str:
    role = role_of(by, team)
    if role not in MANAGERS:
        raise PermissionDenied("Only the team's owners and admins manage its members.")
    return role


def _check_role(role: str) -> None:
    if role not in Role.values:
        raise MembershipError(f"Unknown role {role!r}; one of {', '.join(Role.values)}.")


def _owners(team) -> int:
    return team.memberships.filter(role=Role.OWNER).count()


def add_member(team, by, username: str, role: str = Role.MEMBER) -> Membership:
    """Add an existing user (accounts are made by a site admin) to `team`."""
    by_role = _check_manager(by, team)
    _check_role(role)
    if role == Role.OWNER and by_role != Role.OWNER:
        raise MembershipError("Only owners make other users owners.")
    username = (username or "").strip()
    user = get_user_model().objects.filter(username=username).first() if username else None
    if user is None:
        raise MembershipError(f"No user named {username[:150]!r}; a site admin creates accounts.")
    with transaction.atomic():
        if team.memberships.filter(user=user).exists():
            raise MembershipError(f"{user.username} is already in {team.name}.")
        return Membership.objects.create(team=team, user=user, role=role)


def _membership(team, membership_id) -> Membership:
    m = team.memberships.select_related("user").filter(pk=membership_id).first()
    if m is None:
        raise Http404("No such member.")
    return m


def change_role(team, by, membership_id, role: str) -> Membership:
    by_role = _check_manager(by, team)
    _check_role(role)
    with transaction.atomic():
        Team.objects.select_for_update().filter(pk=team.pk).first()  # one member change at a time per team
        m = _membership(team, membership_id)
        if Role.OWNER in (m.role, role) and by_role != Role.OWNER:
            raise MembershipError("Only owners make, change or remove owners.")
        if m.role == Role.OWNER and role != Role.OWNER and _owners(team) == 1:
            raise MembershipError(f"{m.user.username} is the team's last owner; make another owner first.")
        m.role = role
        m.save(update_fields=["role"])
    return m


def remove_member(team, by, membership_id) -> Membership:
    by_role = _check_manager(by, team)
    with transaction.atomic():
        Team.objects.select_for_update().filter(pk=team.pk).first()
        m = _membership(team, membership_id)
        if m.role == Role.OWNER and by_role != Role.OWNER:
            raise MembershipError("Only owners make, change or remove owners.")
        if m.role == Role.OWNER and _owners(team) == 1:
            raise MembershipError(f"{m.user.username} is the team's last owner; make another owner first.")
        m.delete()
    return m
