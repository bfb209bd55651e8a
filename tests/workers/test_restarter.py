"""workers.restarter (`make run`'s children): a child that dies is started again and the terminal is
told; one that keeps crashing stops the stack with the reason. Real processes."""

import os
import signal
import sys
import time

import pytest

from workers.localcluster import pid_alive
from workers.restarter import Child, Children, GaveUp


def child(tmp_path, code, name="worker"):
    return Child(name, [sys.executable, "-c", code], tmp_path / f"{name}.log", dict(os.environ), tmp_path)


def run_until(children, check, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        children.check()
        time.sleep(0.05)


def test_a_killed_child_is_restarted_and_the_others_keep_running(tmp_path):
    said = []
    kids = Children(say=said.append, pause=0.1)
    try:
        worker = kids.add(child(tmp_path, "import time; time.sleep(60)"))
        web = kids.add(child(tmp_path, "import time; time.sleep(60)", name="web"))
        first, web_pid = worker.proc.pid, web.proc.pid
        os.killpg(first, signal.SIGKILL)
        run_until(kids, lambda: worker.proc.pid != first and worker.proc.poll() is None)
        assert pid_alive(worker.proc.pid) and web.proc.pid == web_pid and web.proc.poll() is None
        assert said[0] == f"worker exited with code {-signal.SIGKILL}; restarting it in 0 s (1 of 5)"
        assert said[1].startswith(f"worker restarted (pid {worker.proc.pid}")
    finally:
        kids.stop(grace=2)
    assert not pid_alive(worker.proc.pid) and not pid_alive(web.proc.pid)


def test_a_child_that_keeps_crashing_stops_the_stack(tmp_path):
    said = []
    kids = Children(say=said.append, max_restarts=2, window=60, pause=0.05)
    kids.add(child(tmp_path, "raise SystemExit(3)"))
    with pytest.raises(GaveUp, match="worker exited with code 3 and was already restarted 2 times in 60 s"):
        run_until(kids, lambda: False)
    assert [s for s in said if "restarting" in s] == [
        "worker exited with code 3; restarting it in 0 s (1 of 2)",
        "worker exited with code 3; restarting it in 0 s (2 of 2)",
    ]
    kids.stop(grace=1)
