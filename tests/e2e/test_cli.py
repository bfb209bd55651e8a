"""The `sparkdeck` command line against the live stack (gunicorn, the Celery worker, the loopback
Spark cluster), run as a child process with an API token: upload, submit --wait, logs --follow,
download, list --filter, and the exit status of a dataset that fails and a run that is cancelled.
One real run serves several commands. (Here, not in tests/cli/, to share this directory's session
fixtures: one cluster, one stack.)"""

import json
import os
import re
import stat
import subprocess
import sys

import pytest

from tests.e2e.runs import descendants, wait_for, worker_daemons
from tests.web.test_api import BAD_DIR
from webapp.api import tokens
from webapp.datasets.models import Dataset
from webapp.runs import artifacts
from webapp.runs.models import Run
from workers.localcluster import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.spark, pytest.mark.django_db(transaction=True)]

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def cli_env(tmp_path):
    """Only what the CLI needs: no SPARKDECK_* from the test process, its own config folder."""
    return {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "config")}


def sparkdeck(env, *args, timeout=60) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "sparkdeck_cli", *map(str, args)]
    return subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def start(env, *args) -> subprocess.Popen:
    argv = [sys.executable, "-m", "sparkdeck_cli", *map(str, args)]
    return subprocess.Popen(argv, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def assert_user_error(result, *words):
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


def login(env, stack, user):
    result = sparkdeck(env, "login", "--url", stack.web_url, "--token", tokens.issue(user))
    assert result.returncode == 0, result.stderr


def test_upload_submit_follow_download_list(cli_env, alice, stack, loopback_cluster, digits_npz, tmp_path):
    env = cli_env
    assert_user_error(sparkdeck(env, "runs", "list"), "sparkdeck login")
    refused = sparkdeck(env, "login", "--url", stack.web_url, "--token", "sdk_not-a-token")
    assert_user_error(refused, "refused the token", f"{stack.web_url}/api/token/")
    login(env, stack, alice[0])
    conf = tmp_path / "config" / "sparkdeck" / "config.json"
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600
    assert json.loads(conf.read_text())["url"] == stack.web_url

    # Errors say what to do, never a traceback.
    assert_user_error(sparkdeck({**env, "SPARKDECK_TOKEN": "sdk_revoked"}, "runs", "list"), "sparkdeck login")
    port = free_port()
    gone = sparkdeck({**env, "SPARKDECK_URL": f"http://127.0.0.1:{port}"}, "runs", "list")
    assert_user_error(gone, f"cannot reach http://127.0.0.1:{port}")
    assert_user_error(sparkdeck(env, "runs", "show", "999999"), "not found")
    assert_user_error(sparkdeck(env, "runs", "list", "--filter", "accuracy >"), "expr")

    up = sparkdeck(env, "datasets", "upload", digits_npz, "--name", "digits-cli", "--test-fraction", "0.25", "--wait")
    assert up.returncode == 0, up.stderr
    ds = Dataset.objects.get(pk=int(up.stdout))
    assert ds.status == Dataset.Status.READY and ds.name == "digits-cli" and ds.options["test_fraction"] == 0.25
    assert "Uploading digits.npz" in up.stderr and f"Dataset {ds.pk} READY" in up.stderr

    submit = start(
        env,
        *("runs", "submit", "--dataset", ds.pk, "--template", "cnn", "--cluster", loopback_cluster.pk),
        *("--set", "epochs=2", "--set", "batch_size=32", "--executors", 2, "--memory", 1536),
        *("--wait", "--interval", "0.5", "--timeout", "400"),
    )
    run_id = int(submit.stdout.readline())
    follow = start(env, "runs", "logs", run_id, "--follow", "--interval", "0.5")
    try:
        out, err = submit.communicate(timeout=420)
        assert submit.returncode == 0, err
        followed, follow_err = follow.communicate(timeout=60)
        assert follow.returncode == 0, follow_err
    finally:
        for proc in (submit, follow):
            if proc.poll() is None:
                proc.kill()
    run = Run.objects.get(pk=run_id)
    assert run.status == Run.Status.SUCCEEDED
    assert f"Run {run_id} " in err and f"{stack.web_url}/runs/{run_id}/" in err
    assert re.search(rf"Run {run_id}: RUNNING, epoch [12]/2, step \d+/\d+", err), err
    assert f"Run {run_id} SUCCEEDED: test accuracy" in err, err

    # Followed to the run's end, each byte once, in order; the log read again afterwards is the file.
    driver_log = artifacts.log_path(run, "driver").read_text(errors="replace")
    assert driver_log.startswith(followed) and "exit code 0" in followed, (followed[-500:], driver_log[-500:])
    assert followed == driver_log, "the launcher's last line came over a second after the run ended"
    assert sparkdeck(env, "runs", "logs", run_id).stdout == driver_log
    executor = artifacts.executors(run)[0]
    executor_log = sparkdeck(env, "runs", "logs", run_id, "--executor", executor)
    assert executor_log.stdout == artifacts.log_path(run, executor, "stderr").read_text(errors="replace")

    model = sparkdeck(env, "runs", "download", run_id, "--what", "model", "-o", tmp_path)
    assert model.returncode == 0, model.stderr
    assert open(model.stdout.strip(), "rb").read() == artifacts.model_path(run).read_bytes()
    csv = sparkdeck(env, "runs", "download", run_id, "--what", "predictions", "-o", tmp_path / "p.csv")
    assert csv.returncode == 0 and (tmp_path / "p.csv").read_bytes() == artifacts.predictions_csv(run).read_bytes()

    listed = sparkdeck(env, "runs", "list", "--filter", "accuracy > 0.1 and epochs = 2", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [r["id"] for r in json.loads(listed.stdout)] == [run_id]
    assert json.loads(sparkdeck(env, "runs", "list", "--filter", "accuracy > 1", "--json").stdout) == []
    table = sparkdeck(env, "runs", "list", "--status", "succeeded").stdout.splitlines()
    assert table[0].split()[:3] == ["ID", "STATUS", "TEMPLATE"] and table[1].split()[:3] == [
        str(run_id),
        "SUCCEEDED",
        "cnn",
    ]


def test_failed_dataset_and_cancelled_run_exit_non_zero(
    cli_env, alice, stack, loopback_cluster, digits_dataset, spark_cluster, tmp_path
):
    env = cli_env
    login(env, stack, alice[0])
    broken = sparkdeck(env, "datasets", "upload", BAD_DIR / "npz_missing_y.npz", "--name", "broken", "--wait")
    assert_user_error(broken, "FAILED", "no array named 'y'")

    submit = start(
        env,
        *("runs", "submit", "--dataset", digits_dataset.pk, "--template", "cnn", "--cluster", loopback_cluster.pk),
        *("--set", "epochs=30", "--executors", 1, "--memory", 1536, "--wait", "--interval", "0.5"),
    )
    try:
        run_id = int(submit.stdout.readline())
        cancel = sparkdeck(env, "runs", "cancel", run_id)
        assert cancel.returncode == 0 and "CANCELLED" in cancel.stderr, cancel.stderr
        _, err = submit.communicate(timeout=60)
    finally:
        if submit.poll() is None:
            submit.kill()
    assert submit.returncode == 1 and "Traceback" not in err
    assert f"run {run_id} CANCELLED: Cancelled by alice" in err, err
    assert_user_error(sparkdeck(env, "runs", "cancel", run_id), "already ended")
    # Leave the cluster idle for the next test.
    wait_for(lambda: not descendants(worker_daemons(spark_cluster)), 60, "an idle cluster")
