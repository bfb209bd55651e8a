"""The argv of the long-running processes, shared by `make run`, the e2e fixtures and the bench."""

import sys
from pathlib import Path

BIN = Path(sys.executable).parent  # the venv that runs us has celery and gunicorn


def celery_worker_argv(schedule: Path, concurrency: int = 2) -> list[str]:
    # -B: beat in the same process drives the periodic reconcile (embedded mode, tests).
    return [str(BIN / "celery"), "-A", "workers.celery", "worker", "-B", "-l", "info",
            "-c", str(concurrency), "-s", str(schedule)]  # fmt: skip


def web_argv(port: int, workers: int = 2) -> list[str]:
    return [str(BIN / "gunicorn"), "webapp.wsgi", "-b", f"127.0.0.1:{port}", "--workers", str(workers),
            "--threads", "4", "--timeout", "300"]  # fmt: skip
