"""Upload → train the CNN with TFoS on a real Spark standalone cluster via Celery → browse results.

Runs through PostgreSQL, a Celery worker process on Redis, a real 2-worker Spark standalone
cluster and the live server that the executors post metrics to.
"""

import re

import pyarrow.parquet as pq
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from tests.e2e.runs import form_data, submit, wait_dataset_ready, wait_for_log, wait_terminal
from webapp.clusters.models import Cluster
from webapp.datasets.models import Dataset
from webapp.runs.models import MetricPoint, Run

pytestmark = [pytest.mark.e2e, pytest.mark.spark, pytest.mark.django_db(transaction=True)]


def test_cnn_trains_end_to_end(alice, bob, digits_npz, loopback_cluster, celery_worker):
    owner = Client()
    owner.force_login(alice[0])
    resp = owner.post(
        reverse("dataset_upload"),
        {"name": "digits", "file": SimpleUploadedFile("digits.npz", digits_npz.read_bytes())},
    )
    assert resp.status_code == 302
    dataset = wait_dataset_ready(Dataset.objects.get(name="digits").pk, 120, celery_worker)  # converted by the worker

    run = submit(owner, dataset, loopback_cluster)
    run, seen = wait_terminal(run.pk, 420, celery_worker)
    assert run.status == Run.Status.SUCCEEDED, f"{run.status_reason}\n{run.status_detail}"
    assert seen[0] in ("QUEUED", "SUBMITTED") and "RUNNING" in seen
    assert run.spark_app_id.startswith("app-")
    # The launcher told the worker when the driver exited (workers/notify.py), through Redis.
    told = re.search(r"told the worker: task (driver-exit-[0-9a-f-]+)", (run.run_dir / "driver.log").read_text())
    assert told, "the launcher did not publish its reconcile task"
    wait_for_log(celery_worker, f"webapp.runs.tasks.reconcile_runs[{told.group(1)}] succeeded", 30)
    # Sparkdeck's pollers met the driver's REST API only once it had answered (driver.announce_ui):
    # none gave up on a slow answer, so Jetty logged no broken pipe (docs/monitoring.md).
    driver_log = (run.run_dir / "driver.log").read_text(errors="replace")
    assert "Spark UI REST API answered after" in driver_log
    for trace in ("EofException", "Broken pipe"):
        assert trace not in driver_log, f"{trace} in the driver log"

    # Metrics from both executors, loss going down on each.
    executors = set(MetricPoint.objects.filter(run=run).values_list("executor", flat=True))
    assert len(executors) == 2, executors
    for ex in executors:
        losses = list(
            MetricPoint.objects.filter(run=run, executor=ex, name="epoch_loss")
            .order_by("step")
            .values_list("value", flat=True)
        )
        assert len(losses) == 5 and losses[-1] < losses[0], (ex, losses)

    assert run.test_accuracy >= 0.90
    assert run.test_rows == dataset.test_rows
    preds = run.run_dir / "predictions" / "predictions.parquet"
    assert pq.ParquetFile(preds).metadata.num_rows == dataset.test_rows
    assert (run.run_dir / "model" / "model.keras").stat().st_size > 0
    exec_dirs = sorted(p for p in (run.run_dir / "executors").iterdir() if p.is_dir())
    assert len(exec_dirs) == 2
    for d in exec_dirs:
        assert (d / "stderr").stat().st_size > 0, d
    # TFoS stayed on loopback: the executors logged a TF cluster spec with 127.0.0.1 only.
    stderr_all = "".join((d / "stderr").read_text(errors="replace") for d in exec_dirs)
    assert "127.0.0.1" in stderr_all

    page = owner.get(run.get_absolute_url()).content.decode()
    assert run.spark_app_id in page and "SUCCEEDED" in page
    pred_page = owner.get(reverse("run_predictions", args=[run.pk])).content.decode()
    assert f"{dataset.test_rows} rows" in pred_page
    assert owner.get(reverse("run_model", args=[run.pk])).status_code == 200
    assert owner.get(reverse("run_log", args=[run.pk, exec_dirs[0].name, "stderr"])).status_code == 200

    intruder = Client()
    intruder.force_login(bob[0])
    for name in ("run_detail", "run_predictions", "run_model", "run_live"):
        assert intruder.get(reverse(name, args=[run.pk])).status_code == 404


def test_failing_run_ends_failed_with_reason_and_logs(alice, digits_dataset, loopback_cluster, celery_worker):
    """The dataset's files vanish after it was accepted: the job fails, the page says why."""
    owner = Client()
    owner.force_login(alice[0])
    (digits_dataset.storage_dir / "train.parquet").unlink()
    run = submit(owner, digits_dataset, loopback_cluster, hp_cnn_epochs="1")
    run, _ = wait_terminal(run.pk, 240, celery_worker)
    assert run.status == Run.Status.FAILED
    assert "train.parquet" in run.status_reason + run.status_detail
    assert (run.run_dir / "driver.log").stat().st_size > 0
    page = owner.get(run.get_absolute_url()).content.decode()
    assert "FAILED" in page and "train.parquet" in page


def test_unreachable_cluster_is_refused_at_once_with_a_clear_reason(alice, digits_dataset):
    dead = Cluster.objects.create(
        name="nowhere", master_url="spark://127.0.0.1:9", rest_url="http://127.0.0.1:9", bind_host="127.0.0.1"
    )
    owner = Client()
    owner.force_login(alice[0])
    before = Run.objects.count()
    resp = owner.post(reverse("run_new"), form_data(digits_dataset, dead, hp_cnn_epochs="1"))
    assert resp.status_code == 400
    page = resp.content.decode()
    assert "nowhere is not reachable" in page and "127.0.0.1:9" in page
    assert Run.objects.count() == before  # nothing stored, nothing sent
