"""The model registry's rules (docs/registry.md): register a run's or an uploaded file's model as the
next version of a named model, set, move and remove aliases, archive versions, resolve a reference
(`name@alias`, `name/3`). Pages and the API only parse and call these.

A version is a copy: its files are copied out of the run dir (or the model file's folder) into
`<VAR_DIR>/registry/<team id>/<model id>/<version>/`, so deleting the source deletes nothing of it.
Every change of a model (a new version, an alias move, an archive) holds its row's lock, so version
numbers are handed out one at a time and an alias never points at a version being archived.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.db.models import Count, Max, Min, Prefetch
from django.utils import timezone

from webapp import params, safefiles
from webapp.accounts.services import SUBMITTERS, role_of
from webapp.datasets.ingest.info import read_info
from webapp.datasets.services import content_hash
from webapp.modelfiles.models import ModelFile
from webapp.runs import artifacts
from webapp.runs.models import MetricPoint, Run

from .models import (
    ALIAS_PATTERN,
    ALIAS_RE,
    NAME_PATTERN,
    NAME_RE,
    RESERVED_NAMES,
    Alias,
    AliasMove,
    ModelVersion,
    RegisteredModel,
)

log = logging.getLogger(__name__)

MAX_DESCRIPTION = 2000
MAX_VERSION = params.MAX_INT32
COPY_CHUNK = 1024 * 1024
MANIFEST = "version.json"  # beside the files: what a job loading the copy needs, without the database
VIEWER_MESSAGE = "Viewers cannot {what}; ask a team owner or admin for the member role."
# `name@alias` or `name/<version>`; ASCII digits only (re's \d would take other scripts' digits).
REF_RE = re.compile(rf"({NAME_PATTERN})(?:@({ALIAS_PATTERN})|/([0-9]{{1,10}}))")
NO_CHECK = object()  # set_alias/remove_alias: no expectation about where the alias points now


class RegistryError(ValueError):
    """A registry request that cannot be done; `errors` maps field → message. `missing`: what it names
    is not one of the user's teams' (the API answers 404 for a path); `conflict`: the alias moved
    meanwhile (409)."""

    def __init__(self, errors: dict, *, missing: bool = False, conflict: bool = False):
        self.errors = errors
        self.missing = missing
        self.conflict = conflict
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))


# --- checks -----------------------------------------------------------------------------------


def check_name(name) -> str:
    if not isinstance(name, str) or not name.strip():
        raise RegistryError({"name": "required: letters, digits and . _ - (at most 100)"})
    name = name.strip()
    if not NAME_RE.fullmatch(name):
        raise RegistryError(
            {"name": "use letters, digits and . _ - (starting with a letter or digit), at most 100 characters"}
        )
    if name in RESERVED_NAMES:
        raise RegistryError({"name": f"{name!r} is reserved; choose another name"})
    return name


def check_alias(alias) -> str:
    if not isinstance(alias, str) or not ALIAS_RE.fullmatch(alias):
        raise RegistryError(
            {"alias": "use lower-case letters, digits, _ and - (starting with a letter), at most 40 characters"}
        )
    return alias


def _text(value, field: str) -> str:
    """A description: free text (newlines too), never NUL (PostgreSQL cannot store it), bounded."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise RegistryError({field: "must be text"})
    if "\x00" in value:
        raise RegistryError({field: "Null characters are not allowed."})
    value = value.strip()
    if len(value) > MAX_DESCRIPTION:
        raise RegistryError({field: f"at most {MAX_DESCRIPTION} characters"})
    return value


def _require_submit(user, team, what: str, missing: dict) -> None:
    """Viewers are refused (PermissionDenied: 403); someone outside the team gets `missing` (404-like)."""
    role = role_of(user, team)
    if role is None:
        raise RegistryError(missing, missing=True)
    if role not in SUBMITTERS:
        raise PermissionDenied(VIEWER_MESSAGE.format(what=what))


# --- what a version records ------------------------------------------------------------------


def _finite(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def run_metrics(run: Run) -> dict:
    """The run's results as a version keeps them: held-out accuracy and loss, the best validation
    accuracy and lowest validation loss any epoch reported, training accuracy/loss, length."""
    out = {}
    for key in ("test_accuracy", "test_loss", "best_accuracy", "final_loss"):
        if _finite(getattr(run, key)):
            out[key] = getattr(run, key)
    if run.test_rows is not None:
        out["test_rows"] = run.test_rows
    val = MetricPoint.objects.filter(run=run, name__in=["val_accuracy", "val_loss"])
    found = val.values("name").annotate(high=Max("value"), low=Min("value")).order_by()
    for row in found:
        value = row["high"] if row["name"] == "val_accuracy" else row["low"]
        if _finite(value):
            out[row["name"]] = value
    result = run.result if isinstance(run.result, dict) else {}
    for key in ("epochs_run", "pruned_at_epoch", "iterations", "train_seconds"):
        if _finite(result.get(key)):
            out[key] = result[key]
    return out


def _preprocessing(dataset) -> dict:
    """What the job applied to the raw values (meta.json): features = (raw - offset) / scale, and a
    table's per-column standardization; {} when meta.json cannot be read."""
    try:
        info = read_info(dataset.storage_dir)
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    out = {"scale": info.scale, "offset": info.offset}
    if info.standardize:
        out["standardize"] = info.standardize
    if info.columns:
        out["columns"] = info.columns
    return out


def _layout_of(shape) -> str:
    # An uploaded model says nothing of its data: the input's rank is the best guess.
    return {3: "image", 2: "sequence", 1: "table"}.get(len(shape or []), "")


# --- copying ---------------------------------------------------------------------------------


def _copy_file(src, dest: Path) -> int:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with src, open(dest, "xb") as out:
        shutil.copyfileobj(src, out, COPY_CHUNK)
        return out.tell()


def _copy_tree(root: Path, rel: str, dest: Path) -> int:
    """The regular files under root/rel copied to dest/rel (bytes copied). Each is opened through
    webapp.safefiles, so a link planted in the run dir is skipped, never followed; unfinished writes
    (.tmp- names) are skipped too."""
    size = 0
    for folder, dirs, files in os.walk(root / rel):
        dirs[:] = sorted(d for d in dirs if not os.path.islink(os.path.join(folder, d)))
        for name in sorted(files):
            if ".tmp-" in name or name.startswith(".tmp"):
                continue
            path = Path(folder, name)
            try:
                src = safefiles.open_under(root, path)
            except safefiles.Refused:
                continue
            size += _copy_file(src, dest / path.relative_to(root))
    return size


def _place(version_dir: Path, fill: Callable[[Path], int]) -> int:
    """fill(tmp) copies the files into a temporary folder beside `version_dir`, which is then renamed
    into place: a failure leaves no partial copy. A folder already there is the leftover of a
    registration whose transaction rolled back (the database gave that number to nobody): replaced."""
    version_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=version_dir.parent))
    try:
        size = fill(tmp)
        if version_dir.exists():
            shutil.rmtree(version_dir)
        os.replace(tmp, version_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        with contextlib.suppress(OSError):
            version_dir.parent.rmdir()  # a new model's folder, empty again
        raise
    return size


def _manifest(version: ModelVersion) -> dict:
    return {
        "model": version.model.name,
        "version": version.version,
        "team": version.model.team_id,
        "source": version.source,
        "source_label": version.source_label,
        "template": version.template,
        "entry": version.entry,
        "layout": version.layout,
        "input_shape": version.input_shape,
        "class_names": version.class_names,
        "preprocessing": version.preprocessing,
        "hyperparameters": version.hyperparameters,
        "metrics": version.metrics,
        "dataset": {"name": version.dataset_name, "sha256": version.dataset_hash} if version.dataset_name else None,
    }


# --- registering ------------------------------------------------------------------------------


def check_run(run: Run) -> Path:
    """The run's main model file if its model can be registered, else RegistryError naming `run`."""
    if run.status != Run.Status.SUCCEEDED:
        raise RegistryError({"run": f"Run {run.pk} is {run.status}; only a succeeded run's model can be registered."})
    model_file = artifacts.model_path(run)
    if artifacts.file_stat(run, model_file) is None or os.path.islink(run.run_dir / "model"):
        raise RegistryError({"run": f"Run {run.pk} has no model files to register."})
    return model_file


def check_modelfile(mf: ModelFile) -> None:
    """RegistryError naming `modelfile` unless the uploaded file can be registered."""
    if mf.status != ModelFile.Status.READY:
        raise RegistryError(
            {"modelfile": f"Model file {mf.name} is {mf.status}; only a checked (READY) model file can be registered."}
        )
    if not safefiles.is_file_under(mf.storage_path.parent, mf.storage_path):
        raise RegistryError({"modelfile": f"Model file {mf.name} is missing from storage."})


def _locked_model(team, name: str, user, description: str) -> RegisteredModel:
    """The team's model `name`, its row locked for this transaction; made (with `description`) if new."""
    model = RegisteredModel.objects.select_for_update().filter(team=team, name=name).first()
    if model is not None:
        return model
    try:
        with transaction.atomic():
            return RegisteredModel.objects.create(team=team, name=name, description=description, created_by=user)
    except IntegrityError:  # a registration of the same new name committed first
        return RegisteredModel.objects.select_for_update().get(team=team, name=name)


def _register(team, name, user, description, model_description, fields: dict, copy, source_field) -> ModelVersion:
    """The next version of `name` (checked by the caller; made if new) with `fields`, its files copied
    by copy(tmp) → bytes."""
    description = _text(description, "description")
    model_description = _text(model_description, "model_description")
    with transaction.atomic():
        model = _locked_model(team, name, user, model_description)
        number = (model.versions.aggregate(n=Max("version"))["n"] or 0) + 1
        if number > MAX_VERSION:
            raise RegistryError({"name": f"model {name} has no version numbers left"})
        # The row first: its unique (model, version) holds the number while the files are copied.
        version = ModelVersion.objects.create(
            model=model,
            version=number,
            description=description,
            files_path=f"{team.pk}/{model.pk}/{number}",
            created_by=user,
            **fields,
        )

        def fill(tmp: Path) -> int:
            size = copy(tmp)
            (tmp / MANIFEST).write_text(json.dumps(_manifest(version), indent=2))
            return size

        try:
            size = _place(version.storage_dir, fill)
        except OSError as exc:  # the source vanished, a full disk, ...: nothing was placed
            why = exc.strerror or str(exc)
            raise RegistryError({source_field: f"The model files could not be copied: {why}."}) from exc
        try:
            ModelVersion.objects.filter(pk=version.pk).update(size_bytes=size)
            _touch(model)
        except BaseException:
            # Still under the model's lock: nobody else can have put files at this number.
            shutil.rmtree(version.storage_dir, ignore_errors=True)
            raise
        version.size_bytes = size
    log.info("registered %s/%s (team %s) from %s", name, number, team.pk, version.source_label)
    return version


def register_run(run: Run, name: str, description: str = "", user=None, model_description: str = "") -> ModelVersion:
    """Register the model a SUCCEEDED run exported (any template: the whole `model/` folder is copied,
    e.g. an MLlib head's `logreg/` and `featurizer.keras` with `model.zip`) as the next version of the
    run's team's model `name`."""
    _require_submit(user, run.team_id, "register models", {"run": "No such run."})
    name = check_name(name)
    model_file = check_run(run)
    ds = run.dataset
    names = list(ds.class_names) or [str(i) for i in range(ds.num_classes)]
    fields = dict(
        source=ModelVersion.Source.RUN,
        source_run=run,
        source_label=f"run {run.pk} · {run.name}".strip(" ·")[:300],
        template=run.template,
        hyperparameters=run.hyperparameters if isinstance(run.hyperparameters, dict) else {},
        metrics=run_metrics(run),
        dataset=ds,
        dataset_name=ds.name,
        dataset_hash=content_hash(ds),  # outside the lock: a big dataset takes a while, once
        layout=ds.layout,
        input_shape=list(ds.shape),
        class_names=names,
        preprocessing=_preprocessing(ds),
        entry=model_file.relative_to(run.run_dir).as_posix(),
    )

    def copy(tmp: Path) -> int:
        return _copy_tree(run.run_dir, "model", tmp)

    return _register(run.team, name, user, description, model_description, fields, copy, "run")


def register_modelfile(
    mf: ModelFile, name: str, description: str = "", user=None, model_description: str = ""
) -> ModelVersion:
    """Register a READY (checked) uploaded Keras file as the next version of its team's model `name`."""
    _require_submit(user, mf.team_id, "register models", {"modelfile": "No such model file."})
    name = check_name(name)
    check_modelfile(mf)
    path = mf.storage_path
    entry = f"model/{path.name}"
    fields = dict(
        source=ModelVersion.Source.FILE,
        source_modelfile=mf,
        source_label=f"model file {mf.pk} · {mf.name}"[:300],
        layout=_layout_of(mf.input_shape),
        input_shape=list(mf.input_shape),
        entry=entry,
    )

    def copy(tmp: Path) -> int:
        return _copy_file(safefiles.open_under(path.parent, path), tmp / entry)

    return _register(mf.team, name, user, description, model_description, fields, copy, "modelfile")


# --- aliases and archiving ------------------------------------------------------------------


def _lock(model: RegisteredModel) -> None:
    RegisteredModel.objects.select_for_update().filter(pk=model.pk).first()


def _touch(model: RegisteredModel) -> None:
    RegisteredModel.objects.filter(pk=model.pk).update(updated_at=timezone.now())


def _check_expected(alias: str, current: Alias | None, expected) -> None:
    """`expected`: the version number the alias should point at now, None for "not set yet"."""
    if expected is NO_CHECK:
        return
    now = current.version.version if current else None
    if now != expected:
        where = f"points at version {now}" if now else "is not set"
        was = f"version {expected}" if expected else "unset"
        raise RegistryError({"alias": f"{alias} now {where} (not {was}): someone moved it; reload."}, conflict=True)


def version_of(model: RegisteredModel, number, field: str = "version") -> ModelVersion:
    """Version `number` of `model`, or RegistryError naming `field`."""
    try:
        n = params.parse_int(number, field, min_value=1, max_value=MAX_VERSION)
    except params.BadParam as exc:
        raise RegistryError({field: exc.message}) from None
    version = model.versions.filter(version=n).first()
    if version is None:
        raise RegistryError({field: f"Model {model.name} has no version {n}."})
    return version


def set_alias(model: RegisteredModel, alias: str, version, user, expected=NO_CHECK) -> Alias:
    """Point `alias` of `model` at `version` (a ModelVersion of this model, or its number), making the
    alias if new; the move is recorded. Refused for an archived version or another model's."""
    _require_submit(user, model.team_id, "set aliases", {"model": "No such model."})
    alias = check_alias(alias)
    if not isinstance(version, ModelVersion):
        version = version_of(model, version)
    if version.model_id != model.pk:
        raise RegistryError({"version": f"That version is of another model, not {model.name}."})
    with transaction.atomic():
        _lock(model)
        if ModelVersion.objects.filter(pk=version.pk, archived=True).exists():
            raise RegistryError({"version": f"Version {version.version} is archived; aliases point at live versions."})
        current = Alias.objects.select_related("version").filter(model=model, name=alias).first()
        _check_expected(alias, current, expected)
        if current is not None and current.version_id == version.pk:
            return current  # already there: nothing moved, nothing recorded
        before = current.version if current else None
        if current is None:
            current = Alias.objects.create(model=model, name=alias, version=version, updated_by=user)
        else:
            current.version, current.updated_by = version, user
            current.save(update_fields=["version", "updated_by", "updated_at"])
        AliasMove.objects.create(model=model, alias=alias, from_version=before, to_version=version, by=user)
        _touch(model)
    return current


def remove_alias(model: RegisteredModel, alias: str, user, expected=NO_CHECK) -> None:
    """Remove `alias` from `model` (the removal is recorded as a move to no version)."""
    _require_submit(user, model.team_id, "remove aliases", {"model": "No such model."})
    alias = check_alias(alias)
    with transaction.atomic():
        _lock(model)
        current = Alias.objects.select_related("version").filter(model=model, name=alias).first()
        if current is None:
            raise RegistryError({"alias": f"Model {model.name} has no alias {alias}."}, missing=True)
        _check_expected(alias, current, expected)
        AliasMove.objects.create(model=model, alias=alias, from_version=current.version, to_version=None, by=user)
        current.delete()
        _touch(model)


def archive(version: ModelVersion, user) -> ModelVersion:
    """Archive a version: it stays (files and record) but can no longer be resolved or aliased. A
    version an alias points at is refused, naming the aliases: move them first (archiving never
    changes what `name@alias` means behind anyone's back)."""
    model = version.model
    _require_submit(user, model.team_id, "archive model versions", {"model": "No such model."})
    with transaction.atomic():
        _lock(model)
        held = sorted(Alias.objects.filter(version=version).values_list("name", flat=True))
        if held:
            names = ", ".join(held)
            raise RegistryError(
                {"version": f"Version {version.version} holds the alias {names}; move or remove it first."}
            )
        now = timezone.now()
        if not ModelVersion.objects.filter(pk=version.pk, archived=False).update(
            archived=True, archived_at=now, archived_by=user
        ):
            raise RegistryError({"version": f"Version {version.version} is already archived."})
        _touch(model)
    version.archived, version.archived_at, version.archived_by = True, now, user
    return version


# --- resolving ------------------------------------------------------------------------------


def resolve(team, ref, field: str = "model") -> ModelVersion:
    """The live version `ref` names in `team`: `name@alias` (where the alias points now) or
    `name/<version>`. RegistryError naming `field` for a malformed reference, an unknown model (also
    another team's: `missing`), alias or version, or an archived version."""
    if not isinstance(ref, str) or not (m := REF_RE.fullmatch(ref)):
        raise RegistryError({field: "write <name>@<alias> or <name>/<version>, e.g. digits@production or digits/3"})
    name, alias, number = m.groups()
    model = RegisteredModel.objects.filter(team=team, name=name).first()
    if model is None:
        raise RegistryError({field: f"No such model: {name}."}, missing=True)
    if alias is not None:
        found = Alias.objects.select_related("version").filter(model=model, name=alias).first()
        if found is None:
            raise RegistryError({field: f"Model {name} has no alias {alias}."})
        version = found.version
    else:
        version = version_of(model, number, field)
    if version.archived:
        raise RegistryError({field: f"Version {version.version} of {name} is archived."})
    version.model = model
    return version


# --- reading --------------------------------------------------------------------------------


def models_with_summary(queryset):
    """Models with their latest version number, version count and aliases (each with its version),
    in three queries for a page of them."""
    aliases = Prefetch("aliases", queryset=Alias.objects.select_related("version").order_by("name"))
    return queryset.annotate(latest_version=Max("versions__version"), version_count=Count("versions")).prefetch_related(
        aliases
    )


def alias_history(model: RegisteredModel, limit: int = 100):
    return model.alias_moves.select_related("from_version", "to_version", "by")[:limit]


def team_model_names(team) -> list[str]:
    return list(RegisteredModel.objects.filter(team=team).order_by("name").values_list("name", flat=True)[:500])


def can_change(user, team) -> bool:
    return role_of(user, team) in SUBMITTERS
