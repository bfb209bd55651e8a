"""Submitting runs through the web form and waiting for them, for the end-to-end tests."""

import os
import time
from pathlib import Path

import pytest
from django.urls import reverse

from webapp.datasets.models import Dataset
from webapp.runs.models import Run


def wait_terminal(run_id, timeout, worker):
    deadline = time.time() + timeout
    seen = []
    while time.time() < deadline:
        run = Run.objects.get(pk=run_id)
        if not seen or seen[-1] != run.status:
            seen.append(run.status)
        if run.is_terminal:
            return run, seen
        time.sleep(1)
    pytest.fail(f"run {run_id} still {seen} after {timeout}s; worker log:\n{worker.log_path.read_text()[-4000:]}")


def wait_dataset_ready(pk, timeout=120, worker=None) -> Dataset:
    """The dataset once the Celery worker converted it (READY); fails the test on FAILED or timeout."""
    deadline = time.time() + timeout
    while True:
        ds = Dataset.objects.get(pk=pk)
        if ds.status == Dataset.Status.READY:
            return ds
        if ds.status == Dataset.Status.FAILED:
            pytest.fail(f"dataset {ds.name} failed to convert: {ds.status_reason}")
        if time.time() > deadline:
            log = worker.log_path.read_text()[-4000:] if worker is not None else ""
            pytest.fail(f"dataset {ds.name} still {ds.status} after {timeout}s; worker log:\n{log}")
        time.sleep(0.5)


def wait_modelfile_ready(pk, timeout=120, worker=None):
    """The model file once the Celery worker checked it (READY); fails the test on FAILED or timeout."""
    from webapp.modelfiles.models import ModelFile

    deadline = time.time() + timeout
    while True:
        mf = ModelFile.objects.get(pk=pk)
        if mf.status == ModelFile.Status.READY:
            return mf
        if mf.status == ModelFile.Status.FAILED:
            pytest.fail(f"model file {mf.name} failed its check: {mf.status_reason}")
        if time.time() > deadline:
            log = worker.log_path.read_text()[-4000:] if worker is not None else ""
            pytest.fail(f"model file {mf.name} still {mf.status} after {timeout}s; worker log:\n{log}")
        time.sleep(0.5)


def form_data(dataset, cluster, **hp) -> dict:
    data = {
        "dataset": dataset.pk,
        "template": "cnn",
        "input_mode": "tensorflow",
        "cluster": cluster.pk,
        "num_executors": 2,
        "executor_cores": 1,
        "executor_memory_mb": 1536,
        "hp_cnn_epochs": "5",
        "hp_cnn_batch_size": "32",
        "hp_cnn_learning_rate": "0.002",
    }
    data.update(hp)
    return data


def submit(client, dataset, cluster, **hp):
    resp = client.post(reverse("run_new"), form_data(dataset, cluster, **hp))
    assert resp.status_code == 302, resp.content.decode()[:2000]
    return Run.objects.latest("id")


def wait_for_log(worker, text, timeout):
    """Wait until the Celery worker's log holds `text` (it logs each task as it ends)."""
    deadline = time.time() + timeout
    while text not in worker.log_path.read_text(errors="replace"):
        if time.time() > deadline:
            pytest.fail(f"{text!r} not in the worker log after {timeout}s:\n{worker.log_path.read_text()[-4000:]}")
        time.sleep(0.5)


def descendants(pids: list[int]) -> list[int]:
    """Live processes below the given ones (executor JVMs and their Python workers under the
    Spark worker daemons)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] not in ("Z", "X"):
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], list(pids)
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def worker_daemons(spark_cluster) -> list[int]:
    return [d["pid"] for d in spark_cluster.daemons() if d["cls"].endswith("worker.Worker")]


def wait_for(check, timeout, what, explain=None):
    """Poll `check` until it is truthy; on timeout fail, with `explain()` (what the test saw) if given."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout}s waiting for {what}" + (f"\n{explain()}" if explain else ""))


def run_story(run_id, worker=None, lines=40) -> str:
    """A run as the reconciler left it, for a failing test's message: its row, the tail of its driver
    log and of the worker's log."""
    run = Run.objects.get(pk=run_id)
    driver_log = run.run_dir / "driver.log"
    tail = driver_log.read_text(errors="replace").splitlines()[-lines:] if driver_log.exists() else ["(none)"]
    story = [
        f"run {run.pk}: {run.status} ({run.status_reason!r}), attempts {run.submit_attempts}",
        f"handle {run.backend_handle}",
        f"driver seen {run.driver_seen}",
        "driver.log:",
        *tail,
    ]
    if worker is not None:
        story += ["worker log:", *worker.log_path.read_text(errors="replace").splitlines()[-lines:]]
    return "\n".join(story)
