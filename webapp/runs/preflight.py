"""Checks made before a run is accepted (and again before it is sent): a request that cannot run is
refused with a message saying what to change, instead of hanging in TFoS ("waiting for N
reservations", no free GPU, executors ≠ cluster size, dynamic allocation on)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from webapp.clusters import capacity as cluster_capacity
from webapp.clusters import services as cluster_services
from workers.backends.base import BackendError, SubmitRequest


@dataclass(frozen=True)
class Ask:
    """The resources one run asks for: num_executors TF workers (= the TFoS cluster size)."""

    num_executors: int
    executor_cores: int
    executor_memory_mb: int
    gpus_per_executor: int = 0

    @classmethod
    def of(cls, run) -> Ask:
        return cls(run.num_executors, run.executor_cores, run.executor_memory_mb, run.gpus_per_executor)

    @property
    def total_cores(self) -> int:
        return self.num_executors * self.executor_cores

    @property
    def total_gpus(self) -> int:
        return self.num_executors * self.gpus_per_executor

    def text(self) -> str:
        gpu = f", {self.gpus_per_executor} GPU(s)" if self.gpus_per_executor else ""
        return f"{self.num_executors} executor(s) × {self.executor_cores} core(s), {self.executor_memory_mb} MB{gpu}"


def within_limits(cluster, ask: Ask) -> dict:
    errors = {}
    if not cluster.enabled:
        errors["cluster"] = f"Cluster {cluster.name} is disabled; pick another."
    if ask.num_executors < 1:
        errors["num_executors"] = "A run needs at least one executor."
    elif ask.num_executors > cluster.max_executors:
        errors["num_executors"] = f"{cluster.name} allows at most {cluster.max_executors} executors."
    if ask.executor_cores > cluster.max_executor_cores:
        errors["executor_cores"] = f"{cluster.name} allows at most {cluster.max_executor_cores} cores per executor."
    if ask.executor_memory_mb > cluster.max_executor_memory_mb:
        errors["executor_memory_mb"] = (
            f"{cluster.name} allows at most {cluster.max_executor_memory_mb} MB per executor."
        )
    if ask.gpus_per_executor and not cluster.max_gpus_per_executor:
        errors["gpus_per_executor"] = f"{cluster.name} has no GPUs for Sparkdeck runs; ask for 0 or pick another."
    elif ask.gpus_per_executor > cluster.max_gpus_per_executor:
        most = cluster.max_gpus_per_executor
        errors["gpus_per_executor"] = f"{cluster.name} allows at most {most} GPU(s) per executor."
    return errors


def within_quota(cluster, team, ask: Ask) -> dict:
    """A run bigger than the team's whole quota can never start; one that only has to wait for the
    team's other runs is queued instead (see scheduler)."""
    quota = cluster.quota_for(team)
    if quota is None:
        return {}
    errors = {}
    if quota.max_total_cores and ask.total_cores > quota.max_total_cores:
        errors["executor_cores"] = (
            f"{ask.total_cores} cores in all is more than your team's quota on {cluster.name} "
            f"({quota.max_total_cores} cores): use fewer executors or cores."
        )
    if quota.max_total_gpus and ask.total_gpus > quota.max_total_gpus:
        errors["gpus_per_executor"] = (
            f"{ask.total_gpus} GPUs in all is more than your team's quota on {cluster.name} "
            f"({quota.max_total_gpus} GPUs)."
        )
    return errors


def conf_string(argv: list[str]) -> dict[str, str]:
    """--conf k=v pairs (and the flags TFoS depends on) of a spark-submit argv."""
    conf = {}
    for flag, value in zip(argv, argv[1:], strict=False):
        if flag == "--conf":
            key, _, val = value.partition("=")
            conf[key] = val
        elif flag in ("--num-executors", "--executor-cores"):
            conf[flag] = value
    return conf


def tfos_settings(cluster, ask: Ask) -> dict:
    """Build the argv the cluster's backend would run and check what TFoS needs is in it: one TF
    process per executor (task.cpus = executor cores), a fixed executor count equal to the TFoS
    cluster size, no dynamic allocation, the GPU amounts asked. Backend configuration errors (a YARN
    GPU run with no discovery script, say) surface here too."""
    req = SubmitRequest(
        run_id="preflight",
        run_dir=Path("/nonexistent/preflight"),
        master_url=cluster.master_url,
        app_name="sparkdeck-preflight",
        entry="driver.py",
        num_executors=ask.num_executors,
        executor_cores=ask.executor_cores,
        executor_memory_mb=ask.executor_memory_mb,
        python=cluster_services.executor_python(cluster),
        spark_conf=cluster_services.extra_conf(cluster),
        executor_env=cluster_services.executor_env(cluster),
        bind_host=cluster.bind_host or None,
        gpus_per_executor=ask.gpus_per_executor,
        event_log_dir=cluster.event_log_dir,
    )
    try:
        conf = conf_string(cluster_services.backend_for(cluster).build_argv(req))
    except BackendError as exc:
        return {"cluster": f"{cluster.name} is misconfigured for this run: {exc}"}
    want = {
        "spark.dynamicAllocation.enabled": "false",
        "spark.executor.instances": str(ask.num_executors),
        "spark.task.cpus": str(ask.executor_cores),
    }
    if ask.gpus_per_executor:
        want["spark.executor.resource.gpu.amount"] = str(ask.gpus_per_executor)
        want["spark.task.resource.gpu.amount"] = str(ask.gpus_per_executor)
    wrong = [f"{k}={conf.get(k)!r} (needs {v})" for k, v in want.items() if conf.get(k) != v]
    if wrong:
        return {"cluster": f"{cluster.name}'s Spark settings would make TFoS hang: " + "; ".join(wrong)}
    return {}


def fits_cluster(cluster, ask: Ask, cap=None) -> dict:
    """Live check: the cluster answers, and the run fits it when empty (else it would wait forever)."""
    cap = cap or cluster_capacity.live_capacity(cluster)
    if not cap.reachable:
        return {"cluster": f"{cluster.name} is not reachable: {cap.error} Try again later or pick another cluster."}
    if ask.gpus_per_executor and cap.gpus == 0:
        return {"gpus_per_executor": f"{cluster.name}'s workers report no GPUs right now; ask for 0 GPUs."}
    slots = cap.slots(ask.executor_cores, ask.executor_memory_mb, ask.gpus_per_executor, free=False)
    if slots < ask.num_executors:
        return {
            "num_executors": (
                f"{cluster.name} can host at most {slots} executor(s) of {ask.executor_cores} core(s), "
                f"{ask.executor_memory_mb} MB"
                + (f", {ask.gpus_per_executor} GPU(s)" if ask.gpus_per_executor else "")
                + f" even when idle ({describe(cap)}); this run asks for {ask.num_executors}."
            )
        }
    return {}


def describe(cap) -> str:
    alive = cap.alive
    gpus = f", {cap.gpus} GPU(s)" if cap.gpus else ""
    return f"{len(alive)} live worker(s): {cap.cores} cores, {cap.memory_mb} MB{gpus} in all"


def check(cluster, team, ask: Ask, live: bool = True) -> dict:
    """Every pre-flight check on resources; field → message. Live checks only when the static ones pass."""
    errors = within_limits(cluster, ask)
    errors.update(within_quota(cluster, team, ask))
    if not errors:
        errors.update(tfos_settings(cluster, ask))
    if not errors and live:
        errors.update(fits_cluster(cluster, ask))
    return errors


@dataclass(frozen=True)
class Parallel:
    """How many runs of one size a team may have active at once on a cluster, and what sets it."""

    most: int
    why: str


def max_parallel(cluster, team, ask: Ask, cap=None) -> Parallel:
    """The most runs of `ask` that can be active together: the team's quota (runs, cores, GPUs) and what
    the cluster holds when idle (cap: its live capacity; None to leave the cluster out)."""
    limits = []
    quota = cluster.quota_for(team)
    if quota is not None:
        if quota.max_concurrent_runs:
            limits.append((quota.max_concurrent_runs, f"your team's quota allows {quota.max_concurrent_runs} run(s)"))
        if quota.max_total_cores and ask.total_cores:
            n = quota.max_total_cores // ask.total_cores
            why = f"your team's quota of {quota.max_total_cores} cores holds {n} run(s) of {ask.total_cores}"
            limits.append((n, why))
        if quota.max_total_gpus and ask.total_gpus:
            n = quota.max_total_gpus // ask.total_gpus
            why = f"your team's quota of {quota.max_total_gpus} GPUs holds {n} run(s) of {ask.total_gpus}"
            limits.append((n, why))
    if cap is not None and cap.reachable:
        slots = cap.slots(ask.executor_cores, ask.executor_memory_mb, ask.gpus_per_executor, free=False)
        n = slots // max(1, ask.num_executors)
        limits.append((n, f"{cluster.name} holds {n} run(s) of {ask.text()} ({describe(cap)})"))
    if not limits:
        return Parallel(0, "")  # no limit known
    most, why = min(limits, key=lambda item: item[0])
    return Parallel(most, why)
