"""Live capacity of a cluster: what its workers have and what is free right now.

Django-free on purpose (plain HTTP + dataclasses), so the admin, the run form and Celery tasks can all
use it. Never raises for network or protocol trouble: an unreachable cluster is a Capacity with
reachable=False and an error in plain words.

Sources:
- standalone: GET <rest_url>/json/ on the master web UI (checked on pyspark 4.3's Master). Per worker:
  "id", "host", "state" (ALIVE|DEAD|DECOMMISSIONED|UNKNOWN), "cores", "coresfree", "memory",
  "memoryfree" (MB), "resources"/"resourcesfree" = {"gpu": {"name": "gpu", "addresses": [...]}}.
  Top level "activeapps": [{"state": "RUNNING"|"WAITING", ...}].
- YARN: ResourceManager REST, GET /ws/v1/cluster/nodes (per node "state" RUNNING|UNHEALTHY|LOST|...,
  "availableVirtualCores", "usedVirtualCores", "availMemoryMB", "usedMemoryMB"; Hadoop 3 adds
  "availableResource"/"usedResource"/"totalResource" whose resourceInformations list "yarn.io/gpu")
  and GET /ws/v1/cluster/metrics ("clusterMetrics": {"appsRunning", "appsPending"}).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import requests

ALIVE_STATES = ("ALIVE", "RUNNING")  # standalone worker / YARN node ready for containers
YARN_GPU = "yarn.io/gpu"
DEFAULT_TIMEOUT = 5.0
KNOWN_ERRORS = {  # socket error text -> what to tell the admin
    "Connection refused": "connection refused: nothing listens on that port",
    "Name or service not known": "host name not found",
    "Temporary failure in name resolution": "host name not found",
    "No route to host": "no route to host",
    "Network is unreachable": "network unreachable",
}


@dataclass
class WorkerCapacity:
    id: str
    host: str
    state: str
    cores: int
    cores_free: int
    memory_mb: int
    memory_free_mb: int
    gpus: int = 0
    gpus_free: int = 0

    @property
    def alive(self) -> bool:
        return self.state in ALIVE_STATES

    def fits(self, cores: int, memory_mb: int, gpus: int = 0, free: bool = True) -> int:
        """How many executors of that size this worker can hold (now, or when idle)."""
        have = (
            (self.cores_free, self.memory_free_mb, self.gpus_free) if free else (self.cores, self.memory_mb, self.gpus)
        )
        n = min(have[0] // cores, have[1] // memory_mb)
        if gpus:
            n = min(n, have[2] // gpus)
        return max(n, 0)


@dataclass
class Capacity:
    reachable: bool
    error: str = ""
    workers: list[WorkerCapacity] = field(default_factory=list)
    apps_running: int = 0
    apps_waiting: int = 0

    @property
    def alive(self) -> list[WorkerCapacity]:
        return [w for w in self.workers if w.alive]

    def _sum(self, attr: str) -> int:
        return sum(getattr(w, attr) for w in self.alive)

    @property
    def cores(self) -> int:
        return self._sum("cores")

    @property
    def cores_free(self) -> int:
        return self._sum("cores_free")

    @property
    def memory_mb(self) -> int:
        return self._sum("memory_mb")

    @property
    def memory_free_mb(self) -> int:
        return self._sum("memory_free_mb")

    @property
    def gpus(self) -> int:
        return self._sum("gpus")

    @property
    def gpus_free(self) -> int:
        return self._sum("gpus_free")

    def slots(self, cores: int, memory_mb: int, gpus: int = 0, free: bool = True) -> int:
        """Executors of that size that fit, packed per worker (an executor never spans workers).

        free=False: on this cluster when idle. On YARN pass the container size (executor memory plus
        overhead); the scheduler's rounding to its minimum allocation is not modelled.
        """
        if cores < 1 or memory_mb < 1 or gpus < 0:
            raise ValueError("an executor needs at least 1 core and 1 MB, and no negative GPUs")
        return sum(w.fits(cores, memory_mb, gpus, free) for w in self.alive)


def live_capacity(cluster, timeout: float | None = None) -> Capacity:
    """Capacity of a Cluster row (or anything with .kind and .rest_url); timeout defaults to the row's
    log_fetch_timeout_s."""
    if timeout is None:
        timeout = float(getattr(cluster, "log_fetch_timeout_s", 0) or DEFAULT_TIMEOUT)
    return fetch_capacity(cluster.kind, cluster.rest_url, timeout)


def fetch_capacity(kind: str, rest_url: str, timeout: float = DEFAULT_TIMEOUT) -> Capacity:
    base = (rest_url or "").rstrip("/")
    if not base:
        return Capacity(reachable=False, error="No web address (rest_url) is configured for this cluster.")
    try:
        if kind == "yarn":
            return _yarn(base, timeout)
        if kind == "standalone":
            return _standalone(base, timeout)
        return Capacity(reachable=False, error=f"Unknown cluster kind {kind!r}.")
    except _Unreachable as exc:
        return Capacity(reachable=False, error=str(exc))


# -- HTTP ----------------------------------------------------------------------------------------


class _Unreachable(Exception):
    pass


def _get_json(url: str, timeout: float, what: str) -> dict:
    """GET url as JSON; any failure becomes _Unreachable with a sentence an admin can act on."""
    try:
        resp = requests.get(url, timeout=timeout, headers={"Accept": "application/json"})
    except requests.Timeout:
        raise _Unreachable(f"The {what} at {url} did not answer within {timeout:g} s.") from None
    except requests.ConnectionError as exc:
        raise _Unreachable(f"Cannot connect to the {what} at {url} ({_reason(exc)}).") from None
    except requests.RequestException as exc:
        raise _Unreachable(f"Cannot query the {what} at {url}: {exc}.") from None
    if resp.status_code != 200:
        raise _Unreachable(f"The {what} at {url} answered HTTP {resp.status_code}; is the web address right?")
    try:
        data = resp.json()
    except ValueError:
        raise _Unreachable(f"The {what} at {url} did not answer with JSON; is the web address right?") from None
    if not isinstance(data, dict):
        raise _Unreachable(f"The {what} at {url} answered unexpected JSON.")
    return data


def _reason(exc: Exception) -> str:
    # requests nests the socket error several levels deep; the innermost one reads best.
    text = str(exc)
    for known, words in KNOWN_ERRORS.items():
        if known in text:
            return words
    return "connection failed"


def _int(value) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


# -- Spark standalone ----------------------------------------------------------------------------


def _addresses(resources, name: str = "gpu") -> int:
    res = (resources or {}).get(name) if isinstance(resources, dict) else None
    return len(res.get("addresses") or []) if isinstance(res, dict) else 0


def _standalone(base: str, timeout: float) -> Capacity:
    state = _get_json(f"{base}/json/", timeout, "Spark master web UI")
    if "workers" not in state:
        raise _Unreachable(f"{base}/json/ is not a Spark master's state; is the web address right?")
    workers = []
    for w in state.get("workers") or []:
        gpus = _addresses(w.get("resources"))
        if "resourcesfree" in w:
            gpus_free = _addresses(w.get("resourcesfree"))
        else:  # older masters only report what is used
            gpus_free = gpus - _addresses(w.get("resourcesused"))
        workers.append(
            WorkerCapacity(
                id=str(w.get("id", "")),
                host=str(w.get("host", "")),
                state=str(w.get("state", "UNKNOWN")),
                cores=_int(w.get("cores")),
                cores_free=_int(w.get("coresfree")),
                memory_mb=_int(w.get("memory")),
                memory_free_mb=_int(w.get("memoryfree")),
                gpus=gpus,
                gpus_free=max(gpus_free, 0),
            )
        )
    apps = [a.get("state") for a in state.get("activeapps") or []]
    return Capacity(
        reachable=True,
        workers=workers,
        apps_running=apps.count("RUNNING"),
        apps_waiting=apps.count("WAITING"),
    )


# -- YARN ----------------------------------------------------------------------------------------


def _as_list(value) -> list:
    # The RM's JSON writer turns a one-element list into a bare object, and an empty one into null.
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _yarn_gpus(resource) -> int | None:
    """yarn.io/gpu in a Hadoop 3 resource object; None when the object is absent."""
    if not isinstance(resource, dict):
        return None
    infos = _as_list((resource.get("resourceInformations") or {}).get("resourceInformation"))
    return sum(_int(i.get("value")) for i in infos if isinstance(i, dict) and i.get("name") == YARN_GPU)


def _yarn(base: str, timeout: float) -> Capacity:
    what = "YARN ResourceManager"
    nodes = _get_json(f"{base}/ws/v1/cluster/nodes", timeout, what)
    metrics = _get_json(f"{base}/ws/v1/cluster/metrics", timeout, what).get("clusterMetrics")
    if "nodes" not in nodes or not isinstance(metrics, dict):
        raise _Unreachable(f"{base} does not look like a YARN ResourceManager; is the web address right?")
    workers = []
    for n in _as_list((nodes.get("nodes") or {}).get("node")):
        cores_free, memory_free = _int(n.get("availableVirtualCores")), _int(n.get("availMemoryMB"))
        gpus_free = _yarn_gpus(n.get("availableResource")) or 0
        total = _yarn_gpus(n.get("totalResource"))
        gpus = total if total is not None else gpus_free + (_yarn_gpus(n.get("usedResource")) or 0)
        workers.append(
            WorkerCapacity(
                id=str(n.get("id", "")),
                host=str(n.get("nodeHostName", "")),
                state=str(n.get("state", "UNKNOWN")),
                cores=cores_free + _int(n.get("usedVirtualCores")),
                cores_free=cores_free,
                memory_mb=memory_free + _int(n.get("usedMemoryMB")),
                memory_free_mb=memory_free,
                gpus=gpus,
                gpus_free=gpus_free,
            )
        )
    return Capacity(
        reachable=True,
        workers=workers,
        apps_running=_int(metrics.get("appsRunning")),
        apps_waiting=_int(metrics.get("appsPending")),
    )
