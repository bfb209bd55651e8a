"""The queue and cancel on the real loopback cluster (2 workers × 1 core), through the web form,
the Celery worker on Redis, spark-submit and TFoS."""

import subprocess
import time
from datetime import UTC, datetime

import pytest
import requests
from django.urls import reverse

from tests.e2e.runs import descendants, form_data, submit, wait_for, wait_terminal, worker_daemons
from webapp.runs.models import Run
from workers.localcluster import cmdline, pid_alive

pytestmark = [pytest.mark.e2e, pytest.mark.spark, pytest.mark.django_db(transaction=True)]


def work_done_at(run):
    """When the run's driver had finished its work (result.json is written just before it stops
    its SparkContext, which frees the executors)."""
    return datetime.fromtimestamp((run.run_dir / "result.json").stat().st_mtime, tz=UTC)


def test_third_run_waits_in_the_queue_and_starts_when_one_ends(owner, digits_dataset, loopback_cluster, celery_worker):
    # Two 1-executor runs fill the 2 one-core workers; the third waits for one of them.
    quick = submit(owner, digits_dataset, loopback_cluster, num_executors=1, hp_cnn_epochs="1")
    longer = submit(owner, digits_dataset, loopback_cluster, num_executors=1, hp_cnn_epochs="4")
    third = submit(owner, digits_dataset, loopback_cluster, num_executors=1, hp_cnn_epochs="1")

    def both_running():
        runs = Run.objects.filter(pk__in=[quick.pk, longer.pk])
        return all(r.status == Run.Status.RUNNING for r in runs)

    wait_for(both_running, 180, "the first two runs to be RUNNING")
    queued = Run.objects.get(pk=third.pk)
    assert queued.status == Run.Status.QUEUED
    assert queued.queue_position() == 1
    assert "Waiting for capacity" in queued.queue_reason
    live = owner.get(reverse("run_live", args=[third.pk])).json()
    assert live["queue_position"] == 1 and "Waiting for capacity" in live["queue_reason"]
    assert 'position <span id="queue-position">1</span>' in owner.get(third.get_absolute_url()).content.decode()

    started = wait_for(lambda: Run.objects.get(pk=third.pk).submitted_at, 300, "the queued run to be submitted")
    # Sent only once one of the two had done its work and freed its executor (its driver may still be
    # shutting down then, so the run's own finish time can come a moment later).
    ended = [work_done_at(r) for r in (quick, longer) if (r.run_dir / "result.json").exists()]
    assert ended and started >= min(ended)
    for pk in (quick.pk, longer.pk, third.pk):
        run, seen = wait_terminal(pk, 300, celery_worker)
        assert run.status == Run.Status.SUCCEEDED, (run.status_reason, run.status_detail)
    assert Run.objects.get(pk=third.pk).queue_reason == ""


def test_cancel_running_run_kills_driver_and_executors_and_keeps_logs(
    owner, digits_dataset, loopback_cluster, celery_worker, spark_cluster
):
    wait_for(lambda: not descendants(worker_daemons(spark_cluster)), 60, "an idle cluster")
    run = submit(owner, digits_dataset, loopback_cluster, hp_cnn_epochs="30")

    def executors_up():
        r = Run.objects.get(pk=run.pk)
        if r.is_terminal:
            pytest.fail(f"run ended before cancel: {r.status} {r.status_reason}")
        logs = list((r.run_dir / "executors").glob("*/stderr"))
        return r if r.status == Run.Status.RUNNING and len(logs) == 2 else None

    running = wait_for(executors_up, 240, "two executors running")
    tree = subprocess.run(["ps", "-eo", "pid,ppid,pgid,args", "--forest"], capture_output=True, text=True).stdout
    assert len(descendants(worker_daemons(spark_cluster))) >= 2, (worker_daemons(spark_cluster), tree[-6000:])
    handle = running.backend_handle
    assert owner.post(reverse("run_cancel", args=[run.pk])).status_code == 302

    run = Run.objects.get(pk=run.pk)
    assert run.status == Run.Status.CANCELLED and run.status_reason == "Cancelled by alice."
    launcher = handle["launcher_pid"]

    def leftovers():
        pids = descendants(worker_daemons(spark_cluster)) + ([launcher] if pid_alive(launcher) else [])
        return [f"{p}: {cmdline(p)[:200]}" for p in pids]

    deadline = time.time() + 30
    while leftovers() and time.time() < deadline:
        time.sleep(0.5)
    assert leftovers() == [], "driver or executor processes left after cancel"
    state = requests.get(f"{spark_cluster.rest_url}/json/", timeout=5).json()
    assert run.spark_app_id not in [a["id"] for a in state["activeapps"]]
    assert all(w["coresfree"] == w["cores"] for w in state["workers"])
    # Logs kept: the driver's and what the executors had written.
    assert (run.run_dir / "driver.log").stat().st_size > 0
    assert len(list((run.run_dir / "executors").glob("*/stderr"))) == 2
    time.sleep(3)  # a reconcile tick later the run is still CANCELLED (terminal states never change)
    assert Run.objects.get(pk=run.pk).status == Run.Status.CANCELLED


def test_impossible_request_is_refused_before_submit(owner, digits_dataset, loopback_cluster):
    loopback_cluster.max_executors = 4
    loopback_cluster.save()
    before = Run.objects.count()
    resp = owner.post(reverse("run_new"), form_data(digits_dataset, loopback_cluster, num_executors=3))
    assert resp.status_code == 400
    page = resp.content.decode()
    assert "can host at most 2 executor(s) of 1 core(s), 1536 MB even when idle (2 live worker(s)" in page
    assert Run.objects.count() == before
