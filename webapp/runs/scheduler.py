"""The capacity-aware queue: QUEUED runs of a cluster are sent in submission order while they fit
the cluster's free capacity and their team's quota; the others wait with a reason.

Strict first-in-first-out for capacity (a big run at the head is not starved by small ones behind
it); a run held back by its own team's quota does not block other teams.
"""

from __future__ import annotations

import fcntl
import logging
from collections import defaultdict

from django.conf import settings

from webapp.clusters import capacity as cluster_capacity
from webapp.clusters.models import Cluster

from . import lifecycle
from .models import Run
from .preflight import Ask, describe
from .states import Status

log = logging.getLogger(__name__)


def place(free: list[list[int]], ask: Ask) -> list[list[int]] | None:
    """Free (cores, memory MB, GPUs) per worker after placing ask's executors first-fit, or None."""
    left = [list(w) for w in free]
    need = (ask.executor_cores, ask.executor_memory_mb, ask.gpus_per_executor)
    for _ in range(ask.num_executors):
        for w in left:
            if all(have >= n for have, n in zip(w, need, strict=False)):
                for i, n in enumerate(need):
                    w[i] -= n
                break
        else:
            return None
    return left


def reserve_pending(free: list[list[int]], runs) -> list[list[int]]:
    """Take SUBMITTED runs' executors off the live free capacity: their drivers are starting and the
    master has not granted (or counted) their executors yet. Conservative by a tick at most."""
    for run in runs:
        placed = place(free, Ask.of(run))
        free = placed if placed is not None else [[0, 0, 0] for _ in free]
    return free


def _quota_block(quota, used: dict, ask: Ask) -> str:
    if quota is None:
        return ""
    if quota.max_concurrent_runs and used["runs"] + 1 > quota.max_concurrent_runs:
        return f"your team's quota allows {quota.max_concurrent_runs} active run(s) on this cluster"
    if quota.max_total_cores and used["cores"] + ask.total_cores > quota.max_total_cores:
        return f"your team's quota allows {quota.max_total_cores} cores on this cluster ({used['cores']} in use)"
    if quota.max_total_gpus and used["gpus"] + ask.total_gpus > quota.max_total_gpus:
        return f"your team's quota allows {quota.max_total_gpus} GPUs on this cluster ({used['gpus']} in use)"
    return ""


def _free_text(free: list[list[int]]) -> str:
    if not free:
        return "no live workers"
    return ", ".join(f"{c} core(s)/{m} MB" + (f"/{g} GPU(s)" if g else "") for c, m, g in free)


def dispatch(cluster_id: int) -> list[int]:
    """Send the queued runs of one cluster that fit now; returns the ids sent."""
    lock_path = settings.VAR_DIR / "run" / f"dispatch-{cluster_id}.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one dispatcher per cluster at a time on this host
        return _dispatch(cluster_id)


def _dispatch(cluster_id: int) -> list[int]:
    queue = Run.objects.filter(cluster_id=cluster_id, status=Status.QUEUED).order_by("created_at", "id")
    queued = list(queue.select_related("team"))
    if not queued:
        return []
    cluster = Cluster.objects.get(pk=cluster_id)
    reasons: dict[int, str] = {}
    sent: list[int] = []
    if not cluster.enabled:
        reasons = {r.pk: f"Waiting: cluster {cluster.name} is disabled by an admin." for r in queued}
        _save_reasons(reasons)
        return sent
    cap = cluster_capacity.live_capacity(cluster)
    if not cap.reachable:
        _save_reasons({r.pk: f"Waiting: {cluster.name} is not reachable ({cap.error})" for r in queued})
        return sent

    active = list(Run.objects.filter(cluster_id=cluster_id, status__in=[Status.SUBMITTED, Status.RUNNING]))
    free = [[w.cores_free, w.memory_free_mb, w.gpus_free] for w in cap.alive]
    free = reserve_pending(free, [r for r in active if r.status == Status.SUBMITTED])
    used = defaultdict(lambda: {"runs": 0, "cores": 0, "gpus": 0})
    for r in active:
        u = used[r.team_id]
        u["runs"] += 1
        u["cores"] += r.total_cores
        u["gpus"] += r.total_gpus
    quotas = {q.team_id: q for q in cluster.quotas.all()}

    blocked_by = None
    for run in queued:
        ask = Ask.of(run)
        if blocked_by is not None:
            reasons[run.pk] = f"Waiting behind run {blocked_by} (runs start in the order they were submitted)."
            continue
        if cap.slots(ask.executor_cores, ask.executor_memory_mb, ask.gpus_per_executor, free=False) < ask.num_executors:
            reasons[run.pk] = (
                f"Waiting: {ask.text()} does not fit {cluster.name} as it is now ({describe(cap)}). "
                "Cancel it or wait for workers to come back."
            )
            continue  # it would block everyone forever; let the others pass
        why = _quota_block(quotas.get(run.team_id), used[run.team_id], ask)
        if why:
            reasons[run.pk] = f"Waiting: {why}."
            continue
        placed = place(free, ask)
        if placed is None:
            reasons[run.pk] = f"Waiting for capacity: needs {ask.text()}; free now: {_free_text(free)}."
            blocked_by = run.pk
            continue
        free = placed
        u = used[run.team_id]
        u["runs"] += 1
        u["cores"] += ask.total_cores
        u["gpus"] += ask.total_gpus
        Run.objects.filter(pk=run.pk).update(queue_reason="")
        lifecycle.submit(run.pk)
        sent.append(run.pk)
    _save_reasons(reasons)
    return sent


def _save_reasons(reasons: dict[int, str]) -> None:
    for pk, text in reasons.items():
        Run.objects.filter(pk=pk, status=Status.QUEUED).exclude(queue_reason=text[:500]).update(queue_reason=text[:500])


def dispatch_run(run_id: int) -> list[int]:
    cluster_id = Run.objects.filter(pk=run_id, status=Status.QUEUED).values_list("cluster_id", flat=True).first()
    return dispatch(cluster_id) if cluster_id else []


def dispatch_all() -> list[int]:
    """Dispatch every cluster that has queued runs (called on each reconcile tick)."""
    sent = []
    ids = Run.objects.filter(status=Status.QUEUED).order_by().values_list("cluster_id", flat=True).distinct()
    for cluster_id in sorted(set(ids)):
        try:
            sent += dispatch(cluster_id)
        except Exception:  # noqa: BLE001 - one broken cluster must not stop the others
            log.exception("dispatch for cluster %s failed", cluster_id)
    return sent
