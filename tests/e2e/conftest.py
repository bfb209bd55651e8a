"""The real stack for end-to-end tests: a Spark standalone cluster (master + 2 workers from
pyspark's own jars on 127.0.0.1), PostgreSQL, and the stack's own processes on Redis (gunicorn, which
the executors post their metrics to, a Celery worker and beat), which fault tests kill and restart.
Pages are requested through Django's test client in this process."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import redis
from django.test import Client

from webapp.clusters.models import Cluster
from workers.commands import celery_beat_argv, celery_worker_argv, web_argv
from workers.localcluster import LocalCluster, free_port, free_port_block, group_pids

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def e2e_root(tmp_path_factory):
    return tmp_path_factory.mktemp("e2e")


@pytest.fixture(autouse=True)
def isolated_storage(settings, e2e_root):
    """Web (live server thread) and worker process must agree on where files live."""
    settings.DATA_ROOT = e2e_root / "data"
    settings.ARTIFACT_ROOT = e2e_root / "artifacts"
    settings.VAR_DIR = e2e_root / "var"


@pytest.fixture(scope="session")
def spark_cluster(e2e_root):
    cluster = LocalCluster(
        state_dir=e2e_root / "spark",
        master_port=free_port(),
        webui_port=free_port_block(3),
        workers=2,
        worker_cores=1,
        worker_memory="3g",
        history_port=free_port(),
    )
    cluster.start(timeout=90, history=False)  # the History Server only for the tests that need it
    yield cluster
    cluster.stop()
    assert not cluster.is_running()


@pytest.fixture(scope="session")
def history_server(spark_cluster):
    """The cluster's Spark History Server (one JVM for the session, stopped with the cluster), reading
    spark_cluster.event_log_dir at spark_cluster.history_url."""
    spark_cluster.start_history(timeout=90)
    return spark_cluster


def start_logged(argv, log_path: Path, env, ready=lambda text: "ready." in text, timeout=60) -> subprocess.Popen:
    """Start a stack process in its own session, its output appended to log_path; wait until `ready`
    holds for what it wrote."""
    start = log_path.stat().st_size if log_path.exists() else 0
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + timeout
    while not ready(log_path.read_bytes()[start:].decode(errors="replace")):
        if proc.poll() is not None or time.time() > deadline:
            pytest.fail(f"{argv[:6]} did not start:\n" + log_path.read_text(errors="replace")[-3000:])
        time.sleep(0.3)
    return proc


def kill_group(proc: subprocess.Popen | None, sig=signal.SIGKILL, timeout=30) -> None:
    """Signal a stack process's whole session (its children too) and reap it."""
    if proc is None:
        return
    try:
        os.killpg(proc.pid, sig)
        proc.wait(timeout)
    except ProcessLookupError:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    deadline = time.time() + 10
    while group_pids(proc.pid) and time.time() < deadline:
        time.sleep(0.1)


class Stack:
    """gunicorn, a Celery worker (every queue, this host's too) and beat, as `make run` starts them,
    pointed at the test database. `log_path` is the worker's log."""

    def __init__(self, root: Path, env: dict[str, str], web_port: int):
        self.root, self.env, self.web_port = root, env, web_port
        self.web_url = f"http://127.0.0.1:{web_port}"
        self.log_path = root / "celery-worker.log"
        self.web = self.worker = self.beat = None
        (root / "var" / "run").mkdir(parents=True, exist_ok=True)

    def start_web(self, argv_prefix: tuple[str, ...] = ()) -> subprocess.Popen:
        import urllib.request

        self.web = start_logged([*argv_prefix, *web_argv(self.web_port)], self.root / "web.log", self.env, ready=bool)
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{self.web_url}/healthz", timeout=2) as r:
                    if r.status == 200:
                        return self.web
            except OSError:
                if self.web.poll() is not None or time.time() > deadline:
                    pytest.fail("gunicorn did not start:\n" + (self.root / "web.log").read_text()[-3000:])
                time.sleep(0.3)

    def start_worker(self, **extra_env: str) -> subprocess.Popen:
        self.worker = start_logged(celery_worker_argv(), self.log_path, {**self.env, **extra_env})
        self.worker.log_path = self.log_path
        return self.worker

    def start_beat(self) -> subprocess.Popen:
        argv = celery_beat_argv(self.root / "celerybeat-schedule", self.root / "var" / "run" / "celerybeat.pid")
        self.beat = start_logged(argv, self.root / "celery-beat.log", self.env, ready=lambda t: "beat: Starting" in t)
        return self.beat

    def stop(self) -> None:
        for proc in (self.beat, self.worker, self.web):
            kill_group(proc, signal.SIGTERM)


@pytest.fixture(scope="session")
def stack(django_db_setup, django_db_blocker, e2e_root):
    from django.conf import settings

    broker = os.environ.get("CELERY_BROKER_URL", "")
    if not broker.startswith("redis://"):
        pytest.fail("end-to-end tests need CELERY_BROKER_URL=redis://… (make test sets it)")
    redis.Redis.from_url(broker).flushdb()  # no stale tasks from an earlier session
    db = settings.DATABASES["default"]
    web_port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "SPARKDECK_PUBLIC_URL": f"http://127.0.0.1:{web_port}",
        "SPARKDECK_DATA_ROOT": str(e2e_root / "data"),
        "SPARKDECK_ARTIFACT_ROOT": str(e2e_root / "artifacts"),
        "SPARKDECK_VAR_DIR": str(e2e_root / "var"),
        "SPARKDECK_RECONCILE_SECONDS": "1",
        # The fault tests' clocks (tests/e2e/test_faults.py); no other test meets them.
        "SPARKDECK_LOST_SUBMISSION_SECONDS": "8",
        "SPARKDECK_DRIVER_SILENT_SECONDS": "6",
        "SPARKDECK_DRIVER_HOST_GRACE_SECONDS": "12",
        "PYTHONUNBUFFERED": "1",
    }
    s = Stack(e2e_root, env, web_port)
    try:
        s.start_web()
        s.start_worker()
        s.start_beat()
    except BaseException:
        s.stop()
        raise
    yield s
    s.stop()


@pytest.fixture(scope="session")
def celery_worker(stack):
    """The stack's Celery worker (tests read its log: `.log_path`)."""
    return stack


@pytest.fixture
def loopback_cluster(spark_cluster):
    return Cluster.objects.create(
        name="e2e-loopback",
        master_url=spark_cluster.master_url,
        rest_url=spark_cluster.rest_url,
        bind_host="127.0.0.1",
        max_executors=2,
        max_executor_cores=1,
        max_executor_memory_mb=2048,
        reservation_timeout_s=90,
        feed_timeout_s=90,
        shutdown_timeout_s=60,
    )


@pytest.fixture
def owner(alice):
    """A browser session of alice (team A, member)."""
    c = Client()
    c.force_login(alice[0])
    return c
