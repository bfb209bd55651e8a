"""The run table page and run editing (name, tags, notes, star, archive), used by views and the API.

Edits check `can_edit_run` (webapp/accounts/services.py) and raise PermissionDenied otherwise; bad
values raise EditError with a message for the user.
"""

from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models.fields.json import KT

from webapp.accounts.services import MANAGERS, SUBMITTERS, can_edit_run, can_edit_run_as, role_of
from webapp.catalog.registry import TEMPLATES
from webapp.datasets.models import Dataset
from webapp.params import CONTROL_MESSAGE, has_control_characters
from webapp.runs.models import Run, TagError
from webapp.runs.states import Status
from webapp.sweeps.models import Sweep

from . import filters, table

MAX_NAME = Run._meta.get_field("name").max_length
MAX_NOTES = 20_000
# Big columns the table never shows: not read for 50 rows × every page view.
TABLE_DEFER = ("hyperparameters", "result", "backend_handle", "status_detail", "ingest_token")
# The JSON keys the Epochs cell reads (runs.models.training_length), with the JSON fields deferred.
LENGTH_KEYS = {
    "hp_head": KT("hyperparameters__head"),
    "hp_max_iter": KT("hyperparameters__max_iter"),
    "result_iterations": KT("result__iterations"),
}


class EditError(ValueError):
    pass


def team_runs(team):
    """Every run of `team`, with what a table row shows, ready for filter_runs and table.page."""
    return (
        Run.objects.filter(team=team)
        .select_related("dataset", "cluster", "created_by")
        .defer(*TABLE_DEFER)
        .annotate(**LENGTH_KEYS)
    )


@dataclass
class TableView:
    """What the run table page shows for one request."""

    team: object
    columns: list
    sort: str
    page: table.Page | None = None
    error: str = ""
    notice: str = ""
    role: str | None = None
    options: dict = field(default_factory=dict)
    form: dict = field(default_factory=dict)

    @property
    def status(self) -> int:
        return 400 if self.error else 200

    @property
    def headers(self) -> list[tuple]:
        """(column, the sort its header link asks for or None, ▲/▼ on the current sort column)."""
        out = []
        for col in self.columns:
            if col.path is None:
                out.append((col, None, ""))
            elif self.sort == col.key:
                out.append((col, f"-{col.key}", "▲"))
            elif self.sort == f"-{col.key}":
                out.append((col, col.key, "▼"))
            else:  # text A→Z first; numbers and times highest/latest first
                out.append((col, col.key if col.kind == "text" else f"-{col.key}", ""))
        return out

    @property
    def can_submit(self) -> bool:
        return self.role in SUBMITTERS

    @property
    def can_manage(self) -> bool:
        return self.role in MANAGERS


def table_view(user, team, params) -> TableView:
    """Filter, sort and page `team`'s runs by the URL `params`; a bad parameter becomes `error`."""
    role = role_of(user, team)
    defaults = [table.COLUMNS[k] for k in table.DEFAULT_COLUMNS]
    view = TableView(team=team, columns=defaults, sort=table.DEFAULT_SORT, role=role)
    view.options = filter_options(team)
    view.form = form_state(params)
    try:
        view.columns, view.notice = table.parse_cols(params)
        sort = filters.text_param(params, "sort") or table.DEFAULT_SORT
        col, desc = table.parse_sort(sort)
        view.sort = table.sort_key(col, desc)
        qs = filters.filter_runs(team_runs(team), params)
        view.page = table.page(qs, view.sort, filters.text_param(params, "cursor") or None, table.page_size(params))
    except filters.FilterError as exc:
        view.error = exc.message
        return view
    for run in view.page.items:
        run.editable = can_edit_run_as(role, user, run)
    return view


def filter_options(team) -> dict:
    """Choices for the filter form's selects."""
    users = get_user_model().objects.filter(memberships__team=team).order_by("username")
    return {
        "statuses": Status.choices,
        "templates": [(t.key, t.label) for t in TEMPLATES.values()],
        "datasets": list(Dataset.objects.filter(team=team).order_by("name").values_list("pk", "name")),
        "sweeps": [(s.pk, f"#{s.pk} {s}") for s in Sweep.objects.filter(team=team).order_by("-pk")[:200]],
        "submitters": list(users.values_list("username", flat=True)),
        "columns": list(table.COLUMNS.values()),
    }


def form_state(params) -> dict:
    """The filter form as the URL filled it in (raw values, for re-displaying them; bad ones blank)."""

    def safe(read, key, default):
        try:
            return read(params, key)
        except filters.FilterError:
            return default

    def values(key):
        return safe(filters.list_param, key, [])

    try:
        shown = {c.key for c in table.parse_cols(params)[0]}
    except filters.FilterError:
        shown = set(table.DEFAULT_COLUMNS)
    return {
        "status": {v.upper() for v in values("status")},
        "template": {v.lower() for v in values("template")},
        "dataset": set(values("dataset")),
        "sweep": set(values("sweep")),
        "submitter": set(values("submitter")),
        "tag": ", ".join(values("tag")),
        "shown": shown,
        **{k: safe(filters.text_param, k, "") for k in ("q", "expr", "since", "until", "archived", "starred", "size")},
    }


# ---------------------------------------------------------------- editing


def _check(user, run) -> None:
    if not can_edit_run(user, run):
        raise PermissionDenied("You can edit only your own runs (owners and admins: any run of the team).")


def update_run(user, run: Run, *, name: str | None = None, tags=None, notes: str | None = None) -> Run:
    """Change any of name, tags (a string "a, b c" or a list), notes. Raises PermissionDenied, EditError."""
    _check(user, run)
    if any("\x00" in str(v) for v in (name, tags, notes) if v is not None):
        raise EditError("Text may not contain NUL characters.")
    if name is not None and has_control_characters(name):
        raise EditError(f"A name: {CONTROL_MESSAGE}")
    fields = {}
    if name is not None:
        name = name.strip()
        if not name:
            raise EditError("A run needs a name.")
        if len(name) > MAX_NAME:
            raise EditError(f"A name has at most {MAX_NAME} characters.")
        fields["name"] = name
    if notes is not None:
        if len(notes) > MAX_NOTES:
            raise EditError(f"Notes have at most {MAX_NOTES} characters.")
        fields["notes"] = notes.replace("\r\n", "\n")
    with transaction.atomic():
        if tags is not None:
            try:
                run.set_tags(tags)
            except TagError as exc:
                raise EditError(f"Tags: {exc}") from None
        if fields:
            Run.objects.filter(pk=run.pk).update(**fields)
            for key, value in fields.items():
                setattr(run, key, value)
    return run


def set_starred(user, run: Run, starred: bool) -> Run:
    _check(user, run)
    Run.objects.filter(pk=run.pk).update(starred=bool(starred))
    run.starred = bool(starred)
    return run


def set_archived(user, run: Run, archived: bool) -> Run:
    """Archive (hide from the table by default) or restore a run; only a run that has ended is archived."""
    _check(user, run)
    if archived and not run.is_terminal:
        raise EditError(f"Run {run.pk} is {run.status}; archive it once it has ended.")
    Run.objects.filter(pk=run.pk).update(archived=bool(archived))
    run.archived = bool(archived)
    return run
