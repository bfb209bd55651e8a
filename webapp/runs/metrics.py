"""Metric points arriving from executors, and the series the run page charts."""

import hashlib
import hmac
import json
import logging
import math
import os
import re
import uuid
from contextlib import contextmanager
from pathlib import Path

from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Max

from workers.jobs.metrics import PENDING_DIR

from .models import MetricPoint, Run
from .summary import metrics_arrived

log = logging.getLogger(__name__)

MAX_POINTS_PER_POST = 5000
ALLOWED_NAMES = {"loss", "accuracy", "epoch_loss", "epoch_accuracy", "val_loss", "val_accuracy", "steps_per_epoch"}
MAX_COUNT = 2**31 - 1  # step and epoch are IntegerFields
EXECUTOR = re.compile(r"[A-Za-z0-9_.:-]{0,32}")  # MetricPoint.executor is 32 characters


class IngestError(ValueError):
    pass


def token_ok(run: Run, header: str) -> bool:
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not token or not token.isascii():
        return False  # compare_digest refuses non-ASCII text; such a header cannot be the token anyway
    return hmac.compare_digest(token, run.ingest_token)


def ingest(run: Run, payload) -> int:
    """Validate a batch completely before storing any of it; returns the number of points
    accepted. A point already stored (same run, name, step and executor: a batch sent again
    because its answer was lost) is kept as it was, not stored twice."""
    if run.is_terminal:
        raise IngestError(f"run {run.pk} is {run.status}; it takes no more metrics")
    if not isinstance(payload, dict) or not isinstance(payload.get("points"), list):
        raise IngestError('expected {"executor": "...", "points": [...]}')
    executor = _executor(payload.get("executor", ""))
    points = payload["points"]
    if len(points) > MAX_POINTS_PER_POST:
        raise IngestError(f"at most {MAX_POINTS_PER_POST} points per request")
    rows = [row for i, p in enumerate(points) if (row := _row(run, executor, p, i)) is not None]
    _store(rows)
    metrics_arrived(run, {r.name for r in rows})  # best/final metric columns of the run table
    return len(rows)


def ingest_pending(run: Run) -> int:
    """Store the points executors left in ``<run dir>/metrics-pending/`` because the ingest was
    unreachable when they finished (format in docs/architecture.md), whatever the run's status:
    the reconciler calls this just before a run's terminal move and once more after it.

    Each file is stored in one transaction and then removed; stored again (a crash before the
    removal, two callers at once), no point is stored twice. Lines that are not a valid point (a
    truncated last line) are skipped. Returns the number of points read from the files."""
    folder = run.run_dir / PENDING_DIR
    try:  # dot files are still being written (they are renamed when whole)
        files = sorted(p for p in folder.iterdir() if p.suffix == ".jsonl" and not p.name.startswith("."))
    except OSError:
        return 0
    total, names = 0, set()
    for path in files:
        try:
            count = _ingest_file(run, path, names)
        except FileNotFoundError:
            continue  # another caller stored and removed it
        except OSError as exc:
            log.warning("run %s: cannot read %s (%s); left for the next try", run.pk, path, exc)
            continue
        path.unlink(missing_ok=True)
        total += count
    if names:
        metrics_arrived(run, names)
        if run.is_terminal:
            refresh_series(run)
    return total


def _ingest_file(run: Run, path: Path, names: set) -> int:
    count = skipped = 0
    rows: list[MetricPoint] = []
    with path.open("rb") as f, transaction.atomic():
        for i, line in enumerate(f):
            try:
                p = json.loads(line)
                row = _row(run, _executor(p.get("executor", "") if isinstance(p, dict) else None), p, i)
            except (ValueError, RecursionError):  # IngestError and JSONDecodeError are ValueErrors
                skipped += 1
                continue
            count += 1
            if row is not None:
                rows.append(row)
                names.add(row.name)
            if len(rows) >= MAX_POINTS_PER_POST:
                _store(rows)
                rows = []
        _store(rows)
    if skipped:
        log.warning("run %s: %s: skipped %d line(s) that are not a metric point", run.pk, path.name, skipped)
    return count


def _store(rows: list[MetricPoint]) -> None:
    MetricPoint.objects.bulk_create(rows, ignore_conflicts=True)  # on the metric_one_point constraint


def _executor(value) -> str:
    if not isinstance(value, str) or not EXECUTOR.fullmatch(value):
        raise IngestError("executor must be a string of at most 32 letters, digits or _.:-")
    return value


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _count(p: dict, key: str, i: int, required: bool):
    value = p.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_COUNT:
        raise IngestError(f"point {i}: {key} must be an integer from 0 to {MAX_COUNT}")
    return value


def _row(run: Run, executor: str, p, i: int) -> MetricPoint | None:
    """One validated point, or None for a non-finite value (a diverging loss: the chart cannot
    plot it). Raises IngestError."""
    if not isinstance(p, dict):
        raise IngestError(f"point {i}: must be an object with name, value and step")
    name = p.get("name")
    if not isinstance(name, str) or name not in ALLOWED_NAMES:
        shown = name[:64] if isinstance(name, str) else type(name).__name__
        raise IngestError(f"point {i}: unknown metric {shown!r}")
    value, ts = p.get("value"), p.get("ts", 0)
    if not _is_number(value):
        raise IngestError(f"point {i}: value must be a number")
    step, epoch = _count(p, "step", i, required=True), _count(p, "epoch", i, required=False)
    try:
        value, ts = float(value), float(ts) if _is_number(ts) else math.nan
    except OverflowError:  # an integer beyond any float
        raise IngestError(f"point {i}: value and ts must fit a float") from None
    if not math.isfinite(ts):
        raise IngestError(f"point {i}: ts must be a finite number of seconds")
    if not math.isfinite(value):
        return None
    return MetricPoint(run=run, name=name, executor=executor, step=step, epoch=epoch, value=value, wall_time=ts)


def points_since(run: Run, since_id: int, limit: int = 5000) -> list[dict]:
    if run.never_submitted:
        return []
    qs = (
        MetricPoint.objects.filter(run=run, id__gt=since_id)
        .order_by("id")
        .values("id", "name", "executor", "step", "epoch", "value", "wall_time")[:limit]
    )
    return list(qs)


# --- downsampled series for charts ---------------------------------------------------------------

X_AXES = ("step", "epoch", "wall")
DEFAULT_MAX_POINTS = 1000
MAX_MAX_POINTS = 5000
SERIES_CACHE_SECONDS = 3600
SERIES_DIR = "series"  # <run dir>/series/: a finished run's whole-range series, computed once
SERIES_FORMAT = 1
GENERATION_FILE = "generation"  # in SERIES_DIR: changed by refresh_series when late points arrive


class SeriesError(ValueError):
    pass


def series(run: Run, names=None, start=None, end=None, max_points: int = DEFAULT_MAX_POINTS, x: str = "step") -> dict:
    """A run's metric series, downsampled in the database to at most ``max_points`` points each.

    One series per (metric name, executor). ``names``: the metrics wanted (default all).
    ``x``: "step" (batch count), "epoch" (points without one are left out) or "wall" (seconds since
    the run's first timestamped point; points posted without a timestamp are left out).
    ``start``/``end``: the x range wanted (inclusive, either open), for zooming in.

    The range is cut into ``max_points // 2`` equal buckets and one GROUP BY gives each bucket of
    each series its lowest and highest value (so spikes and extremes survive) and its first and last
    x; the two extremes are placed at those x in the order that continues the line from the
    previous bucket. A series with no more points in range than ``max_points`` comes back raw.

    Computed once per state: an active run's answer is cached (Django's cache) under its newest
    point id; a finished run takes no more points, so its whole-range answers are also stored in
    ``<run dir>/series/`` and every later view reads that file (see :func:`warm_series`; the
    points :func:`ingest_pending` stores late replace them, :func:`refresh_series`).

    Returns::

        {"x": "step", "start": None, "end": None, "max_points": 1000,
         "range": [first x, last x] | None,   # of the points in range, all series
         "origin": None,                       # x="wall": the epoch seconds x is counted from
         "last_id": 123456,                    # newest point id seen: poll points_since() from there
         "series": [{"name": "loss", "executor": "0", "count": 250000, "downsampled": True,
                     "points": [[x, y], ...]}, ...]}
    """
    if x not in X_AXES:
        raise SeriesError(f"x must be one of {', '.join(X_AXES)}")
    max_points = max(4, min(int(max_points), MAX_MAX_POINTS))
    wanted = sorted(ALLOWED_NAMES if names is None else {str(n) for n in names} & ALLOWED_NAMES)
    start, end = _bound(start, x, math.floor), _bound(end, x, math.ceil)
    args = (wanted, start, end, max_points, x)
    if run.is_terminal:  # no more points will come (but late ones from ingest_pending): the state is fixed
        state = ("final", run.status, str(run.finished_at), _generation(run))
        stored = _stored_path(run, args) if start is None and end is None else None
    else:
        state, stored = ("live", _last_id(run)), None
    key = "sparkdeck:series:" + hashlib.sha1(repr((run.pk, state, args)).encode()).hexdigest()
    data = cache.get(key)
    if data is None and stored is not None:
        data = _read_json(stored)
    if data is None:
        data = {"x": x, "start": start, "end": end, "max_points": max_points, "range": None, "origin": None}
        data.update(last_id=state[1] if state[0] == "live" else 0, series=[])
        if wanted and (state[0] == "final" or data["last_id"]):
            _fill(data, run, wanted, start, end, max_points, x)
        if stored is not None:
            _write_json(stored, data)
    cache.set(key, data, SERIES_CACHE_SECONDS)
    return data


def warm_series(run: Run, axes=("step", "epoch")) -> None:
    """Compute and store a finished run's whole-range chart data for ``axes`` (the run page and
    compare open on "step"; "epoch" is their other axis): call it when a run ends, so a first view
    reads a file instead of aggregating its points (1,000,000 points: ~0.3-0.6 s of PostgreSQL on a
    2-core machine). Both pages ask for all names, so one file per axis serves them."""
    if run.is_terminal:
        for x in axes:
            series(run, x=x)


def refresh_series(run: Run) -> None:
    """A finished run got points after its chart data was stored: drop the stored files, make
    every process's cached answers stale (a new generation is part of their key), store anew."""
    folder = run.run_dir / SERIES_DIR
    try:
        for path in folder.glob("v*.json"):
            path.unlink(missing_ok=True)
        folder.mkdir(exist_ok=True)
        tmp = folder / f".{GENERATION_FILE}.{os.getpid()}"
        tmp.write_text(uuid.uuid4().hex, encoding="utf-8")
        os.replace(tmp, folder / GENERATION_FILE)
    except OSError:
        log.warning("run %s: cannot refresh the stored chart data in %s", run.pk, folder)
        return
    warm_series(run)


def _generation(run: Run) -> str:
    try:
        return (run.run_dir / SERIES_DIR / GENERATION_FILE).read_text(encoding="utf-8")
    except OSError:
        return ""


def epochs_done(run: Run) -> int:
    """Epochs finished so far (the progress bar): the newest epoch-end point, read from one end of
    the (run, name, step, executor) index per name; never a scan of the run's points."""
    done = 0
    if run.never_submitted:
        return done
    for name in ("epoch_loss", "epoch_accuracy"):
        epoch = (
            MetricPoint.objects.filter(run=run, name=name, epoch__isnull=False)
            .order_by("-step")
            .values_list("epoch", flat=True)
            .first()
        )
        if epoch is not None:
            done = max(done, epoch)  # epochs are 1-based in the points
    return done


def _stored_path(run: Run, args) -> Path | None:
    if not run.run_dir.is_dir():
        return None  # never started: nothing to keep, and no run dir to create for it
    digest = hashlib.sha1(repr(args).encode()).hexdigest()[:16]
    return run.run_dir / SERIES_DIR / f"v{SERIES_FORMAT}-{args[4]}-{args[3]}-{digest}.json"


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write_json(path: Path, data) -> None:
    try:
        path.parent.mkdir(exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(data, separators=(",", ":")), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only run dir: the cache still holds it


def _last_id(run: Run) -> int:
    return MetricPoint.objects.filter(run=run).aggregate(m=Max("id"))["m"] or 0


def _bound(value, x, rounding):
    if value is None or value == "":
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise SeriesError("start and end must be numbers") from None
    if not math.isfinite(v):
        raise SeriesError("start and end must be finite")
    return v if x == "wall" else int(rounding(v))


_COLUMNS = {"step": "step", "epoch": "epoch", "wall": "wall_time"}


def _fill(out, run, names, start, end, max_points, x):
    table = connection.ops.quote_name(MetricPoint._meta.db_table)
    run_col = connection.ops.quote_name(MetricPoint._meta.get_field("run").column)
    col = _COLUMNS[x]
    where, params = [f"{run_col} = %s"], [run.pk]
    # Ingest stores no other names, so all of them need no filter over the whole range; a zoomed
    # range keeps it: per name, the (run, name, step, executor) index then reads just that step range.
    if set(names) != ALLOWED_NAMES or start is not None or end is not None:
        where.append(f"name IN ({', '.join(['%s'] * len(names))})")
        params += names
    if x == "epoch":
        where.append("epoch IS NOT NULL")
    if x == "wall":
        where.append("wall_time > 0")
        origin = _extent(table, where, params, col, names, run)[0]
        if origin is None:
            return
        out["origin"] = origin
        col = f"(wall_time - {float(origin)!r})"
    lo_data, hi_data = _extent(table, where, params, col, names, run, x == "step")
    if lo_data is None:
        return
    lo = lo_data if start is None else max(start, lo_data)
    hi = hi_data if end is None else min(end, hi_data)
    if hi < lo:
        return
    where += [f"{col} >= %s", f"{col} <= %s"]
    params += [lo, hi]
    buckets = max(1, max_points // 2)
    if x == "wall":
        width = (hi - lo) / buckets * (1 + 1e-9) or 1.0
        if connection.vendor == "postgresql":
            bucket = f"FLOOR(({col} - %s) / %s)"
        else:  # x >= lo: truncation is floor
            bucket = f"CAST(({col} - %s) / %s AS INTEGER)"
    else:
        width = max(1, -(-(hi - lo + 1) // buckets))
        bucket = f"({col} - %s) / %s"
    sql = (
        f"SELECT name, executor, {bucket} AS b, COUNT(*), MIN({col}), MAX({col}), MIN(value), MAX(value), MAX(id) "
        f"FROM {table} WHERE {' AND '.join(where)} GROUP BY name, executor, b ORDER BY name, executor, b"
    )
    with _aggregation_settings(), connection.cursor() as cursor:
        cursor.execute(sql, [lo, width, *params])
        rows = cursor.fetchall()
    grouped: dict[tuple[str, str], list] = {}
    for row in rows:
        grouped.setdefault((row[0], row[1]), []).append(row[3:8])
        out["last_id"] = max(out["last_id"], row[8])
    xs = []
    for (name, executor), parts in sorted(grouped.items(), key=lambda kv: (kv[0][0], len(kv[0][1]), kv[0][1])):
        count = sum(b[0] for b in parts)
        lumpy = any(b[0] > 2 for b in parts)
        if count <= max_points and (lumpy or any(b[0] == 2 for b in parts)):  # fits: the raw points, exactly
            points = _raw(table, where, params, col, name, executor)
            lumpy = False
        else:
            points = _bucket_points(parts)
        out["series"].append(
            {"name": name, "executor": executor, "count": count, "downsampled": lumpy, "points": points}
        )
        xs += [points[0][0], points[-1][0]]
    out["range"] = [min(xs), max(xs)] if xs else None


def _extent(table, where, params, col, names, run, indexed=False):
    """(lowest, highest) x in ``where``. For steps, per metric with MIN and MAX subqueries that
    each read one end of the (run, name, step, executor) index; other axes aggregate over the run's points."""
    if indexed:
        run_col = connection.ops.quote_name(MetricPoint._meta.get_field("run").column)
        parts = [
            f"SELECT (SELECT MIN(step) FROM {table} WHERE {run_col} = %s AND name = %s), "
            f"(SELECT MAX(step) FROM {table} WHERE {run_col} = %s AND name = %s)"
            for _ in names
        ]
        args = [a for n in names for a in (run.pk, n, run.pk, n)]
        with connection.cursor() as cursor:
            cursor.execute(" UNION ALL ".join(parts), args)
            found = [r for r in cursor.fetchall() if r[0] is not None]
        if not found:
            return None, None
        return min(r[0] for r in found), max(r[1] for r in found)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT MIN({col}), MAX({col}) FROM {table} WHERE {' AND '.join(where)}", params)
        return cursor.fetchone()


def _bucket_points(parts) -> list[list]:
    """Each bucket's lowest and highest value at its first and last x, the extreme nearer the
    previous bucket's last point first (for the first bucket: the trend towards the next one)."""
    points: list[list] = []
    for i, (n, x_first, x_last, v_min, v_max) in enumerate(parts):
        if n == 1 or (v_min == v_max and x_first == x_last):
            points.append([x_first, v_min])
            continue
        if points:
            high_first = abs(v_max - points[-1][1]) < abs(v_min - points[-1][1])
        else:
            following = parts[i + 1] if i + 1 < len(parts) else None
            high_first = following is not None and (following[3] + following[4]) < (v_min + v_max)
        points += [[x_first, v_max], [x_last, v_min]] if high_first else [[x_first, v_min], [x_last, v_max]]
    return points


def _raw(table, where, params, col, name, executor):
    cond = " AND ".join([*where, "name = %s", "executor = %s"])
    sql = f"SELECT {col}, value FROM {table} WHERE {cond} ORDER BY {col}, id"
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, name, executor])
        return [[x, v] for x, v in cursor.fetchall()]


@contextmanager
def _aggregation_settings():
    """PostgreSQL guesses the bucket count from the x column's distinct values and plans a sort to
    disk; give this one query the memory to hash its (at most max_points per series) groups, and no
    JIT compilation (it took longer than the query)."""
    if connection.vendor != "postgresql":
        yield
        return
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL work_mem = '64MB'")
        cursor.execute("SET LOCAL jit = off")
        yield
