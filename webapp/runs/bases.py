"""Model references in hyperparameters ("run:12", "file:3", "app:MobileNetV2"): what the run form
offers a team, and the check that a reference exists, belongs to the team and can be used.

Resolved again when the run is submitted (build_spec), so a base deleted in between fails the
run with the same clear message instead of a missing file deep in a Spark task.
"""

import os
from dataclasses import dataclass

from django.conf import settings

from webapp.catalog.registry import REF
from workers.jobs.bases import KERAS_APPS, missing_weights_message, weights_path

from .states import Status


class BaseRefError(ValueError):
    pass


@dataclass(frozen=True)
class ResolvedBase:
    kind: str
    name: str  # for logs and the run page
    path: str  # model file, or the application's weights file
    input_shape: tuple | None  # None for applications (any image size)
    num_outputs: int | None

    def to_spec(self) -> dict:
        return {"kind": self.kind, "name": self.name, "path": self.path}


def weights_dir():
    return settings.WEIGHTS_DIR


def resolve(team, ref: str) -> ResolvedBase:
    m = REF.match(ref or "")
    if not m:
        raise BaseRefError(f"{ref!r} is not a model reference")
    kind, key = m.groups()
    if kind == "app":
        app = KERAS_APPS.get(key)
        if app is None:
            raise BaseRefError(f"unknown Keras application {key!r}; available: {', '.join(KERAS_APPS)}")
        path = weights_path(app, str(weights_dir()))
        if not os.path.isfile(path):
            raise BaseRefError(missing_weights_message(app, str(weights_dir())))
        return ResolvedBase("app", app.name, path, None, None)
    if not key.isdigit():
        raise BaseRefError(f"{ref!r} is not a model reference")
    if kind == "run":
        return _run_base(team, int(key))
    return _file_base(team, int(key))


def _run_base(team, pk: int) -> ResolvedBase:
    from .artifacts import keras_model_path
    from .models import Run

    run = Run.objects.filter(team=team, pk=pk).select_related("dataset").first()
    if run is None:
        raise BaseRefError(f"No run {pk} in your team.")
    if run.status != Status.SUCCEEDED:
        raise BaseRefError(f"Run {pk} is {run.status}; only a succeeded run's model can be a base.")
    path = keras_model_path(run)
    if not path.exists():
        raise BaseRefError(f"Run {pk} exported no Keras model (a LogisticRegression head has none).")
    return ResolvedBase("run", f"run {pk} ({run.name})", str(path), tuple(run.dataset.shape), run.dataset.num_classes)


def _file_base(team, pk: int) -> ResolvedBase:
    from webapp.modelfiles.models import ModelFile

    mf = ModelFile.objects.filter(team=team, pk=pk).first()
    if mf is None:
        raise BaseRefError(f"No model file {pk} in your team.")
    if not mf.is_usable:
        raise BaseRefError(f"Model file {mf.name} is {mf.status}; only a checked (READY) model file can be a base.")
    if not mf.storage_path.exists():
        raise BaseRefError(f"Model file {mf.name} is missing from storage; upload it again.")
    return ResolvedBase("file", f"model file {mf.name}", str(mf.storage_path), tuple(mf.input_shape), mf.num_outputs)


def options(team, kinds) -> list[tuple[str, str]]:
    """(value, label) choices for a reference parameter, newest first."""
    from .models import Run

    out = []
    if "run" in kinds:
        runs = Run.objects.filter(team=team, status=Status.SUCCEEDED).exclude(
            template="featurizer", hyperparameters__head="logreg"
        )
        for r in runs.select_related("dataset")[:200]:
            out.append((f"run:{r.pk}", f"Run {r.pk}: {r.name} ({r.dataset.shape_text})"))
    if "file" in kinds:
        from webapp.modelfiles.models import ModelFile
        from webapp.modelfiles.states import USABLE

        usable = ModelFile.objects.filter(team=team, status__in=USABLE)
        for mf in usable.order_by("-created_at")[:200]:
            shape = "×".join(str(d) for d in mf.input_shape)
            out.append((f"file:{mf.pk}", f"Model file {mf.name} ({shape} → {mf.num_outputs})"))
    if "app" in kinds:
        for app in KERAS_APPS.values():
            present = (weights_dir() / app.weights_file).is_file()
            out.append((f"app:{app.name}", f"{app.name} (ImageNet){'' if present else ' — weights file missing'}"))
    return out
