"""JVM class-data archives (workers/jvm_cds.py) through the real path: the first run on a fresh
install learns them (its driver and each executor dump one), the next run maps them."""

import shutil
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from tests.e2e.runs import submit, wait_terminal
from webapp.runs.models import Run
from workers import jvm_cds

pytestmark = [pytest.mark.e2e, pytest.mark.spark, pytest.mark.django_db(transaction=True)]


def launch_argv(run) -> str:
    return (run.run_dir / "driver.log").read_text(errors="replace").splitlines()[0]


def executor_logs(run) -> dict[str, str]:
    dirs = sorted(p for p in (run.run_dir / "executors").iterdir() if p.is_dir())
    assert len(dirs) == 2, dirs
    return {d.name: (d / "stderr").read_text(errors="replace") for d in dirs}


def all_logs(run) -> str:
    out = (run.run_dir / "driver.log").read_text(errors="replace")
    for d in (run.run_dir / "executors").iterdir():
        if d.is_dir():
            out += "".join((d / s).read_text(errors="replace") for s in ("stdout", "stderr") if (d / s).exists())
    return out


def test_first_run_learns_the_class_archives_and_the_next_maps_them(
    alice, digits_dataset, loopback_cluster, celery_worker
):
    root = Path(settings.VAR_DIR) / "jvm-cds"
    shutil.rmtree(root, ignore_errors=True)  # a fresh install; no run is active between e2e tests
    owner = Client()
    owner.force_login(alice[0])

    first = submit(owner, digits_dataset, loopback_cluster, hp_cnn_epochs="1")
    first, _ = wait_terminal(first.pk, 300, celery_worker)
    assert first.status == Run.Status.SUCCEEDED, f"{first.status_reason}\n{first.status_detail}"
    [key_dir] = list(root.iterdir())
    assert f"-XX:ArchiveClassesAtExit={key_dir / f'driver-run{first.pk}.jsa.part'}" in launch_argv(first)
    for executor_id, stderr in executor_logs(first).items():
        command = stderr.split("\n", 1)[0]  # "Spark Executor Command: ..."
        # Spark filled in {{APP_ID}} and {{EXECUTOR_ID}}: one dump file per executor JVM.
        assert f"executor-{first.spark_app_id}-{executor_id}.jsa.part" in command, command[-600:]

    # The executors write theirs as their JVMs exit, just after the application ended.
    deadline = time.time() + 60
    while True:
        logs = list(key_dir.glob("executor-*.jsa.part.log"))
        if logs and all(jvm_cds.MARKER in p.read_bytes() for p in logs):
            break
        assert time.time() < deadline, sorted(p.name for p in key_dir.iterdir())
        time.sleep(1)
    # The dumps' warnings (old classes in the jars) are in the dumps' own logs, not the run's.
    assert "[warning][cds" not in all_logs(first)
    assert any(b"[warning][cds" in p.read_bytes() for p in key_dir.glob("*.jsa.part.log"))

    second = submit(owner, digits_dataset, loopback_cluster, hp_cnn_epochs="1")
    second, _ = wait_terminal(second.pk, 300, celery_worker)
    assert second.status == Run.Status.SUCCEEDED, f"{second.status_reason}\n{second.status_detail}"
    assert f"-XX:SharedArchiveFile={key_dir / 'driver.jsa'}" in launch_argv(second)
    for stderr in executor_logs(second).values():
        assert f"-XX:SharedArchiveFile={key_dir / 'executor.jsa'}" in stderr.split("\n", 1)[0]
    # Mapped, not refused: a JVM that cannot use its archive says so ("[warning][cds...] Unable to use").
    assert "[warning][cds" not in all_logs(second)
    assert sorted(p.name for p in key_dir.iterdir()) == ["driver.jsa", "executor.jsa"]
