"""Executor resource samples (Spark's REST API), chart series from them, and the progress ETA.

``sample(run)`` reads ``<spark_ui_url>/api/v1/applications/<spark_app_id>/executors`` once and
stores one ExecutorSample per executor (the driver's entry too, flagged ``is_driver``), then thins
the run's old samples. The fetch itself (``fetch_executors``) is Django-free. See docs/monitoring.md.

What Spark's numbers mean (measured on Spark 4 with a loopback cluster): ``totalDuration`` (task
time) and ``totalGCTime`` grow only when a task *finishes*, and a TFoS node is one task for the whole
training; ``activeTasks`` and ``peakMemoryMetrics`` (sent with every executor heartbeat) are live.
So "cores busy" takes the larger of the cores held by running tasks and the finished task time per
wall second, and the GC share comes from ``peakMemoryMetrics.TotalGCTime`` (cumulative JVM GC time).
"""

from __future__ import annotations

import json
import logging
import math
import re
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from webapp.runs.models import MetricPoint, Run

from .models import ExecutorSample

log = logging.getLogger(__name__)

FETCH_TIMEOUT_S = 2.0  # a sample is skipped, never waited for: the next one comes in a few seconds
MAX_RESPONSE_BYTES = 4 * 2**20
APP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")  # app-2026…-0001, application_…_0001, local-…
KEEP_ALL_S = 600  # every sample of the last 10 minutes is kept …
MAX_OLD_PER_EXECUTOR = 360  # … and at most this many older ones per executor, evenly spread
MAX_FETCH_THREADS = 8
MB = 2**20

# Spark's fields copied into columns; `raw` keeps these others as Spark sent them.
RAW_FIELDS = ("hostPort", "completedTasks", "totalInputBytes", "totalShuffleRead", "totalShuffleWrite", "addTime")
PEAK_RAW_FIELDS = ("ProcessTreePythonRSSMemory", "ProcessTreeJVMRSSMemory", "MinorGCCount", "MajorGCCount")


class FetchError(Exception):
    pass


# --- fetching (Django-free) ------------------------------------------------------------------------


def executors_url(ui_url: str, app_id: str) -> str | None:
    """The REST URL of the application's executor list, or None when either part is unusable:
    only an http(s) URL with a host, and an app id of Spark's characters (no path tricks)."""
    if not ui_url or not app_id or not APP_ID.match(app_id):
        return None
    try:
        parts = urllib.parse.urlsplit(ui_url.strip())
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
        return None
    base = urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
    return f"{base}/api/v1/applications/{app_id}/executors"


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # the UI is on the cluster, never via a proxy


def fetch_executors(url: str, timeout: float = FETCH_TIMEOUT_S) -> list[dict]:
    """Spark's executor list from ``url`` (see executors_url). Raises FetchError on anything wrong."""
    try:
        with _OPENER.open(urllib.request.Request(url, headers={"Accept": "application/json"}), timeout=timeout) as r:
            body = r.read(MAX_RESPONSE_BYTES + 1)
    except (OSError, ValueError) as exc:  # URLError, timeouts, refused, HTTP errors
        raise FetchError(f"{url}: {exc}") from None
    if len(body) > MAX_RESPONSE_BYTES:
        raise FetchError(f"{url}: answer over {MAX_RESPONSE_BYTES} bytes")
    try:
        data = json.loads(body)
    except ValueError:
        raise FetchError(f"{url}: not JSON") from None
    if not isinstance(data, list) or not all(isinstance(e, dict) for e in data):
        raise FetchError(f"{url}: expected a list of executors")
    return data


def _int(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return 0


def _opt_int(value) -> int | None:
    return None if value is None else _int(value)


def sample_fields(entry: dict) -> dict | None:
    """ExecutorSample fields from one entry of Spark's list; None for an entry without an id."""
    ident = str(entry.get("id", ""))[:40]
    if not ident:
        return None
    peak = entry.get("peakMemoryMetrics") if isinstance(entry.get("peakMemoryMetrics"), dict) else {}
    raw = {k: entry[k] for k in RAW_FIELDS if k in entry}
    raw.update({k: peak[k] for k in PEAK_RAW_FIELDS if k in peak})
    return {
        "executor_id": ident,
        "is_driver": ident == "driver",
        "is_active": bool(entry.get("isActive", True)),
        "total_cores": _int(entry.get("totalCores")),
        "max_tasks": _int(entry.get("maxTasks")),
        "active_tasks": _int(entry.get("activeTasks")),
        "memory_used": _int(entry.get("memoryUsed")),
        "max_memory": _int(entry.get("maxMemory")),
        "disk_used": _int(entry.get("diskUsed")),
        "rdd_blocks": _int(entry.get("rddBlocks")),
        "total_gc_time_ms": _int(entry.get("totalGCTime")),
        "total_duration_ms": _int(entry.get("totalDuration")),
        "total_tasks": _int(entry.get("totalTasks")),
        "failed_tasks": _int(entry.get("failedTasks")),
        "peak_jvm_heap": _opt_int(peak.get("JVMHeapMemory")),
        "peak_jvm_offheap": _opt_int(peak.get("JVMOffHeapMemory")),
        "jvm_gc_time_ms": _opt_int(peak.get("TotalGCTime")),
        "raw": raw,
    }


# --- sampling --------------------------------------------------------------------------------------


def sample(run: Run, now: datetime | None = None) -> int:
    """Fetch and store one sample of every executor of ``run``; returns the rows stored (0 when the
    UI is unknown or unreachable: never raises for that)."""
    url = executors_url(run.spark_ui_url, run.spark_app_id)
    if url is None:
        return 0
    try:
        entries = fetch_executors(url)
    except FetchError as exc:
        log.debug("no executor sample for run %s: %s", run.pk, exc)
        return 0
    return store(run, entries, now)


def store(run: Run, entries: list[dict], now: datetime | None = None) -> int:
    now = now or timezone.now()
    rows = [ExecutorSample(run=run, sampled_at=now, **f) for f in map(sample_fields, entries) if f is not None]
    with transaction.atomic():
        ExecutorSample.objects.bulk_create(rows)
        thin(run, now)
    return len(rows)


def sample_running(now: datetime | None = None) -> int:
    """One sample of every RUNNING run (the periodic task). Runs sampled less than half an interval
    ago are skipped, so overlapping or repeated task deliveries do not double the samples."""
    now = now or timezone.now()
    recent = now - timedelta(seconds=settings.SPARKDECK_SAMPLE_SECONDS / 2)
    runs = [
        r
        for r in Run.objects.filter(status=Run.Status.RUNNING).exclude(spark_ui_url="").exclude(spark_app_id="")
        if not ExecutorSample.objects.filter(run=r, sampled_at__gt=recent).exists()
    ]
    jobs = [(r, executors_url(r.spark_ui_url, r.spark_app_id)) for r in runs]
    jobs = [(r, u) for r, u in jobs if u]
    if not jobs:
        return 0

    def fetch(url):
        try:
            return fetch_executors(url)
        except FetchError as exc:
            log.debug("no executor sample: %s", exc)
            return None

    # Fetches in parallel (each may wait its timeout); the database writes stay in this thread.
    with ThreadPoolExecutor(max_workers=min(MAX_FETCH_THREADS, len(jobs))) as pool:
        answers = list(pool.map(fetch, [u for _, u in jobs]))
    return sum(store(r, entries, now) for (r, _), entries in zip(jobs, answers, strict=True) if entries is not None)


def thin(run: Run, now: datetime | None = None) -> int:
    """Keep every sample of the last KEEP_ALL_S seconds and at most MAX_OLD_PER_EXECUTOR older ones
    per executor: the oldest sample of each of that many equal time buckets between the executor's
    first sample and the cut. Spark's totals are cumulative, so rates over the kept samples stay
    right (averaged over longer intervals). Returns the rows deleted."""
    now = now or timezone.now()
    cut = now - timedelta(seconds=KEEP_ALL_S)
    old = ExecutorSample.objects.filter(run=run, sampled_at__lt=cut)
    counts = {}
    for ex in old.values_list("executor_id", flat=True):
        counts[ex] = counts.get(ex, 0) + 1
    doomed = []
    for ex, count in counts.items():
        if count <= MAX_OLD_PER_EXECUTOR:
            continue
        rows = list(old.filter(executor_id=ex).order_by("sampled_at", "id").values_list("id", "sampled_at"))
        first = rows[0][1]
        width = max((cut - first).total_seconds() / MAX_OLD_PER_EXECUTOR, 1e-6)
        seen = set()
        for pk, at in rows:
            bucket = int((at - first).total_seconds() // width)
            if bucket in seen:
                doomed.append(pk)
            else:
                seen.add(bucket)
    if doomed:
        ExecutorSample.objects.filter(pk__in=doomed).delete()
    return len(doomed)


# --- chart series ----------------------------------------------------------------------------------


def series(run: Run) -> dict:
    """Chart-ready samples of ``run``, one entry per executor (driver last)::

        {"origin": epoch seconds of the first sample | None, "interval_s": 5.0,
         "executors": [{"id": "0", "is_driver": False, "latest": {…}, "t": [s since origin, …],
                        "cores_busy": […], "total_cores": 1, "storage_mb": […], "storage_max_mb": 127.2,
                        "heap_peak_mb": [… | None], "python_rss_mb": [… | None], "gc_share": [… | None]}]}

    Rates (cores_busy, gc_share) belong to the interval that ends at their sample; an executor's
    first sample has None there.
    """
    rows = list(ExecutorSample.objects.filter(run=run).order_by("executor_id", "sampled_at", "id"))
    origin = min((r.sampled_at for r in rows), default=None)
    by_exec: dict[str, list[ExecutorSample]] = {}
    for r in rows:
        by_exec.setdefault(r.executor_id, []).append(r)
    out = []
    for ex, samples in by_exec.items():
        entry = {
            "id": ex,
            "is_driver": samples[0].is_driver,
            "total_cores": samples[-1].total_cores,
            "storage_max_mb": _mb(samples[-1].max_memory),
            "latest": latest(samples[-1]),
            "t": [],
            "cores_busy": [],
            "storage_mb": [],
            "heap_peak_mb": [],
            "python_rss_mb": [],
            "gc_share": [],
        }
        prev = None
        for s in samples:
            entry["t"].append(round((s.sampled_at - origin).total_seconds(), 3))
            entry["cores_busy"].append(cores_busy(prev, s))
            entry["storage_mb"].append(_mb(s.memory_used))
            entry["heap_peak_mb"].append(_mb(s.peak_jvm_heap))
            entry["python_rss_mb"].append(_mb(s.raw.get("ProcessTreePythonRSSMemory")))
            entry["gc_share"].append(gc_share(prev, s))
            prev = s
        out.append(entry)
    out.sort(key=lambda e: (e["is_driver"], len(e["id"]), e["id"]))
    return {
        "origin": origin.timestamp() if origin else None,
        "interval_s": settings.SPARKDECK_SAMPLE_SECONDS,
        "executors": out,
    }


def cores_busy(prev: ExecutorSample | None, cur: ExecutorSample) -> float | None:
    """Cores an executor's tasks held: the larger of the cores of the tasks running at ``cur``
    (active tasks × cores per task) and the task time finished since ``prev`` per wall second,
    at most the executor's cores. None for the first sample and for the driver (it runs no tasks)."""
    if prev is None or cur.is_driver:
        return None
    dt = (cur.sampled_at - prev.sampled_at).total_seconds()
    if dt <= 0:
        return None
    per_task = cur.total_cores / cur.max_tasks if cur.max_tasks else 1.0  # spark.task.cpus
    running = cur.active_tasks * per_task
    finished = max(0, cur.total_duration_ms - prev.total_duration_ms) / 1000.0 / dt
    busy = max(running, finished)
    return round(min(busy, cur.total_cores) if cur.total_cores else busy, 3)


def gc_share(prev: ExecutorSample | None, cur: ExecutorSample) -> float | None:
    """Fraction of the wall time between two samples the JVM spent in GC (peakMemoryMetrics'
    cumulative TotalGCTime, live through heartbeats); None where Spark did not send it."""
    if prev is None or prev.jvm_gc_time_ms is None or cur.jvm_gc_time_ms is None:
        return None
    dt = (cur.sampled_at - prev.sampled_at).total_seconds()
    if dt <= 0:
        return None
    return round(min(1.0, max(0, cur.jvm_gc_time_ms - prev.jvm_gc_time_ms) / 1000.0 / dt), 4)


def latest(s: ExecutorSample) -> dict:
    """The newest sample's numbers, for the table under the charts."""
    return {
        "sampled_at": s.sampled_at.isoformat(),
        "is_active": s.is_active,
        "host_port": s.raw.get("hostPort", ""),
        "total_cores": s.total_cores,
        "active_tasks": s.active_tasks,
        "total_tasks": s.total_tasks,
        "failed_tasks": s.failed_tasks,
        "storage_mb": _mb(s.memory_used),
        "storage_max_mb": _mb(s.max_memory),
        "disk_mb": _mb(s.disk_used),
        "rdd_blocks": s.rdd_blocks,
        "heap_peak_mb": _mb(s.peak_jvm_heap),
        "offheap_peak_mb": _mb(s.peak_jvm_offheap),
        "python_rss_mb": _mb(s.raw.get("ProcessTreePythonRSSMemory")),
        "jvm_gc_s": None if s.jvm_gc_time_ms is None else round(s.jvm_gc_time_ms / 1000, 2),
        "task_time_s": round(s.total_duration_ms / 1000, 2),
        # What Spark's UI flags: GC time of finished tasks over their task time.
        "task_gc_share": round(s.total_gc_time_ms / s.total_duration_ms, 4) if s.total_duration_ms else None,
    }


def _mb(value) -> float | None:
    if value is None:
        return None
    try:
        return round(int(value) / MB, 1)
    except (TypeError, ValueError):
        return None


# --- progress and ETA ------------------------------------------------------------------------------

RATE_WINDOW_S = 30.0
STEP_NAMES = ("loss", "accuracy", "epoch_loss", "epoch_accuracy")  # points whose `step` is the batch count
EPOCH_END_NAMES = ("epoch_loss", "epoch_accuracy")
RECENT_POINTS = 400  # newest points read for the rate: at every_steps=5, ~2,000 batches back


@dataclass
class Estimate:
    step: int | None = None
    epoch: int | None = None  # 1-based, the epoch in progress (the last one once all are done)
    epochs: int | None = None
    steps_per_epoch: int | None = None
    step_in_epoch: int | None = None
    total_steps: int | None = None
    rate: float | None = None  # steps per second
    eta_s: float | None = None
    fraction: float | None = None


def estimate(samples, epochs, steps_per_epoch, window_s: float = RATE_WINDOW_S) -> Estimate:
    """Progress and ETA from (step, wall_time) samples of ONE executor (every executor runs the same
    number of steps under MWMS). The rate is (newest step - oldest step) / (their wall time apart)
    over the samples of the last ``window_s`` seconds before the newest (at least the two newest);
    ETA = (epochs × steps_per_epoch - newest step) / rate. Samples without a wall time (0) only
    count for the step. static/js/progress.js has the same function for the page."""
    pts = sorted((int(s), float(t)) for s, t in samples if s is not None)
    est = Estimate(epochs=int(epochs) if epochs else None)
    est.steps_per_epoch = int(steps_per_epoch) if steps_per_epoch and steps_per_epoch > 0 else None
    if not pts:
        return est
    est.step = max(s for s, _ in pts)
    timed = sorted(((t, s) for s, t in pts if t > 0))
    if len(timed) >= 2:
        t_last, s_last = timed[-1]
        window = [p for p in timed if p[0] >= t_last - window_s]
        t_first, s_first = window[0] if len(window) >= 2 else timed[-2]
        if t_last > t_first and s_last > s_first:
            est.rate = (s_last - s_first) / (t_last - t_first)
    if est.steps_per_epoch and est.epochs:
        spe = est.steps_per_epoch
        est.total_steps = spe * est.epochs
        done = min(est.step, est.total_steps)
        est.epoch = est.epochs if done >= est.total_steps else done // spe + 1
        est.step_in_epoch = done - (est.epoch - 1) * spe
        est.fraction = done / est.total_steps
        if done >= est.total_steps:
            est.eta_s = 0.0
        elif est.rate:
            est.eta_s = (est.total_steps - done) / est.rate
    return est


def steps_per_epoch(run: Run) -> int | None:
    """The job's steps per epoch: the chief's `steps_per_epoch` point, else the run's hyperparameter,
    else the newest epoch-end point's step / epoch (batches count from the start of fit)."""
    # A run that was never submitted has no points: none() answers without a query.
    points = MetricPoint.objects.none() if run.never_submitted else MetricPoint.objects.filter(run=run)
    posted = points.filter(name="steps_per_epoch").order_by("-step", "-id").values("value").first()
    if posted and posted["value"] > 0:
        return int(posted["value"])
    hp = _int((run.hyperparameters or {}).get("steps_per_epoch"))
    if hp > 0 and run.input_mode != Run.InputMode.SPARK:  # SPARK mode may cap it at one pass: not sure
        return hp
    best = None
    for name in EPOCH_END_NAMES:
        p = points.filter(name=name, epoch__gt=0).order_by("-step", "-id").values("step", "epoch").first()
        if p and p["step"] > 0 and (best is None or p["step"] > best["step"]):
            best = p
    return round(best["step"] / best["epoch"]) if best else None


def eta(run: Run) -> dict:
    """The run's progress and ETA (see estimate) from its newest metric points, plus the samples it
    used (``window``: [[step, wall_time], …] of ``executor``) so the page continues from them."""
    epochs = _int((run.hyperparameters or {}).get("epochs")) or run.epochs
    # The newest points of each name from one end of the (run, name, step, executor) index: a single query over
    # all names ordered by id made PostgreSQL read every point of the run (250 ms at 1,000,000).
    recent = []
    for name in () if run.never_submitted else STEP_NAMES:  # nothing has run yet: no point to read
        recent += (
            MetricPoint.objects.filter(run=run, name=name)
            .order_by("-step")
            .values("id", "executor", "step", "wall_time")[:RECENT_POINTS]
        )
    recent.sort(key=lambda p: -p["id"])
    executor = chief_of(recent)
    samples = [(p["step"], p["wall_time"]) for p in recent if p["executor"] == executor]
    est = estimate(samples, epochs, steps_per_epoch(run))
    newest = max((t for _, t in samples if t > 0), default=0.0)
    window = sorted([s, t] for s, t in samples if t > 0 and t >= newest - RATE_WINDOW_S)
    data = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in vars(est).items()}
    return {**data, "executor": executor, "window": window, "terminal": run.is_terminal, "status": run.status}


def chief_of(points) -> str | None:
    """The executor whose steps the ETA follows: "0" (the TFoS chief) when it reported, else the one
    with the newest point (``points`` newest first)."""
    executors = [p["executor"] for p in points]
    if "0" in executors:
        return "0"
    return executors[0] if executors else None
