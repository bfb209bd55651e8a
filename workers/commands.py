"""The argv of the long-running processes, shared by `make run`, the e2e fixtures and the bench."""

import sys
from pathlib import Path

from workers import supervision

BIN = Path(sys.executable).parent  # the venv that runs us has celery and gunicorn

# Run control (submit, reconcile, driver operations) and notifications: short tasks.
CONTROL_QUEUES = ("control", "notify")
# Dataset conversion and model-file checks: long tasks, in a worker of their own.
INGEST_QUEUES = ("ingest",)


def celery_worker_argv(queues=CONTROL_QUEUES + INGEST_QUEUES, concurrency: int = 2, role: str = "worker",
                       node: str | None = None) -> list[str]:  # fmt: skip
    """A worker consuming `queues`; one that runs run control also takes its host's queue, since the
    drivers it launches live on this host. Never with an embedded beat (-B): beat is its own process."""
    node = node or supervision.node_name()
    queues = list(queues)
    if "control" in queues:
        queues.append(supervision.host_queue(node))
    return [str(BIN / "celery"), "-A", "workers.celery", "worker", "-l", "info", "-c", str(concurrency),
            "-Q", ",".join(queues), "-n", f"{role}@{node}"]  # fmt: skip


def celery_beat_argv(schedule: Path, pidfile: Path) -> list[str]:
    # The pid file refuses a second beat on this host: two beats would publish every tick twice.
    return [str(BIN / "celery"), "-A", "workers.celery", "beat", "-l", "info",
            "-s", str(schedule), "--pidfile", str(pidfile)]  # fmt: skip


# The web server's settings (workers, threads, keep-alive, timeouts, control socket) are in this file.
WEB_CONFIG = Path(__file__).resolve().parents[1] / "webapp" / "gunicorn.conf.py"


def web_argv(port: int, workers: int | None = None) -> list[str]:
    """gunicorn on 127.0.0.1:`port` with the project's config; `workers` overrides its process count
    (by default SPARKDECK_WEB_WORKERS, 2)."""
    argv = [str(BIN / "gunicorn"), "-c", str(WEB_CONFIG), "webapp.wsgi", "-b", f"127.0.0.1:{port}"]
    return argv + (["--workers", str(workers)] if workers is not None else [])
