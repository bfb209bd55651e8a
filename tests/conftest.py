"""Shared fixtures: teams and users, a cluster row, and the digits dataset stored for real."""

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.fake_rm import FakeRM
from webapp.accounts.models import Membership, Team
from webapp.clusters.models import Cluster
from webapp.datasets.ingest.digits import write_digits_npz

PASSWORD = "pw-for-tests-only"


@pytest.hookimpl(trylast=True)  # after pytest-django's reordering (transactional tests last)
def pytest_collection_modifyitems(items):
    # The e2e stack (a real Celery worker and beat on the test database, session-scoped) runs from its
    # first test to the session's end: its tests go last, so its periodic tasks (reconcile, advancing
    # sweeps) never meet another test's rows or its flush.
    e2e = [item for item in items if item.get_closest_marker("e2e")]
    if e2e:
        items[:] = [item for item in items if not item.get_closest_marker("e2e")] + e2e


def pytest_configure(config):
    from django.conf import settings

    # Tests' users are hashed with PBKDF2 at 1,000 iterations (tests/hashers.py); production keeps Django's.
    settings.PASSWORD_HASHERS = ["tests.hashers.FastPBKDF2PasswordHasher", *settings.PASSWORD_HASHERS]


@pytest.fixture
def make_member(db):
    def make(username, team_name, role="member"):
        team, _ = Team.objects.get_or_create(name=team_name, defaults={"slug": team_name.lower().replace(" ", "-")})
        user = get_user_model().objects.create_user(username=username, password=PASSWORD)
        Membership.objects.create(team=team, user=user, role=role)
        return user, team

    return make


@pytest.fixture
def alice(make_member):
    return make_member("alice", "Team A")


@pytest.fixture
def bob(make_member):
    return make_member("bob", "Team B")


@pytest.fixture
def client_a(client, alice):
    client.force_login(alice[0])
    return client


@pytest.fixture
def client_b(alice, bob):
    from django.test import Client

    c = Client()
    c.force_login(bob[0])
    return c


def idle_workers(n=2, cores=1, memory_mb=3072, gpus=0):
    from webapp.clusters.capacity import WorkerCapacity

    return [
        WorkerCapacity(
            id=f"worker-{i}",
            host="127.0.0.1",
            state="ALIVE",
            cores=cores,
            cores_free=cores,
            memory_mb=memory_mb,
            memory_free_mb=memory_mb,
            gpus=gpus,
            gpus_free=gpus,
        )
        for i in range(n)
    ]


@pytest.fixture
def fake_capacity(monkeypatch):
    """The unit tests' cluster answers like an idle loopback cluster (2 workers × 1 core, 3 GB). Tests
    change .workers / .reachable to model a busy, GPU or unreachable cluster. The real path is
    tested in tests/e2e (live master) and tests/workers/test_capacity.py."""
    from webapp.clusters import capacity

    state = capacity.Capacity(reachable=True, error="", workers=idle_workers())
    monkeypatch.setattr(capacity, "live_capacity", lambda cluster, timeout=None: state)
    return state


@pytest.fixture
def cluster(db, fake_capacity):
    return Cluster.objects.create(
        name="loopback",
        master_url="spark://127.0.0.1:7077",
        rest_url="http://127.0.0.1:8080",
        bind_host="127.0.0.1",
        max_executors=2,
        max_executor_cores=1,
        max_executor_memory_mb=3072,
    )


@pytest.fixture
def digits_npz(tmp_path):
    path = tmp_path / "digits.npz"
    write_digits_npz(path)
    return path


@pytest.fixture
def digits_dataset(alice, digits_npz, settings, tmp_path):
    from webapp.datasets.services import create_and_convert

    user, team = alice
    upload = SimpleUploadedFile("digits.npz", digits_npz.read_bytes())
    return create_and_convert(team=team, user=user, name="digits", upload=upload)  # READY


@pytest.fixture
def eager_tasks():
    """Celery tasks queued in this test run at once, in this process (their errors propagate)."""
    from workers.celery import app

    keys = ("task_always_eager", "task_eager_propagates")
    before = {k: app.conf[k] for k in keys}
    app.conf.update(dict.fromkeys(keys, True))
    yield
    app.conf.update(before)


@pytest.fixture
def upload_converted(eager_tasks, django_capture_on_commit_callbacks):
    """post(client, data, **extra): an upload request whose conversion (queued on commit) runs before it returns."""
    from django.urls import reverse

    def post(client, data, **extra):
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(reverse("dataset_upload"), data, **extra)

    return post


@pytest.fixture(autouse=True)
def isolated_storage(settings, tmp_path):
    """Each test stores datasets and run files under its own temp dir."""
    settings.DATA_ROOT = tmp_path / "data"
    settings.ARTIFACT_ROOT = tmp_path / "artifacts"
    settings.VAR_DIR = tmp_path / "var"


@pytest.fixture
def rm():
    """A recorded YARN ResourceManager (nodes and metrics) on 127.0.0.1."""
    fake = FakeRM()
    yield fake
    fake.close()
