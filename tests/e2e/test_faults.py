"""Faults on the real stack (PostgreSQL, gunicorn, a Celery worker and beat on Redis, the loopback
Spark cluster, real TFoS runs): processes are killed with SIGKILL by the pid this test started (their
whole session), then started again, and the outcome is checked.

- the web server killed mid-run and the Spark master killed and restarted mid-run: every metric point
  the executors emitted is stored exactly once, the executor logs are byte-equal to the workers' files;

- the worker killed just after a run's claim, just after its launch, and mid-run: the run is sent
  again, then adopted, then followed to SUCCEEDED; nothing orphaned, exactly one beat;
- cancels within a second of the submission: CANCELLED, and no driver, executor or application left;
- a second worker host and the web in PID namespaces of their own (`unshare --pid`), where /proc
  cannot be shared: status, logs and cancel (the API answering 200) still work; a host that goes
  down is reported as such and its run failed after the grace, not as "vanished".
"""

import json
import os
import shutil
import signal
import time

import pytest
import requests
from django.urls import reverse

from tests.e2e.conftest import kill_group, start_logged
from tests.e2e.runs import descendants, run_story, submit, wait_for, wait_for_log, wait_terminal, worker_daemons
from webapp.api import tokens
from webapp.clusters.models import Cluster
from webapp.runs.models import MetricPoint, Run
from workers import supervision
from workers.commands import celery_worker_argv
from workers.localcluster import LocalCluster, cmdline, free_port, free_port_block, group_pids, pid_alive

pytestmark = [pytest.mark.e2e, pytest.mark.spark, pytest.mark.django_db(transaction=True)]

# The outage test's run and outages, short enough for the suite; a longer measurement sets them, e.g.
# FAULT_EPOCHS=40 FAULT_WEB_DOWN_S=15 (the master stays down 3 s longer than the web unless told).
EPOCHS = int(os.environ.get("FAULT_EPOCHS", "14"))
WEB_DOWN_S = float(os.environ.get("FAULT_WEB_DOWN_S", "14"))
MASTER_DOWN_S = max(float(os.environ.get("FAULT_MASTER_DOWN_S", "0")), WEB_DOWN_S + 3)

UNSHARE = ("unshare", "--pid", "--fork", "--mount-proc")


def beats() -> list[int]:
    """Live `celery beat` processes on this machine."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and pid_alive(int(entry.name)):
            args = cmdline(int(entry.name)).split()
            if "celery" in " ".join(args[:2]) and "beat" in args:
                found.append(int(entry.name))
    return found


def run_processes(run) -> list[str]:
    """Processes of a run's driver anywhere on this machine (their cwd is the run dir), and the
    executors under the Spark workers."""
    left = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry.name}/cwd") == str(run.run_dir):
                left.append(f"{entry.name}: {cmdline(int(entry.name))[:160]}")
        except OSError:
            pass
    return left


def nothing_left(spark_cluster, runs) -> list[str]:
    left = [p for r in runs for p in run_processes(r)]
    left += [f"{p}: {cmdline(p)[:160]}" for p in descendants(worker_daemons(spark_cluster))]
    return left


def reconcile_ticks(worker_log, seconds: float) -> int:
    """Beat's reconcile_runs tasks the worker received over `seconds` (not the launchers' own)."""

    def count():
        text = worker_log.read_text(errors="replace")
        return sum(1 for line in text.splitlines() if "reconcile_runs[" in line and "received" in line
                   and "driver-exit-" not in line)  # fmt: skip

    before = count()
    time.sleep(seconds)
    return count() - before


@pytest.fixture
def restartable_master_cluster(e2e_root, monkeypatch):
    """A cluster of its own for the master restart. A worker that re-registers with a master which
    does not know the app is told to kill the app's executors (Spark's rule without recovery mode),
    so the workers here make one quick retry only (5-15 s after losing the master, while it is still
    down); their next try comes a minute or more later, after this run has ended."""
    monkeypatch.setenv("SPARK_WORKER_OPTS", "-Dspark.worker.initialRegistrationRetries=1")
    lc = LocalCluster(e2e_root / "spark-restart", master_port=free_port(), webui_port=free_port_block(3),
                      worker_memory="3g")  # fmt: skip
    lc.start(timeout=90)
    row = Cluster.objects.create(
        name="e2e-restartable", master_url=lc.master_url, rest_url=lc.rest_url, bind_host="127.0.0.1",
        max_executors=2, max_executor_cores=1, max_executor_memory_mb=2048,
        reservation_timeout_s=90, feed_timeout_s=90, shutdown_timeout_s=60,
    )  # fmt: skip
    row.local = lc
    yield row
    lc.stop()


def expected_points(run) -> int:
    """Every point the executors emit for a CNN run: per executor, loss and accuracy every
    `every_steps` batches and epoch_loss/epoch_accuracy each epoch; plus the chief's steps_per_epoch
    and, when the run validates, its val_loss/val_accuracy each epoch."""
    spec = json.loads((run.run_dir / "spec.json").read_text())
    epochs, every = spec["hyperparameters"]["epochs"], spec["metrics"]["every_steps"]
    steps = run.result["steps_per_epoch"]
    validation = 2 * epochs if spec["hyperparameters"].get("validation_split") else 0
    return run.num_executors * (2 * (epochs * steps // every) + 2 * epochs) + 1 + validation


def test_web_killed_and_master_restarted_mid_run_lose_no_point_and_no_log_byte(
    stack, owner, digits_dataset, restartable_master_cluster
):
    cluster = restartable_master_cluster
    # No validation split: the run's length (its steps) is what the fault timings were measured on.
    run = submit(
        owner, digits_dataset, cluster, num_executors=2, hp_cnn_epochs=str(EPOCHS), hp_cnn_validation_split="0"
    )
    wait_for(lambda: MetricPoint.objects.filter(run=run).exists(), 240, "the first metric points")
    # The master dies; while it is down the web server dies too; both come back while the run trains.
    cluster.local.stop_master()
    kill_group(stack.web)  # SIGKILL: the executors' posts fail from now on
    stored_at_kill = MetricPoint.objects.filter(run=run).count()
    time.sleep(WEB_DOWN_S)
    stack.start_web()
    time.sleep(MASTER_DOWN_S - WEB_DOWN_S)  # past the workers' one quick retry
    cluster.local.start_master()
    assert not Run.objects.get(pk=run.pk).is_terminal, "the run ended before the faults were over: too short"
    run, seen = wait_terminal(run.pk, 300 + 10 * EPOCHS, stack)
    assert run.status == Run.Status.SUCCEEDED, (run.status_reason, seen)

    # Metrics: every point exactly once (the unique constraint forbids a second copy).
    points = MetricPoint.objects.filter(run=run)
    assert points.count() == expected_points(run), (points.count(), stored_at_kill)
    steps, every = run.result["steps_per_epoch"], 5
    epochs = run.hyperparameters["epochs"]
    for executor in ("0", "1"):
        got = set(points.filter(name="loss", executor=executor).values_list("step", flat=True))
        assert got == set(range(every, epochs * steps + 1, every)), f"executor {executor}: loss steps missing"
        got = set(points.filter(name="epoch_loss", executor=executor).values_list("step", flat=True))
        assert got == {steps * e for e in range(1, epochs + 1)}
    assert "dropped" not in "".join(p.read_text(errors="replace") for p in (run.run_dir / "executors").glob("*/stderr"))

    # Logs: byte-equal to the workers' own files, marked complete.
    app_dirs = [wd / run.spark_app_id for wd in cluster.local.work_dirs]
    originals = {f"{p.parent.name}/{p.name}": p for d in app_dirs for p in sorted(d.glob("*/std*"))}
    assert len(originals) == 4
    for key, original in originals.items():
        copy = run.run_dir / "executors" / key
        assert copy.read_bytes() == original.read_bytes(), f"{key}: {copy.stat().st_size} of {original.stat().st_size}"
    status = json.loads((run.run_dir / "executors" / "status.json").read_text())
    assert all(status[k]["complete"] for k in originals), status
    kept = sum(p.stat().st_size for p in originals.values())
    print(f"\nweb down {WEB_DOWN_S:g} s, master down {MASTER_DOWN_S:g} s, {epochs} epochs: "
          f"{points.count()} of {expected_points(run)} points stored "
          f"({stored_at_kill} before the kill); executor logs {kept} of {kept} bytes")  # fmt: skip


def test_the_worker_killed_after_the_claim_after_the_launch_and_mid_run(
    stack, owner, digits_dataset, loopback_cluster, spark_cluster
):
    wait_for(lambda: not descendants(worker_daemons(spark_cluster)), 60, "an idle cluster")
    killed = []

    def kill_worker():
        pid = stack.worker.pid
        kill_group(stack.worker)  # SIGKILL, the whole group: its pool children die with it
        killed.append(pid)

    kill_worker()
    stack.start_worker(SPARKDECK_FAULT_PAUSE="after-claim=300")
    # Epochs enough (about 0.7 s each) that training outlasts two worker restarts under a loaded CI
    # machine: the third kill must find the run RUNNING, not already over.
    run = submit(owner, digits_dataset, loopback_cluster, num_executors=1, hp_cnn_epochs="12")

    # 1. Killed between the claim and spark-submit: nothing launched, so the run is sent again.
    wait_for_log(stack, "fault point after-claim", 60)
    run.refresh_from_db()
    assert run.status == Run.Status.SUBMITTED and run.backend_handle == {} and run.submit_attempts == 1
    kill_worker()
    assert not (run.run_dir / "launcher.json").exists()
    stack.start_worker(SPARKDECK_FAULT_PAUSE="after-launch=300")

    # 2. Killed right after the launch, before the handle was stored: the driver lives on, adopted.
    wait_for_log(stack, "fault point after-launch", 120)
    run.refresh_from_db()
    assert run.submit_attempts == 2 and run.backend_handle == {}
    assert (
        "the worker that claimed the run stopped before launching anything; sent again"
        in (run.run_dir / "driver.log").read_text()
    )
    info = wait_for(lambda: supervision.launcher_info(run.run_dir).get("child_pid") and
                    supervision.launcher_info(run.run_dir), 30, "spark-submit started")  # fmt: skip
    launcher = info["pid"]
    kill_worker()
    assert pid_alive(launcher), "the driver died with its worker"
    stack.start_worker()
    adopted = wait_for(lambda: Run.objects.get(pk=run.pk).backend_handle, 60, "the driver adopted",
                       explain=lambda: run_story(run.pk, stack))  # fmt: skip
    assert adopted["launcher_pid"] == launcher and adopted["host"] == supervision.node_name()
    assert "the driver was taken over" in (run.run_dir / "driver.log").read_text()

    # 3. Killed mid-run: the next worker picks the run up from the launcher's files and the master.
    wait_for(lambda: Run.objects.get(pk=run.pk).status != Run.Status.SUBMITTED, 120, "RUNNING",
             explain=lambda: run_story(run.pk, stack))  # fmt: skip
    assert Run.objects.get(pk=run.pk).status == Run.Status.RUNNING, run_story(run.pk, stack)
    kill_worker()
    time.sleep(3)
    stack.start_worker()
    run, seen = wait_terminal(run.pk, 300, stack)
    assert run.status == Run.Status.SUCCEEDED, (run.status_reason, seen)
    assert run.submit_attempts == 2 and run.test_accuracy and run.test_accuracy > 0.5
    assert (run.run_dir / "result.json").exists()

    # Nothing orphaned: no process of a killed worker, no driver, no executor; one beat, ticking once.
    assert [p for pid in killed for p in group_pids(pid)] == []
    wait_for(lambda: not nothing_left(spark_cluster, [run]), 30, "the run's processes to end")
    assert beats() == [stack.beat.pid]
    ticks = reconcile_ticks(stack.log_path, 10)
    assert 6 <= ticks <= 14, f"{ticks} reconcile ticks in 10 s at one per second"


def test_cancel_within_a_second_of_submitting_leaves_nothing_running(
    stack, owner, digits_dataset, loopback_cluster, spark_cluster
):
    wait_for(lambda: not descendants(worker_daemons(spark_cluster)), 60, "an idle cluster")
    runs = []
    for i in range(5):
        run = submit(owner, digits_dataset, loopback_cluster, num_executors=1, hp_cnn_epochs="3")
        time.sleep(0.2 * i)  # 0 to 0.8 s: before the claim, between claim and launch, after the launch
        assert owner.post(reverse("run_cancel", args=[run.pk])).status_code == 302
        runs.append(run)
    for run in runs:
        run.refresh_from_db()
        assert run.status == Run.Status.CANCELLED and run.status_reason == "Cancelled by alice."
    wait_for(lambda: not nothing_left(spark_cluster, runs), 60, "every driver and executor to end")
    time.sleep(5)  # a late launch would show up now
    assert nothing_left(spark_cluster, runs) == []
    state = requests.get(f"{spark_cluster.rest_url}/json/", timeout=5).json()
    names = {f"sparkdeck-run-{r.pk}" for r in runs}
    assert [a["name"] for a in state["activeapps"] if a["name"] in names] == []
    for run in runs:
        run.refresh_from_db()
        assert run.status == Run.Status.CANCELLED
        assert not (run.run_dir / "result.json").exists(), f"run {run.pk} trained to the end while CANCELLED"
        assert not (run.run_dir / "model").exists()


@pytest.mark.skipif(shutil.which("unshare") is None or os.geteuid() != 0, reason="needs unshare and root")
def test_a_second_host_and_the_web_in_their_own_pid_namespaces(
    stack, alice, owner, digits_dataset, loopback_cluster, spark_cluster
):
    wait_for(lambda: not descendants(worker_daemons(spark_cluster)), 60, "an idle cluster")
    api = requests.Session()
    api.headers["Authorization"] = f"Token {tokens.issue(alice[0])}"
    # The web in a PID namespace of its own: it cannot see, let alone signal, any driver.
    kill_group(stack.web, signal.SIGTERM)
    stack.start_web(argv_prefix=UNSHARE)
    hostb_env = {**stack.env, "SPARKDECK_NODE_NAME": "hostb"}
    hostb_log = stack.root / "hostb.log"
    hostb = start_logged([*UNSHARE, *celery_worker_argv(node="hostb")], hostb_log, hostb_env)
    try:

        def run_on_hostb(epochs):
            # Host A takes no run control for a moment, so that host B launches the run.
            kill_group(stack.worker)
            run = submit(owner, digits_dataset, loopback_cluster, num_executors=1, hp_cnn_epochs=epochs)
            run = wait_for(
                lambda: (r := Run.objects.get(pk=run.pk)).status == Run.Status.RUNNING and r, 180, "RUNNING on B"
            )
            assert run.backend_handle["host"] == "hostb"
            stack.start_worker()  # host A is back: its reconciles see B's driver only through B's answers
            return run

        run = run_on_hostb("30")
        # Status and logs from either host while the driver runs on B.
        wait_for(lambda: "probe_driver" in hostb_log.read_text(errors="replace"), 30, "host A asking host B")
        wait_for(lambda: len(list((run.run_dir / "executors").glob("*/stderr"))) == 1, 60, "executor logs copied")
        wait_for(lambda: Run.objects.get(pk=run.pk).driver_seen.get("host") == "hostb", 30, "B's answer recorded")
        assert Run.objects.get(pk=run.pk).spark_app_id.startswith("app-")
        # Cancel through the API of the web in its own namespace: 200, and B stops the driver.
        resp = api.post(f"{stack.web_url}/api/runs/{run.pk}/cancel/", timeout=30)
        assert resp.status_code == 200, resp.text
        assert resp.json()["status"] == "CANCELLED"
        wait_for(lambda: not nothing_left(spark_cluster, [run]), 60, "B to stop the driver and executors")
        assert "webapp.runs.tasks.stop_driver" in hostb_log.read_text(errors="replace")
        # (recorded once B has copied the executors' last log bytes)
        wait_for(lambda: Run.objects.get(pk=run.pk).driver_seen["state"] == "stopped", 30, "B's stop recorded")

        # Host B goes down (its whole PID namespace killed, driver included).
        run = run_on_hostb("30")
        kill_group(hostb)
        shown = wait_for(
            lambda: (r := Run.objects.get(pk=run.pk)).status_reason.startswith("Not answering: ") and r, 60, "notice"
        )
        assert shown.status == Run.Status.RUNNING and "the driver's host hostb has not answered" in shown.status_reason
        failed, seen = wait_terminal(run.pk, 90, stack)
        assert failed.status == Run.Status.FAILED, seen
        assert failed.status_reason.startswith("The driver's host hostb stopped answering at ")
        assert "vanished" not in failed.status_reason
        wait_for(lambda: not nothing_left(spark_cluster, [run]), 60, "the lost host's executors to end")
    finally:
        kill_group(hostb)
        if stack.worker.poll() is not None:
            stack.start_worker()
        kill_group(stack.web, signal.SIGTERM)
        stack.start_web()
