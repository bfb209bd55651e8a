"""workers.supervision with real processes: the cancel mark beats a launch, a launched driver can be
adopted from its run dir, stopping is scoped to one launcher, and liveness judged from another host."""

import sys
import time

from workers import supervision
from workers.launcher import RC_NAME
from workers.localcluster import group_pids, pid_alive

SLEEP = [sys.executable, "-c", "import time; time.sleep(60)"]


def wait_for(check, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_cancel_mark_written_before_the_launch_starts_nothing(tmp_path):
    supervision.mark_cancelled(tmp_path, "Cancelled by alice.")
    handle = supervision.launch(tmp_path, SLEEP, supervision.child_env(), {"run_id": 1})
    wait_for(lambda: (tmp_path / RC_NAME).exists())
    assert (tmp_path / RC_NAME).read_text().strip() == "143"
    info = supervision.launcher_info(tmp_path)
    assert "child_pid" not in info, "spark-submit was started although the run was cancelled"
    assert "cancelled before its driver started" in (tmp_path / "driver.log").read_text()
    wait_for(lambda: not pid_alive(handle["launcher_pid"]))
    assert supervision.probe_local(handle).state == supervision.EXITED


def test_adopt_gives_the_handle_of_a_launch_whose_worker_died(tmp_path):
    assert supervision.adopt(tmp_path) is None  # nothing ever launched here
    handle = supervision.launch(tmp_path, SLEEP, supervision.child_env(), {"run_id": 7, "rest_url": "http://m"})
    try:
        wait_for(lambda: supervision.launcher_info(tmp_path).get("child_pid"))
        adopted = supervision.adopt(tmp_path)
        assert adopted == handle  # everything the submitter would have recorded
        assert adopted["host"] == supervision.node_name() and adopted["rest_url"] == "http://m"
        assert supervision.probe_local(adopted).state == supervision.RUNNING
    finally:
        supervision.stop_local(handle, grace=2)
    assert not group_pids(handle["launcher_pid"])
    assert supervision.probe_local(handle).state == supervision.EXITED


def test_stop_leaves_another_launchers_driver_alone(tmp_path):
    first = supervision.launch(tmp_path / "a", SLEEP, supervision.child_env(), {})
    wait_for(lambda: supervision.launcher_info(tmp_path / "a").get("child_pid"))
    supervision.stop_local(first, grace=2)
    # A later launch in the same dir rewrites launcher.json; a stale handle must not stop its child.
    second = supervision.launch(tmp_path / "a", SLEEP, supervision.child_env(), {})
    try:
        wait_for(lambda: supervision.launcher_info(tmp_path / "a").get("child_pid"))
        child = supervision.launcher_info(tmp_path / "a")["child_pid"]
        supervision.stop_local(first, grace=2)
        assert pid_alive(child) and pid_alive(second["launcher_pid"])
    finally:
        supervision.stop_local(second, grace=2)
    assert not pid_alive(child)


def test_liveness_from_another_host_is_the_hosts_last_answer(tmp_path):
    handle = {"run_dir": str(tmp_path), "host": "elsewhere", "launcher_pid": 1, "launched": 1000.0}
    state = supervision.driver_state
    # Just launched there, no answer yet: running.
    assert state(handle, None, silent_after=30, now=1010.0).state == supervision.RUNNING
    # That host answers: what it said, while fresh.
    assert state(handle, {"state": "running", "at": 1050.0}, silent_after=30, now=1070.0).state == "running"
    assert state(handle, {"state": "gone", "at": 1050.0}, silent_after=30, now=1070.0).state == "gone"
    # It stopped answering: silent, since its last answer (never "vanished").
    silent = state(handle, {"state": "running", "at": 1050.0}, silent_after=30, now=1100.0)
    assert silent.state == supervision.SILENT and silent.seen_at == 1050.0 and silent.alive
    assert state(handle, None, silent_after=30, now=1100.0).state == supervision.SILENT
    # The exit code on the shared run dir is the truth from anywhere.
    (tmp_path / RC_NAME).write_text("0\n")
    assert state(handle, {"state": "running", "at": 1050.0}, now=1100.0).state == supervision.EXITED


def test_child_env_passes_the_toolchain_and_nothing_else():
    environ = {
        "PATH": "/bin",
        "JAVA_HOME": "/jdk",
        "SPARK_CONF_DIR": "/c",
        "LC_ALL": "C.UTF-8",
        "DJANGO_SECRET_KEY": "k",
        "DATABASE_URL": "postgres://u:p@h/d",
        "CELERY_BROKER_URL": "redis://:p@h",
        "EMAIL_HOST_PASSWORD": "p",
        "AWS_SECRET_ACCESS_KEY": "p",
    }
    env = supervision.child_env({"EXTRA": "1"}, environ=environ)
    assert env == {"PATH": "/bin", "JAVA_HOME": "/jdk", "SPARK_CONF_DIR": "/c", "LC_ALL": "C.UTF-8", "EXTRA": "1"}
