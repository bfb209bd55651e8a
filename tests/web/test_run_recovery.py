"""Runs that outlive their worker (webapp/runs/lifecycle.py, drivers.py) with real launcher processes:
a claim that launched nothing is sent again (bounded), a launch whose worker died is adopted, a cancel
that races the launch wins, a silent driver host fails its runs only after the grace, and an ended
run's driver is stopped by its own host. The cluster backend is a stand-in that launches a sleeping
"driver" through the real supervision code; tests/e2e/test_faults.py does the same on the real stack."""

import sys
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from webapp.runs import drivers, lifecycle
from webapp.runs.models import Run
from webapp.runs.states import Status
from workers import faults, supervision
from workers.backends.base import BackendStatus
from workers.localcluster import group_pids, pid_alive

SLEEP = [sys.executable, "-c", "import time; time.sleep(120)"]


class LaunchingBackend:
    """Launches SLEEP under the real launcher; status from the real driver state."""

    cancel_grace = 2.0

    def __init__(self):
        self.launched = []

    def submit(self, req):
        handle = supervision.launch(req.run_dir, SLEEP, supervision.child_env(), {"run_id": req.run_id})
        self.launched.append(handle)
        return handle

    def status(self, handle, driver=None):
        driver = driver or supervision.driver_state(handle)
        if driver.state == supervision.SILENT:
            return BackendStatus("RUNNING", host_silent_since=driver.seen_at, detail="host silent")
        return BackendStatus("RUNNING" if driver.alive else "FAILED", reason="driver exited")

    def logs(self, handle, final=False):
        return []

    def cancel_remote(self, handle):
        pass


@pytest.fixture
def backend(monkeypatch):
    fake = LaunchingBackend()
    monkeypatch.setattr(lifecycle, "backend_for", lambda cluster: fake)
    monkeypatch.setattr(drivers.cluster_services, "backend_for", lambda cluster: fake)
    monkeypatch.setattr(lifecycle, "build_jobs_zip", lambda path: path)
    yield fake
    for handle in fake.launched:
        supervision.stop_local(handle, grace=1)


@pytest.fixture
def queued(alice, cluster, digits_dataset):
    user, team = alice
    return Run.objects.create(
        team=team, created_by=user, dataset=digits_dataset, template="cnn", cluster=cluster, num_executors=1
    )


def age_claim(run, seconds):
    Run.objects.filter(pk=run.pk).update(submitted_at=timezone.now() - timedelta(seconds=seconds))
    run.refresh_from_db()


def pause_with(monkeypatch, point, action):
    real = faults.pause
    monkeypatch.setattr(faults, "pause", lambda name: action() if name == point else real(name))


@pytest.mark.django_db
def test_a_claim_that_launched_nothing_is_sent_again_then_failed(queued, settings):
    settings.LOST_SUBMISSION_SECONDS = 30
    for attempt in range(1, lifecycle.MAX_SUBMIT_ATTEMPTS + 1):
        queued.transition(Status.SUBMITTED, submit_attempts=attempt)  # a worker claimed it, then died
        age_claim(queued, 10)
        lifecycle.reconcile(queued)
        assert Run.objects.get(pk=queued.pk).status == Status.SUBMITTED  # not yet: it may still launch
        age_claim(queued, 31)
        lifecycle.reconcile(queued)
        queued.refresh_from_db()
        if attempt < lifecycle.MAX_SUBMIT_ATTEMPTS:
            assert queued.status == Status.QUEUED
            assert f"attempt {attempt} of {lifecycle.MAX_SUBMIT_ATTEMPTS}" in queued.queue_reason
            assert f"attempt {attempt}: the worker that claimed" in (queued.run_dir / "driver.log").read_text()
    assert queued.status == Status.FAILED
    assert queued.status_reason.startswith("The submission was lost 3 times")


@pytest.mark.django_db
def test_a_launch_whose_worker_died_is_adopted(queued, backend, monkeypatch, settings):
    settings.LOST_SUBMISSION_SECONDS = 30

    class WorkerDied(BaseException):
        pass

    def die():
        raise WorkerDied  # SIGKILL right after spark-submit was launched, before the handle was stored

    pause_with(monkeypatch, "after-launch", die)
    with pytest.raises(WorkerDied):
        lifecycle.submit(queued.pk)
    queued.refresh_from_db()
    assert queued.status == Status.SUBMITTED and queued.backend_handle == {}
    deadline = time.monotonic() + 10
    while not supervision.launcher_info(queued.run_dir).get("child_pid"):  # the launcher starts on its own
        assert time.monotonic() < deadline
        time.sleep(0.05)
    age_claim(queued, 31)
    lifecycle.reconcile(queued)
    queued.refresh_from_db()
    assert queued.backend_handle["launcher_pid"] == backend.launched[0]["launcher_pid"]
    assert queued.backend_handle["host"] == supervision.node_name()
    lifecycle.reconcile(Run.objects.get(pk=queued.pk))
    assert Run.objects.get(pk=queued.pk).status == Status.RUNNING  # the adopted driver is followed


@pytest.mark.django_db
def test_a_cancel_between_launch_and_handle_stops_the_launch(queued, backend, monkeypatch):
    pause_with(monkeypatch, "after-launch", lambda: lifecycle.cancel(Run.objects.get(pk=queued.pk), by="alice"))
    lifecycle.submit(queued.pk)
    queued.refresh_from_db()
    assert queued.status == Status.CANCELLED and queued.backend_handle == {}
    launched = backend.launched[0]
    assert not group_pids(launched["launcher_pid"]) and not pid_alive(launched["launcher_pid"])
    child = supervision.launcher_info(queued.run_dir).get("child_pid")
    assert child is None or not group_pids(child), "the cancelled run's driver kept running"


@pytest.mark.django_db
def test_a_cancel_after_the_claim_launches_nothing(queued, backend, monkeypatch):
    pause_with(monkeypatch, "after-claim", lambda: lifecycle.cancel(Run.objects.get(pk=queued.pk), by="alice"))
    lifecycle.submit(queued.pk)
    assert Run.objects.get(pk=queued.pk).status == Status.CANCELLED
    assert backend.launched == []


@pytest.mark.django_db
def test_a_silent_driver_host_fails_its_run_only_after_the_grace(queued, backend, settings, monkeypatch):
    settings.DRIVER_SILENT_SECONDS = 30
    settings.DRIVER_HOST_GRACE_SECONDS = 120
    asked = []
    monkeypatch.setattr(drivers, "_ask", lambda run_id, host, task: asked.append((run_id, host, task)))
    queued.transition(Status.SUBMITTED, submit_attempts=1)
    queued.transition(Status.RUNNING)
    now = time.time()
    handle = {"run_dir": str(queued.run_dir), "host": "host-b", "launcher_pid": 1, "launched": now - 600}
    Run.objects.filter(pk=queued.pk).update(
        backend_handle=handle, driver_seen={"state": "running", "at": now - 60, "host": "host-b"}
    )
    lifecycle.reconcile(Run.objects.get(pk=queued.pk))
    run = Run.objects.get(pk=queued.pk)
    assert run.status == Status.RUNNING  # silent for 60 s: shown, not failed
    assert run.status_reason.startswith("Not answering: the driver's host host-b has not answered since ")
    # It answers again: the notice goes.
    Run.objects.filter(pk=queued.pk).update(driver_seen={"state": "running", "at": time.time(), "host": "host-b"})
    lifecycle.reconcile(Run.objects.get(pk=queued.pk))
    assert Run.objects.get(pk=queued.pk).status_reason == ""
    assert ("probe_driver" in {t for _, _, t in asked}) and {h for _, h, _ in asked} == {"host-b"}
    Run.objects.filter(pk=queued.pk).update(driver_seen={"state": "running", "at": now - 200, "host": "host-b"})
    lifecycle.reconcile(Run.objects.get(pk=queued.pk))
    run = Run.objects.get(pk=queued.pk)
    assert run.status == Status.FAILED
    assert run.status_reason.startswith("The driver's host host-b stopped answering at ")
    assert "vanished" not in run.status_reason


@pytest.mark.django_db
def test_an_ended_runs_driver_is_stopped_on_its_host_and_swept_until_then(queued, backend, monkeypatch):
    asked = []
    monkeypatch.setattr(drivers, "_ask", lambda run_id, host, task: asked.append(task))
    lifecycle.submit(queued.pk)
    run = Run.objects.get(pk=queued.pk)
    launcher = run.backend_handle["launcher_pid"]
    lifecycle.cancel(run, by="alice")
    drivers._send_stop(run.pk)  # what request_stop does on commit
    assert asked == ["stop_driver"] and pid_alive(launcher)
    asked.clear()
    assert drivers.sweep_unstopped() == 0  # asked just now: not again yet
    assert drivers.sweep_unstopped(now=time.time() + drivers.STOP_RETRY_SECONDS) == 1  # the stop was lost
    assert drivers.stop(run.pk) is True  # what the driver host's worker runs
    assert not group_pids(launcher)
    assert Run.objects.get(pk=run.pk).driver_seen["state"] == drivers.STOPPED
    # A probe that was under way during the stop answers late: the driver stays recorded stopped.
    late = drivers.record(run.pk, supervision.DriverState(supervision.RUNNING, host="", seen_at=time.time()))
    assert late["state"] == Run.objects.get(pk=run.pk).driver_seen["state"] == drivers.STOPPED
    assert drivers.sweep_unstopped(now=time.time() + 3600) == 0


@pytest.mark.django_db
def test_points_left_pending_are_stored_before_the_run_is_marked_done(queued, monkeypatch):
    import json

    from webapp.runs.models import MetricPoint

    queued.transition(Status.SUBMITTED, submit_attempts=1)
    queued.transition(Status.RUNNING)
    run_dir = queued.run_dir
    (run_dir / "metrics-pending").mkdir(parents=True)
    points = [{"name": "epoch_loss", "value": 0.5, "step": 10, "epoch": 1, "ts": 1.0, "executor": "0"},
              {"name": "epoch_loss", "value": 0.25, "step": 20, "epoch": 2, "ts": 2.0, "executor": "0"}]  # fmt: skip
    (run_dir / "metrics-pending" / "0-1-ab.jsonl").write_text("".join(json.dumps(p) + "\n" for p in points))
    (run_dir / "result.json").write_text(json.dumps({"test_accuracy": 0.9, "test_rows": 10}))
    Run.objects.filter(pk=queued.pk).update(backend_handle={"run_dir": str(run_dir), "host": "elsewhere"})
    seen = {}

    class Ended(LaunchingBackend):
        def status(self, handle, driver=None):
            return BackendStatus("SUCCEEDED")

    real_move = lifecycle._move

    def move(run, state):
        seen["points_at_move"] = MetricPoint.objects.filter(run=run).count()
        real_move(run, state)

    monkeypatch.setattr(lifecycle, "backend_for", lambda cluster: Ended())
    monkeypatch.setattr(lifecycle, "_move", move)
    monkeypatch.setattr(drivers, "_ask", lambda *a: None)
    lifecycle.reconcile(Run.objects.get(pk=queued.pk))
    run = Run.objects.get(pk=queued.pk)
    assert run.status == Status.SUCCEEDED and seen["points_at_move"] == 2
    assert run.final_loss == 0.25  # the run table's summary, made at the move, saw them
    assert not list((run_dir / "metrics-pending").iterdir())


@pytest.mark.django_db
def test_a_run_whose_driver_exited_is_recorded_stopped_and_never_swept(queued, backend, monkeypatch):
    class Exits(LaunchingBackend):
        def submit(self, req):
            handle = supervision.launch(req.run_dir, [sys.executable, "-c", "pass"], supervision.child_env(), {})
            self.launched.append(handle)
            return handle

        def status(self, handle, driver=None):
            driver = driver or supervision.driver_state(handle)
            return BackendStatus("SUCCEEDED" if driver.state == supervision.EXITED else "RUNNING")

    fake = Exits()
    monkeypatch.setattr(lifecycle, "backend_for", lambda cluster: fake)
    asked = []
    monkeypatch.setattr(drivers, "_ask", lambda run_id, host, task: asked.append(task))
    lifecycle.submit(queued.pk)
    run = Run.objects.get(pk=queued.pk)
    deadline = time.monotonic() + 10
    while not (run.run_dir / "driver.rc").exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    lifecycle.reconcile(run)
    run = Run.objects.get(pk=queued.pk)
    assert run.status == Status.SUCCEEDED and run.driver_seen["state"] == drivers.STOPPED
    assert drivers.sweep_unstopped(now=time.time() + 3600) == 0 and asked == []
