"""The real stack for end-to-end tests: a Spark standalone cluster (master + 2 workers from
pyspark's own jars on 127.0.0.1), a Celery worker process on Redis, PostgreSQL, and the live server."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import redis
from django.test import Client

from webapp.clusters.models import Cluster
from workers.commands import celery_worker_argv
from workers.localcluster import LocalCluster, free_port, free_port_block

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
    )
    cluster.start(timeout=90)
    yield cluster
    cluster.stop()
    assert not cluster.is_running()


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, django_db_blocker, live_server, e2e_root):
    """A real `celery worker -B` process on Redis, pointed at the test database."""
    from django.conf import settings

    broker = os.environ.get("CELERY_BROKER_URL", "")
    if not broker.startswith("redis://"):
        pytest.fail("end-to-end tests need CELERY_BROKER_URL=redis://… (make test sets it)")
    redis.Redis.from_url(broker).flushdb()  # no stale tasks from an earlier session
    db = settings.DATABASES["default"]
    db_url = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "SPARKDECK_PUBLIC_URL": live_server.url,
        "SPARKDECK_DATA_ROOT": str(e2e_root / "data"),
        "SPARKDECK_ARTIFACT_ROOT": str(e2e_root / "artifacts"),
        "SPARKDECK_VAR_DIR": str(e2e_root / "var"),
        "SPARKDECK_RECONCILE_SECONDS": "1",
        "PYTHONUNBUFFERED": "1",
    }
    log = open(e2e_root / "celery-worker.log", "wb")
    argv = celery_worker_argv(e2e_root / "celerybeat-schedule")
    proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.time() + 60
    while b"ready." not in (e2e_root / "celery-worker.log").read_bytes():
        if proc.poll() is not None or time.time() > deadline:
            pytest.fail("celery worker did not start:\n" + (e2e_root / "celery-worker.log").read_text()[-3000:])
        time.sleep(0.5)
    proc.log_path = e2e_root / "celery-worker.log"
    yield proc
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


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
