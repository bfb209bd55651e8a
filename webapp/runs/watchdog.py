"""The watchdog: why a run hangs or fails, shown on its page, and a stuck run failed after a grace.

lifecycle.reconcile() calls check() at the end of every tick of a SUBMITTED or RUNNING run (every
RECONCILE_SECONDS). check() gathers what workers/diagnose.py needs (log tails of bounded size, the
driver UI's executor list and the master's application entry, each with a short timeout; an
unreachable UI is no error), stores the finding in Run.diagnosis and:
- a stuck run (fatal=False: no reservations, no resources) is failed SPARKDECK_STUCK_GRACE_SECONDS
  after it was first found stuck, unless it recovers first; its submitter is told once ("stuck");
- a run that cannot recover (fatal=True: an executor lost, an exception, a feed timeout, the driver
  gone) is failed at once, unless Spark already failed it: then the finding only explains why.
Failing = cancel the Spark application through the backend, then Run.transition(FAILED) with the
diagnosis title as reason and its evidence as detail. See docs/watchdog.md.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path

import requests
from django.conf import settings
from django.utils import timezone

from webapp.clusters import services as cluster_services
from webapp.notifications.services import notify
from workers import diagnose
from workers.backends.base import BackendError, BackendStatus

from . import artifacts, drivers
from .models import Run
from .states import StaleStatus, Status

log = logging.getLogger(__name__)

WATCHED = (Status.SUBMITTED, Status.RUNNING)
DRIVER_TAIL = 64 * 1024  # bytes: ~800 log lines, minutes of TFoS's once-a-second waiting lines
EXECUTOR_TAIL = 32 * 1024
# Where a TF node logs its address (TFoS's "TFSparkNode.reserve"), ~10 KiB into its executor's stderr: the
# peers' errors name the node they lost by that address.
EXECUTOR_HEAD = 32 * 1024
MAX_EXECUTORS = 32  # stderr tails read per tick, newest executor ids
MAX_SPEC = 1024 * 1024
HTTP_TIMEOUT = 2.0  # the driver UI and the master answer in milliseconds when healthy
# What the backends (standalone, yarn) report when the launcher died without leaving an exit code.
DRIVER_VANISHED = "driver process vanished"


def _now() -> float:
    return time.time()  # tests move the watchdog's clock through this


def tail(path: Path | None, limit: int, head: int = 0) -> str:
    """The last `limit` bytes of a file as text, from its first whole line, after its first `head` bytes
    (to their last whole line) when the file is longer than both; "" if absent."""
    if path is None:
        return ""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            start = b""
            if head and size > head + limit:
                f.seek(0)
                start = f.read(head).rpartition(b"\n")[0] + b"\n"
            f.seek(max(0, size - limit))
            data = f.read(limit)
    except OSError:
        return ""
    if size > limit:
        data = data.partition(b"\n")[2]  # drop the cut line
    return (start + data).decode("utf-8", errors="replace")


def _spec(run: Run) -> dict:
    path = run.run_dir / "spec.json"
    try:
        if path.stat().st_size > MAX_SPEC:
            return {}
        spec = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return spec if isinstance(spec, dict) else {}


def _get_json(url: str):
    try:
        resp = requests.get(url, timeout=HTTP_TIMEOUT)
        resp.raise_for_status()
        return resp.json()
    except (requests.RequestException, ValueError):
        return None  # a driver UI that is gone or slow is no error: the logs still speak


def rest_executors(run: Run) -> list[dict] | None:
    """Spark's REST API: every executor of the application, removed ones too (removeReason)."""
    if not (run.spark_ui_url and run.spark_app_id):
        return None
    found = _get_json(f"{run.spark_ui_url.rstrip('/')}/api/v1/applications/{run.spark_app_id}/allexecutors")
    return found if isinstance(found, list) else None


def master_app(run: Run) -> tuple[dict | None, list[dict] | None]:
    """(the application's entry, the workers) from a standalone master's /json/; (None, None) elsewhere."""
    if run.cluster.kind != "standalone" or not run.cluster.rest_url:
        return None, None
    state = _get_json(f"{run.cluster.rest_url.rstrip('/')}/json/")
    if not isinstance(state, dict):
        return None, None
    app = next((a for a in state.get("activeapps") or [] if a.get("id") == run.spark_app_id), None)
    return (app if run.spark_app_id else None), state.get("workers")


def _asks_spark(run: Run, driver_log: str) -> bool:
    """Ask Spark's APIs only while the application lives and may be waiting for executors or TF nodes:
    a training run's tick stays free of HTTP calls."""
    waiting = run.status == Status.SUBMITTED or diagnose.pending_reservations(driver_log) is not None
    return run.status in WATCHED and waiting


def observe(run: Run, state: BackendStatus | None = None, now: float | None = None) -> diagnose.Observation:
    spec = _spec(run)
    timeouts = spec.get("timeouts") or {}
    driver_log = tail(artifacts.log_path(run, "driver"), DRIVER_TAIL)
    executor_logs = {}
    for ex in artifacts.executors(run)[-MAX_EXECUTORS:]:
        text = tail(artifacts.log_path(run, ex, "stderr"), EXECUTOR_TAIL, head=EXECUTOR_HEAD)
        if text:
            executor_logs[ex] = text
    executors = app = workers = None
    if _asks_spark(run, driver_log):
        executors = rest_executors(run)
        app, workers = master_app(run)
    gone = state is not None and state.state == Status.FAILED and (state.reason or "") == DRIVER_VANISHED
    return diagnose.Observation(
        driver_log=driver_log,
        executor_logs=executor_logs,
        executors=executors,
        master_app=app,
        workers=workers,
        cluster_size=int(spec.get("cluster_size") or run.num_executors),
        asked=diagnose.Asked(
            executors=run.num_executors,
            cores=run.executor_cores,
            memory_mb=run.executor_memory_mb,
            gpus=run.gpus_per_executor,
        ),
        reservation_timeout=timeouts.get("reservation"),
        feed_timeout=timeouts.get("feed"),
        driver_gone=DRIVER_VANISHED if gone else None,
        now=_now() if now is None else now,
    )


def clock(ts: float) -> str:
    """HH:MM:SS TZ in the site's time zone."""
    return timezone.localtime(datetime.fromtimestamp(ts, tz=UTC)).strftime("%H:%M:%S %Z")


def _store(run: Run, record: dict) -> None:
    if record != run.diagnosis:
        Run.objects.filter(pk=run.pk).update(diagnosis=record)
        run.diagnosis = record


def check(run: Run, backend=None, state: BackendStatus | None = None, now: float | None = None) -> dict:
    """Diagnose one run (just reconciled), store the finding, fail the run when it is due. Returns
    the stored diagnosis ({} or without "code" while nothing is wrong)."""
    now = _now() if now is None else now
    watched = run.status in WATCHED
    if not watched and run.status != Status.FAILED:
        return run.diagnosis  # succeeded or cancelled: nothing to explain
    obs = observe(run, state, now)
    found = diagnose.diagnose(obs)
    old = dict(run.diagnosis or {})
    unanswered = obs.executors is None and obs.master_app is None and _asks_spark(run, obs.driver_log)
    if found is None and old.get("code") and watched and unanswered:
        # Spark's APIs were asked and none answered: not knowing is no recovery (one slow answer would
        # restart the grace). The last finding stands.
        found = diagnose.Diagnosis(**{f.name: old[f.name] for f in fields(diagnose.Diagnosis) if f.name in old})
    if found is None:
        if old.get("code") and watched:  # it recovered
            _store(run, {"recovered": old["code"], "recovered_at": now, "notified": old.get("notified", False)})
        return run.diagnosis
    record = found.to_dict()
    same = old.get("code") == found.code
    record["first_seen"] = old.get("first_seen", now) if same else now
    if not watched:
        # Spark (or the backend) failed the run first: the finding explains why; nothing to do.
        if not same:
            _store(run, {**record, "ended_by_spark": True})
        return run.diagnosis
    # The grace counts from when the run was first found stuck, whichever rule matched since.
    record["stuck_since"] = old.get("stuck_since", now) if old.get("code") else now
    record["grace_s"] = 0 if found.fatal else settings.SPARKDECK_STUCK_GRACE_SECONDS
    record["fail_at"] = now if found.fatal else record["stuck_since"] + record["grace_s"]
    record["fail_at_text"] = clock(record["fail_at"])
    record["notified"] = bool(old.get("notified"))
    if not found.fatal and not record["notified"]:
        notify(run, "stuck", f"{found.title}. {found.cause}")  # once per run, on commit
        record["notified"] = True
    if now < record["fail_at"]:
        _store(run, record)
        return run.diagnosis
    if _fail(run, found, backend):
        record.update(failed_by_watchdog=True, failed_at=now, failed_at_text=clock(now))
    _store(run, record)
    return run.diagnosis


def _fail(run: Run, found: diagnose.Diagnosis, backend=None) -> bool:
    """Cancel the application (frees its executors, ends a driver TFoS would keep waiting), then fail
    the run; False when it had ended meanwhile."""
    backend = backend or cluster_services.backend_for(run.cluster)
    handle = dict(run.backend_handle or {})
    if handle:
        try:
            backend.cancel_remote(handle)  # frees the executors now, from any host
        except Exception:  # noqa: BLE001 - the run is failed all the same; the error is logged
            log.exception("watchdog: killing the application of run %s failed", run.pk)
        try:
            backend.logs(handle, final=True)  # the executors' last words: the application is over
        except BackendError as exc:
            log.warning("log collection for run %s: %s", run.pk, exc)
    try:
        run.transition(Status.FAILED, reason=found.title, detail="\n".join(found.evidence))
    except StaleStatus:
        return False  # it ended meanwhile (the user cancelled it, or Spark failed it)
    drivers.request_stop(run.pk)  # the driver TFoS would keep waiting: stopped on its own host
    return True


def message(run: Run, record: dict | None = None) -> str:
    """The banner's last line: when the run will be failed, or who ended it."""
    d = run.diagnosis if record is None else record
    if d.get("failed_by_watchdog"):
        return f"Failed by the watchdog at {d.get('failed_at_text', '')}."
    if run.status in WATCHED:
        if d.get("fatal"):
            return "The run cannot recover: the watchdog is failing it."
        return f"The run will be failed at {d.get('fail_at_text', '')} unless it recovers."
    if run.status == Status.FAILED:
        return "The run had already failed; this is what its logs say."
    return f"The run ended ({run.get_status_display().lower()}) before the watchdog's deadline."


def banner(run: Run) -> dict:
    """What the run page shows (live.json's "diagnosis"): {} while nothing is wrong."""
    d = run.diagnosis or {}
    if not d.get("code"):
        return {}
    keys = ("code", "title", "cause", "evidence", "advice", "fatal", "first_seen", "fail_at", "fail_at_text")
    return {
        **{k: d.get(k) for k in keys},
        "failed_by_watchdog": bool(d.get("failed_by_watchdog")),
        "message": message(run),
    }
