"""workers.launcher: exit code and output captured in the run dir; signals reach the whole child group."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from workers import notify
from workers.localcluster import pid_alive

REPO = Path(__file__).resolve().parents[2]


def launch(run_dir, *argv):
    return subprocess.Popen(
        [sys.executable, "-m", "workers.launcher", "--run-dir", str(run_dir), "--", *argv],
        cwd=REPO,
        start_new_session=True,
    )


def wait_for(path, timeout=10):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_rc_and_output_captured(tmp_path):
    code = "import sys; print('to stdout'); print('to stderr', file=sys.stderr); sys.exit(3)"
    proc = launch(tmp_path, sys.executable, "-c", code)
    assert proc.wait(timeout=30) == 3
    assert (tmp_path / "driver.rc").read_text().strip() == "3"
    log = (tmp_path / "driver.log").read_text()
    assert "to stdout" in log and "to stderr" in log
    info = json.loads((tmp_path / "launcher.json").read_text())
    assert info["pid"] == proc.pid and info["child_pid"] != proc.pid and info["started"] > 0
    assert not list(tmp_path.glob(".*.tmp")), "temp files left behind"


def test_log_is_appended_and_child_runs_in_run_dir(tmp_path):
    launch(tmp_path, sys.executable, "-c", "print('first')").wait(timeout=30)
    launch(tmp_path, sys.executable, "-c", "import os; print('cwd=' + os.getcwd())").wait(timeout=30)
    log = (tmp_path / "driver.log").read_text()
    assert "first" in log and f"cwd={tmp_path}" in log
    assert (tmp_path / "driver.rc").read_text().strip() == "0"


def test_missing_command(tmp_path):
    proc = launch(tmp_path, str(tmp_path / "no-such-program"))
    assert proc.wait(timeout=30) == 127
    assert (tmp_path / "driver.rc").read_text().strip() == "127"


def test_sigterm_is_forwarded_to_the_child_group(tmp_path):
    # The child starts a grandchild (like spark-submit starting the Python driver), then waits.
    code = (
        "import subprocess, sys, time; "
        "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); "
        "open('grandchild.pid', 'w').write(str(g.pid)); "
        "print('ready', flush=True); time.sleep(120)"
    )
    proc = launch(tmp_path, sys.executable, "-c", code)
    wait_for(tmp_path / "launcher.json")
    wait_for(tmp_path / "grandchild.pid")
    time.sleep(0.2)
    child = json.loads((tmp_path / "launcher.json").read_text())["child_pid"]
    grandchild = int((tmp_path / "grandchild.pid").read_text())

    os.kill(proc.pid, signal.SIGTERM)  # only the launcher: it must pass the signal on
    assert proc.wait(timeout=15) == 128 + signal.SIGTERM
    assert (tmp_path / "driver.rc").read_text().strip() == str(128 + signal.SIGTERM)
    deadline = time.monotonic() + 5
    while (pid_alive(child) or pid_alive(grandchild)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(child) and not pid_alive(grandchild)
    assert "forwarding" in (tmp_path / "driver.log").read_text()


def test_child_can_handle_sigterm(tmp_path):
    code = (
        "import signal, sys, time\n"
        "def bye(*a):\n"
        "    print('child got SIGTERM', flush=True); sys.exit(5)\n"
        "signal.signal(signal.SIGTERM, bye)\n"
        "open('ready', 'w').close()\n"
        "time.sleep(120)\n"
    )
    proc = launch(tmp_path, sys.executable, "-c", code)
    wait_for(tmp_path / "ready")
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=15) == 5
    assert "child got SIGTERM" in (tmp_path / "driver.log").read_text()


def fs_broker(tmp_path):
    """An embedded (filesystem) broker in tmp_path: its transport options."""
    q, control = tmp_path / "broker-q", tmp_path / "broker-control"
    q.mkdir()
    control.mkdir()
    return {"data_folder_in": str(q), "data_folder_out": str(q), "control_folder": str(control),
            "store_processed": False}  # fmt: skip


def launch_with_env(run_dir, env_extra, *argv):
    return subprocess.Popen(
        [sys.executable, "-m", "workers.launcher", "--run-dir", str(run_dir), "--", *argv],
        cwd=REPO,
        env={**os.environ, **env_extra},
        start_new_session=True,
    )


def test_driver_exit_publishes_one_reconcile_task(tmp_path):
    opts = fs_broker(tmp_path)
    run_dir = tmp_path / "run"
    env = {notify.ENV: notify.spec("filesystem://", opts)}
    # The child must not see the notify spec (spark-submit would pass it on to the driver).
    code = f"import os, sys; sys.exit(4 if {notify.ENV!r} in os.environ else 0)"
    assert launch_with_env(run_dir, env, sys.executable, "-c", code).wait(timeout=60) == 0
    assert (run_dir / "driver.rc").read_text().strip() == "0"
    msgs = list(Path(opts["data_folder_out"]).glob("*.msg"))
    assert len(msgs) == 1, msgs
    headers = json.loads(msgs[0].read_text())["headers"]
    assert headers["task"] == "webapp.runs.tasks.reconcile_runs"
    assert headers["id"].startswith(notify.TASK_ID_PREFIX)
    assert f"told the worker: task {headers['id']}" in (run_dir / "driver.log").read_text()


def test_unreachable_broker_is_noted_and_the_exit_code_kept(tmp_path):
    env = {notify.ENV: notify.spec("redis://127.0.0.1:1/0")}  # nothing listens on port 1
    started = time.monotonic()
    assert launch_with_env(tmp_path, env, sys.executable, "-c", "raise SystemExit(3)").wait(timeout=60) == 3
    assert time.monotonic() - started < 30
    assert (tmp_path / "driver.rc").read_text().strip() == "3"
    assert "could not notify the worker" in (tmp_path / "driver.log").read_text()
