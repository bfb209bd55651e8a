"""Metric points arriving from executors, and the series the run page charts."""

import hmac
import math

from .models import MetricPoint, Run

MAX_POINTS_PER_POST = 5000
ALLOWED_NAMES = {"loss", "accuracy", "epoch_loss", "epoch_accuracy", "val_loss", "val_accuracy", "steps_per_epoch"}


class IngestError(ValueError):
    pass


def token_ok(run: Run, header: str) -> bool:
    scheme, _, token = (header or "").partition(" ")
    return scheme.lower() == "bearer" and bool(token) and hmac.compare_digest(token, run.ingest_token)


def ingest(run: Run, payload) -> int:
    """Validate a batch completely before storing any of it."""
    if run.is_terminal:
        raise IngestError(f"run {run.pk} is {run.status}; it takes no more metrics")
    if not isinstance(payload, dict) or not isinstance(payload.get("points"), list):
        raise IngestError('expected {"executor": "...", "points": [...]}')
    executor = str(payload.get("executor", ""))[:32]
    points = payload["points"]
    if len(points) > MAX_POINTS_PER_POST:
        raise IngestError(f"at most {MAX_POINTS_PER_POST} points per request")
    rows = []
    for i, p in enumerate(points):
        try:
            name = str(p["name"])
            value = float(p["value"])
            step = int(p["step"])
            epoch = None if p.get("epoch") is None else int(p["epoch"])
            ts = float(p.get("ts", 0))
        except (KeyError, TypeError, ValueError):
            raise IngestError(f"point {i}: needs name, numeric value and integer step") from None
        if name not in ALLOWED_NAMES:
            raise IngestError(f"point {i}: unknown metric {name!r}")
        if not math.isfinite(value):
            continue  # a diverging loss is reported as nan/inf; the chart cannot plot it
        rows.append(
            MetricPoint(run=run, name=name, executor=executor, step=step, epoch=epoch, value=value, wall_time=ts)
        )
    MetricPoint.objects.bulk_create(rows)
    return len(rows)


def points_since(run: Run, since_id: int, limit: int = 5000) -> list[dict]:
    qs = (
        MetricPoint.objects.filter(run=run, id__gt=since_id)
        .order_by("id")
        .values("id", "name", "executor", "step", "epoch", "value", "wall_time")[:limit]
    )
    return list(qs)
