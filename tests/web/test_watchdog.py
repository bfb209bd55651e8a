"""The watchdog through reconcile (webapp/runs/watchdog.py): the diagnosis is stored, shown on the run page
and in live.json, a stuck run is failed after the grace (its application cancelled through the backend),
one "stuck" notification, other teams see nothing. The backend and Spark's HTTP answers are fakes here;
tests/workers/test_watchdog_real.py induces the same cases on a real cluster."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.urls import reverse

from webapp.runs import lifecycle, watchdog
from webapp.runs.models import Run
from webapp.runs.states import Status
from workers.backends.base import BackendStatus

T0 = 1_800_000_000.0
APP = "app-20261124142314-0002"
UI = "http://127.0.0.1:4041"


class FakeBackend:
    def __init__(self):
        self.state = BackendStatus("RUNNING")
        self.cancelled = []

    def status(self, handle, driver=None):
        return self.state

    def logs(self, handle, final=False):
        return []

    def cancel_remote(self, handle):  # the application kill; the driver is stopped on its host
        self.cancelled.append(handle["run_dir"])


@pytest.fixture
def backend(monkeypatch):
    fake = FakeBackend()
    monkeypatch.setattr(lifecycle, "backend_for", lambda cluster: fake)
    return fake


@pytest.fixture
def clock(monkeypatch):
    now = {"t": T0}
    monkeypatch.setattr(watchdog, "_now", lambda: now["t"])
    return now


@pytest.fixture
def spark(monkeypatch):
    """What Spark's HTTP APIs answer: the driver UI's executors and the master's /json/."""
    answers = {
        f"{UI}/api/v1/applications/{APP}/allexecutors": [
            {"id": "driver", "isActive": True, "totalCores": 0},
            {"id": "0", "isActive": True, "totalCores": 1},
        ],
        "http://127.0.0.1:8080/json/": {
            "workers": [
                {
                    "host": "127.0.0.1",
                    "port": 4100,
                    "state": "ALIVE",
                    "cores": 1,
                    "coresfree": 0,
                    "memory": 2048,
                    "memoryfree": 1024,
                },
            ],
            "activeapps": [{"id": APP, "state": "RUNNING", "cores": 1, "memoryperexecutor": 1024, "duration": 40000}],
        },
    }
    calls = []

    def get_json(url):
        calls.append(url)
        return answers.get(url)

    monkeypatch.setattr(watchdog, "_get_json", get_json)
    return calls


@pytest.fixture
def notified(monkeypatch):
    sent = []
    monkeypatch.setattr(watchdog, "notify", lambda run, event, detail="": sent.append((run.pk, event, detail)))
    return sent


@pytest.fixture
def run(alice, cluster, digits_dataset):
    user, team = alice
    r = Run.objects.create(
        team=team, created_by=user, dataset=digits_dataset, template="cnn", cluster=cluster, num_executors=1
    )
    r.transition(Status.SUBMITTED)
    r.transition(Status.RUNNING)
    r.run_dir.mkdir(parents=True)
    # 2 TF nodes on 1 executor: what TFoS then waits for forever (well, timeouts.reservation)
    (r.run_dir / "spec.json").write_text(json.dumps({"cluster_size": 2, "timeouts": {"reservation": 600}}))
    Run.objects.filter(pk=r.pk).update(
        backend_handle={"run_dir": str(r.run_dir), "app_id": APP}, spark_app_id=APP, spark_ui_url=UI
    )
    r.refresh_from_db()
    return r


WAITING = "".join(
    f"2026-11-24 14:23:{s:02d},270 INFO (MainThread-19299) waiting for 1 reservations\n" for s in range(17, 49)
)


def write_driver_log(run, text):
    with open(run.run_dir / "driver.log", "a") as f:
        f.write(text)


def write_executor_log(run, ex, text):
    path = run.run_dir / "executors" / ex
    path.mkdir(parents=True, exist_ok=True)
    (path / "stderr").write_text(text)


def reconcile(run):
    lifecycle.reconcile(run)
    run.refresh_from_db()
    return run


EXCEPTION = (
    "26/11/24 14:22:09 ERROR Executor: Exception in task 0.0 in stage 0.0 (TID 0)\n"
    "org.apache.spark.api.python.PythonException: [PYTHON_EXCEPTION] An exception was thrown from the Python "
    "worker: Traceback (most recent call last):\n"
    '  File "./jobs.zip/workers/jobs/templates.py", line 36, in optimizer\n'
    '    raise ValueError(f"unknown optimizer {name!r}; use adam, sgd or rmsprop")\n'
    "ValueError: unknown optimizer 'bogus'; use adam, sgd or rmsprop\n"
)


@pytest.mark.django_db
def test_stuck_run_is_shown_then_failed_after_the_grace(run, backend, clock, spark, notified, client_a, settings):
    settings.SPARKDECK_STUCK_GRACE_SECONDS = 30
    write_driver_log(run, WAITING)

    reconcile(run)
    d = run.diagnosis
    assert run.status == Status.RUNNING
    assert d["code"] == "reservations" and d["title"] == "Only 1 of 2 executors joined the TF cluster"
    assert d["first_seen"] == T0 and d["fail_at"] == T0 + 30
    assert "2026-11-24 14:23:48,270 INFO (MainThread-19299) waiting for 1 reservations" in d["evidence"]
    assert backend.cancelled == []
    assert notified == [(run.pk, "stuck", f"{d['title']}. {d['cause']}")]

    page = client_a.get(reverse("run_detail", args=[run.pk])).content.decode()
    assert 'id="diagnosis"' in page and "Only 1 of 2 executors joined the TF cluster" in page
    assert "waiting for 1 reservations" in page and "Run 2 executors for 2 TF nodes" in page
    assert "The run will be failed at 08:00:30 UTC unless it recovers." in page  # T0 + 30 s
    live = client_a.get(reverse("run_live", args=[run.pk])).json()["diagnosis"]
    assert live["code"] == "reservations" and live["fail_at"] == T0 + 30
    assert live["message"] == "The run will be failed at 08:00:30 UTC unless it recovers."
    assert live["evidence"] == d["evidence"]

    clock["t"] = T0 + 20  # still within the grace; still stuck
    reconcile(run)
    assert run.status == Status.RUNNING and run.diagnosis["first_seen"] == T0
    assert len(notified) == 1 and backend.cancelled == []

    clock["t"] = T0 + 31
    reconcile(run)
    assert run.status == Status.FAILED
    assert run.status_reason == "Only 1 of 2 executors joined the TF cluster"
    assert "waiting for 1 reservations" in run.status_detail
    assert backend.cancelled == [str(run.run_dir)]
    assert len(notified) == 1
    assert run.diagnosis["failed_by_watchdog"] is True
    live = client_a.get(reverse("run_live", args=[run.pk])).json()["diagnosis"]
    assert live["message"] == "Failed by the watchdog at 08:00:31 UTC."
    assert (
        "Failed by the watchdog at 08:00:31 UTC." in client_a.get(reverse("run_detail", args=[run.pk])).content.decode()
    )


@pytest.mark.django_db
def test_a_run_that_recovers_is_not_failed(run, backend, clock, spark, notified, client_a, settings):
    settings.SPARKDECK_STUCK_GRACE_SECONDS = 30
    write_driver_log(run, WAITING)
    reconcile(run)
    assert run.diagnosis["code"] == "reservations"
    write_driver_log(run, "2026-11-24 14:23:50,001 INFO (MainThread-19299) all reservations completed\n")
    clock["t"] = T0 + 40
    reconcile(run)
    assert run.status == Status.RUNNING and "code" not in run.diagnosis
    assert run.diagnosis["recovered"] == "reservations"
    assert backend.cancelled == []
    assert client_a.get(reverse("run_live", args=[run.pk])).json()["diagnosis"] == {}
    assert (
        '<div id="diagnosis" class="diagnosis" role="alert" hidden>'
        in client_a.get(reverse("run_detail", args=[run.pk])).content.decode()
    )


@pytest.mark.django_db
def test_a_driver_ui_that_does_not_answer_is_no_recovery(run, backend, clock, spark, notified, monkeypatch, settings):
    settings.SPARKDECK_STUCK_GRACE_SECONDS = 30
    write_driver_log(run, WAITING)
    reconcile(run)
    assert run.diagnosis["code"] == "reservations"
    run.num_executors = 2  # so only the REST count says executors are missing ...
    Run.objects.filter(pk=run.pk).update(num_executors=2)
    monkeypatch.setattr(watchdog, "_get_json", lambda url: None)  # ... and the UIs stop answering
    clock["t"] = T0 + 10
    reconcile(run)
    assert run.diagnosis["code"] == "reservations" and run.diagnosis["stuck_since"] == T0
    clock["t"] = T0 + 30
    reconcile(run)
    assert run.status == Status.FAILED and len(backend.cancelled) == 1


@pytest.mark.django_db
def test_an_exception_fails_the_run_at_once(
    run, backend, clock, spark, notified, monkeypatch, django_capture_on_commit_callbacks
):
    from webapp.runs import tasks
    from workers import supervision

    asked = []
    monkeypatch.setattr(tasks.stop_driver, "apply_async", lambda args, **kw: asked.append((args, kw["queue"])))
    write_executor_log(run, "0", EXCEPTION)
    with django_capture_on_commit_callbacks(execute=True):
        reconcile(run)
    # The driver is stopped by its own host's worker, never by the reconciler's process.
    assert asked == [((run.pk,), supervision.host_queue(supervision.node_name()))]
    assert run.status == Status.FAILED
    assert run.status_reason == "Training failed with ValueError on executor 0"
    assert "ValueError: unknown optimizer 'bogus'; use adam, sgd or rmsprop" in run.status_detail
    assert len(backend.cancelled) == 1
    assert notified == []  # failing tells the submitter ("failed"); "stuck" is for runs left waiting
    assert run.diagnosis["fatal"] is True and run.diagnosis["failed_by_watchdog"] is True


@pytest.mark.django_db
def test_a_run_cancelled_meanwhile_is_not_claimed(run, backend, clock, spark, notified, client_a):
    write_executor_log(run, "0", EXCEPTION)

    def user_cancels_first(handle):
        Run.objects.get(pk=run.pk).transition(Status.CANCELLED, reason="Cancelled by alice.")

    backend.cancel_remote = user_cancels_first
    reconcile(run)
    assert run.status == Status.CANCELLED and run.status_reason == "Cancelled by alice."
    assert run.diagnosis["code"] == "exception" and "failed_by_watchdog" not in run.diagnosis
    assert client_a.get(reverse("run_live", args=[run.pk])).json()["diagnosis"]["message"] == (
        "The run ended (cancelled) before the watchdog's deadline."
    )


@pytest.mark.django_db
def test_when_spark_failed_the_run_first_the_diagnosis_only_explains(run, backend, clock, spark, notified, client_a):
    write_executor_log(run, "0", EXCEPTION)
    backend.state = BackendStatus("FAILED", reason="ValueError: unknown optimizer 'bogus'", detail="...")
    reconcile(run)
    assert run.status == Status.FAILED
    assert run.status_reason == "ValueError: unknown optimizer 'bogus'"  # Spark's (the driver's) words stay
    assert backend.cancelled == [] and notified == []
    assert run.diagnosis["code"] == "exception" and run.diagnosis["ended_by_spark"] is True
    live = client_a.get(reverse("run_live", args=[run.pk])).json()["diagnosis"]
    assert live["message"] == "The run had already failed; this is what its logs say."
    assert spark == []  # the application is over: no HTTP calls


@pytest.mark.django_db
def test_driver_gone(run, backend, clock, spark):
    write_driver_log(run, "[sparkdeck driver +4.5s] training cnn: tensorflow input mode, 2 TF nodes\n")
    backend.state = BackendStatus("FAILED", reason="driver process vanished", detail="...")
    reconcile(run)
    assert run.status == Status.FAILED and run.status_reason == "driver process vanished"
    assert run.diagnosis["code"] == "driver_gone"
    assert "[sparkdeck driver +4.5s] training cnn: tensorflow input mode, 2 TF nodes" in run.diagnosis["evidence"]


@pytest.mark.django_db
def test_a_healthy_run_costs_no_http_call_and_stores_nothing(run, backend, clock, spark, notified):
    write_driver_log(run, "2026-11-24 14:24:10,000 INFO (MainThread-1) all reservations completed\n")
    write_executor_log(run, "0", "[sparkdeck] fit: 5 epochs x 11 steps, batch 32/replica x 2 replicas\n")
    reconcile(run)
    assert run.status == Status.RUNNING and run.diagnosis == {}
    assert spark == [] and notified == []


@pytest.mark.django_db
def test_a_watchdog_error_never_breaks_reconcile(run, backend, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("watchdog bug")

    monkeypatch.setattr(watchdog, "check", boom)
    backend.state = BackendStatus("FAILED", reason="driver exited with code 1")
    reconcile(run)
    assert run.status == Status.FAILED and run.status_reason == "driver exited with code 1"


@pytest.mark.django_db
def test_only_log_tails_are_read(run):
    with open(run.run_dir / "driver.log", "wb") as f:
        f.write(b"x" * (5 * 1024 * 1024) + b"\n")
    write_driver_log(run, WAITING)
    obs = watchdog.observe(run, now=T0)
    assert len(obs.driver_log.encode()) <= watchdog.DRIVER_TAIL
    assert obs.driver_log.endswith("waiting for 1 reservations\n") and "xxx" not in obs.driver_log


RECORDED = Path(__file__).resolve().parents[1] / "workers" / "recordings" / "python_worker_killed" / "exec1_chief"


@pytest.mark.django_db
def test_a_long_run_whose_python_worker_was_killed_names_that_executor(run, backend, clock, spark, notified):
    """Real logs of a run whose executor 1 lost its Python worker, with hours of training lines between each TF
    node's address (the head of its log) and the failure (the tail): the watchdog reads both ends only."""
    steps = "".join(
        f"SPARKDECK_STEP executor=0 epoch={e}/9999 steps=23 seconds=0.50 ms_per_step=21.7\n" for e in range(9999)
    )
    for ex in ("0", "1"):
        text = (RECORDED / "executors" / ex / "stderr").read_text()
        fit = text.index("\n", text.index("[sparkdeck] fit:")) + 1
        write_executor_log(run, ex, text[:fit] + steps + text[fit:])
    obs = watchdog.observe(run, now=T0)
    assert all(len(t.encode()) <= watchdog.EXECUTOR_HEAD + watchdog.EXECUTOR_TAIL for t in obs.executor_logs.values())
    assert "epoch=5000/9999" not in obs.executor_logs["0"]
    reconcile(run)
    assert run.status == Status.FAILED
    assert run.status_reason == "Executor 1's Python worker died: it was killed or crashed"
    assert run.diagnosis["code"] == "worker_died" and run.diagnosis["failed_by_watchdog"] is True
    assert "hyperparameter" not in run.diagnosis["advice"]


@pytest.mark.django_db
def test_other_team_sees_nothing(run, backend, clock, spark, notified, client_b):
    write_driver_log(run, WAITING)
    reconcile(run)
    assert run.diagnosis["code"] == "reservations"
    assert client_b.get(reverse("run_detail", args=[run.pk])).status_code == 404
    assert client_b.get(reverse("run_live", args=[run.pk])).status_code == 404


@pytest.mark.parametrize("value", ["0", "abc", "1.5", ""])
def test_the_grace_setting_is_parsed_strictly(value):
    env = {**os.environ, "DJANGO_SECRET_KEY": "t", "SPARKDECK_STUCK_GRACE_SECONDS": value}
    proc = subprocess.run(
        [sys.executable, "-c", "import webapp.settings"], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode != 0
    assert "SPARKDECK_STUCK_GRACE_SECONDS must be a positive integer" in proc.stderr


def test_the_grace_setting_reads_the_environment():
    env = {**os.environ, "DJANGO_SECRET_KEY": "t", "SPARKDECK_STUCK_GRACE_SECONDS": "45"}
    code = "import webapp.settings as s; print(s.SPARKDECK_STUCK_GRACE_SECONDS)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "45"
