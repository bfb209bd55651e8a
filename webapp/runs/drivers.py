"""A run's driver process, seen from the web app: where it runs and what its host last said about it.

The processes are only ever touched on the driver's own host (workers/supervision.py): through the
Celery tasks probe_driver and stop_driver, routed to that host's queue. The web process never signals
a process; a reconciler on another host reads the host's recorded answer (Run.driver_seen).
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.db import transaction
from django.db.models import Q

from webapp.clusters import services as cluster_services
from workers import supervision
from workers.backends.base import BackendError

from .models import Run
from .states import TERMINAL

log = logging.getLogger(__name__)

STOPPED = "stopped"  # the driver of an ended run is known to be gone (stopped, or it had exited)
STOP_RETRY_SECONDS = 15  # an unanswered stop request is sent again after this
STOP_SWEEP_SECONDS = 24 * 3600  # ended runs older than this are no longer swept for a live driver
# (a JSON key that is absent compares as NULL: say so, or the negation would drop those rows too)
_NOT_STOPPED = Q(driver_seen__state__isnull=True) | ~Q(driver_seen__state=STOPPED)


def host_of(handle: dict) -> str:
    return (handle or {}).get("host") or ""


def is_local(handle: dict) -> bool:
    return host_of(handle) in ("", supervision.node_name())


def record(run_id: int, state: supervision.DriverState, **extra) -> dict:
    """Record what the driver's host saw. STOPPED is final: a probe that was under way while the stop
    ran answers later, and must not make a stopped driver look alive again."""
    seen = {"state": state.state, "at": state.seen_at or time.time(), "host": state.host, **extra}
    rows = Run.objects.filter(pk=run_id)
    if state.state != STOPPED:
        rows = rows.filter(_NOT_STOPPED)
    if not rows.update(driver_seen=seen):
        return Run.objects.filter(pk=run_id).values_list("driver_seen", flat=True).first() or seen
    return seen


def state(run: Run, handle: dict) -> supervision.DriverState:
    """The driver's state for the reconciler: probed here on its own host, else the host's last
    recorded answer (and a fresh probe asked of that host for the next tick)."""
    st = supervision.driver_state(handle, run.driver_seen or None, silent_after=float(settings.DRIVER_SILENT_SECONDS))
    if is_local(handle):
        if st.state != (run.driver_seen or {}).get("state") or st.state == supervision.RUNNING:
            run.driver_seen = record(run.pk, st)
    elif st.state != supervision.EXITED:
        _ask(run.pk, host_of(handle), "probe_driver")
    return st


def _ask(run_id: int, host: str, task_name: str) -> None:
    from . import tasks

    task = getattr(tasks, task_name)
    # A probe is only worth its tick; a stop waits longer for a busy worker (the sweep asks again anyway).
    ttl = max(5.0, 3 * float(settings.RECONCILE_SECONDS)) if task_name == "probe_driver" else 120.0
    try:
        task.apply_async((run_id,), queue=supervision.host_queue(host), expires=ttl)
    except Exception:  # noqa: BLE001 - the broker is down: the next tick asks again
        log.warning("could not ask host %s to %s run %s", host, task_name, run_id, exc_info=True)


def probe(run_id: int) -> str:
    """On the driver's host: record what it sees of the driver (the probe_driver task)."""
    run = Run.objects.filter(pk=run_id).only("pk", "backend_handle").first()
    if run is None or not run.backend_handle or not is_local(run.backend_handle):
        return "not here"
    return record(run.pk, supervision.probe_local(run.backend_handle))["state"]


def request_stop(run_id: int) -> None:
    """After a run ended without its driver (cancelled, failed by the watchdog or a silent host): have
    the driver's host stop it, once the move is committed. Safe to call from the web."""
    transaction.on_commit(lambda: _send_stop(run_id))


def _send_stop(run_id: int) -> None:
    run = Run.objects.filter(pk=run_id).only("pk", "backend_handle", "driver_seen").first()
    if run is None or not run.backend_handle or (run.driver_seen or {}).get("state") == STOPPED:
        return  # not launched (the submitter stops its own launch), or already stopped
    seen = dict(run.driver_seen or {})
    Run.objects.filter(pk=run_id).update(driver_seen={**seen, "stop_asked": time.time()})
    _ask(run_id, host_of(run.backend_handle) or supervision.node_name(), "stop_driver")


def stop(run_id: int) -> bool:
    """On the driver's host: stop an ended run's application and driver, keep its logs (the
    stop_driver task). Idempotent; False if the run is not ended or its driver is not here."""
    run = Run.objects.select_related("cluster").filter(pk=run_id).first()
    if run is None or run.status not in TERMINAL or not run.backend_handle or not is_local(run.backend_handle):
        return False
    handle = dict(run.backend_handle)
    backend = cluster_services.backend_for(run.cluster)
    if supervision.probe_local(handle).state == supervision.RUNNING:
        try:
            backend.cancel_remote(handle)  # frees the executors at once
        except BackendError as exc:  # the cluster refused to kill it: asked again by the sweep
            log.warning("stopping run %s: %s", run.pk, exc)
            return False
        supervision.stop_local(handle, grace=getattr(backend, "cancel_grace", 10.0))
    try:
        backend.logs(handle, final=True)  # the executors' last words: the application is over
    except BackendError as exc:
        log.warning("log collection for run %s: %s", run.pk, exc)
    Run.objects.filter(pk=run.pk).update(backend_handle=handle)
    record(run.pk, supervision.DriverState(STOPPED, host=host_of(handle), seen_at=time.time()))
    return True


def sweep_unstopped(now: float | None = None) -> int:
    """Ended runs whose driver is not known to be gone: ask their host to stop it again (a stop task
    lost with a worker, or a host that was down when the run was cancelled)."""
    now = time.time() if now is None else now
    from django.utils import timezone

    since = timezone.now() - timezone.timedelta(seconds=STOP_SWEEP_SECONDS)
    runs = (
        Run.objects.filter(status__in=TERMINAL, finished_at__gte=since)
        .exclude(backend_handle={})
        .filter(_NOT_STOPPED)
        .only("pk", "backend_handle", "driver_seen")
    )
    asked = 0
    for run in runs:
        if now - float((run.driver_seen or {}).get("stop_asked") or 0) >= STOP_RETRY_SECONDS:
            _send_stop(run.pk)
            asked += 1
    return asked
