"""The run table's denormalized columns, computed from a run's hyperparameters, result and metrics.

The run table (webapp/history) sorts and filters 100,000 runs per team on indexed Run columns instead
of reading JSON or aggregating metric points per request. They are kept current here:

- `epochs`, `batch_size`, `learning_rate`: copied from the hyperparameters when the run is created
  (`Run.save`, via `hyperparameter_columns`);
- `best_accuracy`, `final_loss`: from the epoch-end metric points, by `metrics_arrived` (the metrics
  ingest calls it after storing a batch) and again by `summarize`;
- `duration_s`, `test_accuracy`, `test_loss`: by `summarize`, which `Run.transition` calls on every
  move into a terminal status (SUCCEEDED, FAILED, CANCELLED).

Everything here is idempotent: calling it twice writes the same values.
"""

from collections.abc import Iterable

from django.db.models import Avg, Max

from .models import MetricPoint, Run, hyperparameter_columns
from .states import TERMINAL

ACCURACY = "epoch_accuracy"  # training accuracy at an epoch's end, one point per executor
LOSS = "epoch_loss"


def metric_columns(run_id: int) -> dict:
    """{"best_accuracy": highest epoch_accuracy, "final_loss": mean epoch_loss of the last epoch}."""
    points = MetricPoint.objects.filter(run_id=run_id)
    best = points.filter(name=ACCURACY).aggregate(v=Max("value"))["v"]
    losses = points.filter(name=LOSS)
    last_epoch = losses.aggregate(e=Max("epoch"))["e"]
    if last_epoch is not None:
        final = losses.filter(epoch=last_epoch).aggregate(v=Avg("value"))["v"]
    else:  # points without an epoch number: the latest one
        final = losses.order_by("-step", "-id").values_list("value", flat=True).first()
    return {"best_accuracy": best, "final_loss": final}


def duration_seconds(run: Run) -> float | None:
    start = run.started_at or run.submitted_at
    if run.status not in TERMINAL or not run.finished_at or not start:
        return None
    return max(0.0, (run.finished_at - start).total_seconds())


def _finite(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if value == value and abs(value) != float("inf") else None


def summarize(run: Run) -> dict:
    """Recompute every denormalized column of `run`, store the ones that changed, return them all."""
    result = run.result if isinstance(run.result, dict) else {}
    fields = {
        **metric_columns(run.pk),
        "duration_s": duration_seconds(run),
        "test_loss": _finite(result.get("test_loss")),
    }
    if run.test_accuracy is None:
        fields["test_accuracy"] = _finite(result.get("test_accuracy"))
    for key, value in hyperparameter_columns(run.hyperparameters, run.template).items():
        if getattr(run, key) is None:
            fields[key] = value
    changed = {k: v for k, v in fields.items() if getattr(run, k) != v}
    if changed:
        Run.objects.filter(pk=run.pk).update(**changed)
        for key, value in changed.items():
            setattr(run, key, value)
    return fields


def metrics_arrived(run: Run, names: Iterable[str]) -> None:
    """After the metrics ingest stored points named `names` for `run`: refresh best_accuracy and
    final_loss when epoch-end points were among them (per-step points change neither)."""
    if not {ACCURACY, LOSS} & set(names):
        return
    fields = metric_columns(run.pk)
    changed = {k: v for k, v in fields.items() if getattr(run, k) != v}
    if changed:
        Run.objects.filter(pk=run.pk).update(**changed)
        for key, value in changed.items():
            setattr(run, key, value)
