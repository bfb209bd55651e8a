"""The interface every cluster backend implements (standalone, YARN; local later).

Django-free on purpose: the Celery tasks translate model rows into a SubmitRequest and store the
returned Handle (a plain JSON-able dict) on the run, so a worker restart can pick the run up again.
"""

from __future__ import annotations

import abc
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# A Handle is whatever a backend needs to find the run again later. It must survive json.dumps.
# status() may add keys to it (app_id, last_state): callers should persist it after each call.
Handle = dict[str, Any]

STATES = ("SUBMITTED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED")
FINAL_STATES = ("SUCCEEDED", "FAILED", "CANCELLED")


class BackendError(Exception):
    """A failure whose message is safe to show to users (no stack traces, no secrets)."""


class ClusterUnreachable(BackendError):
    """The cluster manager did not answer; nothing was submitted."""


# Environment variables Sparkdeck sets for every run (legacy Keras, the interpreters, the loopback
# binding): neither a request's env nor an admin's executor env may set them.
MANAGED_ENV = frozenset(
    {"TF_USE_LEGACY_KERAS", "PYSPARK_PYTHON", "SPARK_LOCAL_IP", "TFOS_SERVER_HOST", "SPARKDECK_BIND_HOST"}
)


@dataclass
class SubmitRequest:
    run_id: int | str
    run_dir: Path
    master_url: str
    app_name: str
    entry: str  # path to workers/jobs/driver.py (or any Python entry point)
    entry_args: list[str] = field(default_factory=list)
    py_files: list[str] = field(default_factory=list)
    num_executors: int = 2
    executor_cores: int = 1
    executor_memory_mb: int = 1024
    driver_memory_mb: int = 1024
    python: str = "python3"  # interpreter for driver and executors
    spark_conf: dict[str, str] = field(default_factory=dict)  # extra --conf, never TFoS-critical keys
    env: dict[str, str] = field(default_factory=dict)  # extra env of the spark-submit process
    executor_env: dict[str, str] = field(default_factory=dict)  # -> spark.executorEnv.*
    bind_host: str | None = None  # e.g. "127.0.0.1" to keep Spark and TFoS on loopback
    gpus_per_executor: int = 0
    notify: str = ""  # a workers.notify.spec(): the launcher publishes it when the driver exits
    # {"driver": ..., "executor": ...}: JVM options for the run's class-data archives (workers/jvm_cds.py)
    java_opts: dict[str, str] = field(default_factory=dict)
    # The cluster's event log directory (a path, file: or hdfs: URI): the run writes Spark event logs
    # there, for a History Server; "" = none.
    event_log_dir: str = ""

    def __post_init__(self) -> None:
        self.run_dir = Path(self.run_dir)


def event_log_conf(location: str) -> dict[str, str]:
    """The Spark settings that make a run write its event log to `location` ({} for none)."""
    return {"spark.eventLog.enabled": "true", "spark.eventLog.dir": location} if location else {}


def local_event_log_dir(location: str) -> Path | None:
    """The directory a path or file: URI names (None for another file system, e.g. hdfs:)."""
    if location.startswith("/"):
        return Path(location)
    if location.startswith("file:"):
        rest = location[len("file:") :]
        return Path("/" + rest.lstrip("/"))  # file:/x and file:///x
    return None


def prepare_event_log_dir(location: str) -> None:
    """Create a local event log directory before submitting: a SparkContext whose event log directory
    is missing fails at start, with a Java stack trace. HDFS directories are the cluster's to create."""
    path = local_event_log_dir(location) if location else None
    if path is None:
        return
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BackendError(
            f"The cluster's event log directory {location} could not be created ({exc.strerror or exc}); "
            "an admin must fix it or clear it in the cluster settings."
        ) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise BackendError(
            f"The cluster's event log directory {location} is not writable by Sparkdeck's worker; "
            "an admin must fix its permissions or clear it in the cluster settings."
        )


@dataclass
class BackendStatus:
    state: str  # one of STATES
    app_id: str | None = None
    ui_url: str | None = None
    reason: str | None = None  # short, user-facing
    detail: str | None = None  # a few lines of context (log excerpt)
    # set when the driver's host stopped answering (unix time of its last answer): its state is unknown
    host_silent_since: float | None = None

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES


class Backend(abc.ABC):
    kind = "abstract"

    @abc.abstractmethod
    def build_argv(self, req: SubmitRequest) -> list[str]:
        """The spark-submit command line, always a list (never a shell string)."""

    @abc.abstractmethod
    def submit(self, req: SubmitRequest) -> Handle:
        """Start the driver detached from the caller; return a JSON-able handle."""

    @abc.abstractmethod
    def status(self, handle: Handle, driver=None) -> BackendStatus:
        """Current state; cheap enough to call every few seconds. `driver` is the driver's
        supervision.DriverState as the caller knows it (from the driver's own host); None: probe it
        here, which is right only on that host."""

    def cancel_remote(self, handle: Handle) -> None:
        """The part of a cancel that needs no access to the driver's processes (asking the cluster
        manager to kill the application): safe from any host, also from the web. Raises BackendError
        when the cluster refused and the application would live on."""
        return None

    @abc.abstractmethod
    def cancel(self, handle: Handle, reason: str = "") -> None:
        """Stop the application and its driver; idempotent; runs on the driver's host. `reason` (who
        cancelled) is what a later status() reports."""

    @abc.abstractmethod
    def logs(self, handle: Handle, final: bool = False) -> list[Path]:
        """Copy executor logs into the run dir (incrementally) and return the copied files.
        `final`: the run has ended (called once, before it is marked done): copy every log of every
        executor the application had to its end, and record which could not be copied whole, and why."""

    def follow_log(self, handle: Handle, executor: str, stream: str) -> None:
        """Bring one executor log's copy up to date now, between logs() calls: the run page asks
        for the log it shows while the run is active. Best effort and cheap; by default nothing
        (the periodic logs() copy is all a backend offers)."""
        return None


def get_backend(kind: str, **cluster_settings: Any) -> Backend:
    """Backend for a cluster kind; settings are the cluster's connection fields (master_url, ...)."""
    # Imported lazily so importing base never drags in a backend's dependencies.
    if kind == "standalone":
        from workers.backends.standalone import StandaloneBackend

        return StandaloneBackend(**cluster_settings)
    if kind == "yarn":
        if not cluster_settings.get("rest_url"):
            raise BackendError("A 'yarn' cluster is not available without its ResourceManager web address (rest_url).")
        from workers.backends.yarn import YarnBackend

        return YarnBackend(**cluster_settings)
    if kind == "local":
        raise BackendError(f"The {kind!r} cluster backend is not available yet.")
    raise BackendError(f"Unknown cluster kind {kind!r}.")
