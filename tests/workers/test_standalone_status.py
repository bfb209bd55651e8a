"""StandaloneBackend status/cancel/logs/submit against fake run dirs and a fake master (no Spark)."""

import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from tests.fake_http import QuietHandler, serve
from tests.workers.launchers import start_launcher
from workers import supervision
from workers.backends.base import BackendError, ClusterUnreachable, SubmitRequest
from workers.backends.standalone import StandaloneBackend
from workers.localcluster import pid_alive

REPO = Path(__file__).resolve().parents[2]
APP = "app-20260101000000-0000"


class FakeSpark:
    """A master and one worker UI in one HTTP server: /json/, /app/kill/, /worker/json/, /worker/log/."""

    def __init__(self):
        self.state = {"workers": [], "activeapps": [], "completedapps": []}
        self.executors = []  # worker /json/ "executors"
        self.logs = {}  # (exec id, log type) -> bytes
        self.kills = []
        fake = self

        class Handler(QuietHandler):
            def do_GET(self):
                url = urlparse(self.path)
                q = {k: v[0] for k, v in parse_qs(url.query).items()}
                if url.path == "/json/":
                    self._send(json.dumps(fake.state))
                elif url.path == "/":
                    self._send('<form><input type="hidden" name="csrfToken" value="tok123"/></form>', "text/html")
                elif url.path == "/worker/json/":
                    self._send(json.dumps({"executors": fake.executors, "finishedexecutors": []}))
                elif url.path == "/worker/log/":
                    data = fake.logs.get((q["executorId"], q["logType"]), b"")
                    start = min(int(q["offset"]), len(data))
                    end = min(start + int(q["byteLength"]), len(data))
                    head = f"==== Bytes {start}-{end} of {len(data)} of /w/{q['appId']}/x ====\n".encode()
                    self._send(head + data[start:end], "text/plain")
                else:
                    self._send("not found", "text/plain", 404)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                fake.kills.append({k: v[0] for k, v in parse_qs(body).items()})
                self.send_response(302)
                self.send_header("Location", "/")
                self.end_headers()

        self.server, self.url = serve(Handler)


@pytest.fixture
def fake():
    f = FakeSpark()
    yield f
    f.server.shutdown()
    f.server.server_close()


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def backend_for(url):
    return StandaloneBackend(master_url="spark://127.0.0.1:1", rest_url=url, http_timeout=2, cancel_grace=3)


def fake_run(tmp_path, rc=None, log="", result=False, launcher_pid=999_999_999):
    run_dir = tmp_path / "run"
    run_dir.mkdir(exist_ok=True)
    (run_dir / "driver.log").write_text(log)
    if rc is not None:
        (run_dir / "driver.rc").write_text(f"{rc}\n")
    if result:
        (run_dir / "result.json").write_text('{"test_accuracy": 0.9}')
    return {"run_dir": str(run_dir), "launcher_pid": launcher_pid, "rest_url": "http://127.0.0.1:9"}


def test_succeeded(tmp_path):
    log = f"SPARKDECK_APP_ID={APP}\nSPARKDECK_UI_URL=http://127.0.0.1:4040\n"
    handle = fake_run(tmp_path, rc=0, log=log, result=True)
    st = backend_for(None).status(handle)
    assert st.state == "SUCCEEDED" and st.is_final
    assert st.app_id == APP and st.ui_url == "http://127.0.0.1:4040"
    assert handle["app_id"] == APP  # status() enriches the handle for the caller to store


def test_rc0_without_result_is_a_failure(tmp_path):
    st = backend_for(None).status(fake_run(tmp_path, rc=0))
    assert st.state == "FAILED" and "result.json" in st.reason


def test_failed_with_sparkdeck_error(tmp_path):
    log = "noise\nTraceback (most recent call last):\nValueError: inner\nSPARKDECK_ERROR=Dataset has 1 class\nmore\n"
    st = backend_for(None).status(fake_run(tmp_path, rc=1, log=log))
    assert st.state == "FAILED"
    assert st.reason == "Dataset has 1 class"
    assert "SPARKDECK_ERROR" in st.detail


def test_failed_with_python_traceback(tmp_path):
    log = (
        "26/01/01 INFO SparkContext: Running Spark\n"
        "Traceback (most recent call last):\n"
        '  File "driver.py", line 3, in <module>\n'
        "    main()\n"
        "ValueError: boom\n"
        "26/01/01 INFO SparkContext: Successfully stopped SparkContext\n"
    )
    st = backend_for(None).status(fake_run(tmp_path, rc=1, log=log))
    assert st.state == "FAILED" and st.reason == "ValueError: boom"
    assert "main()" in st.detail


def test_failed_with_interleaved_py4j_error(tmp_path):
    log = (
        "Traceback (most recent call last):\n"
        '  File "/x/protocol.py", line 327, in get_return_value\n'
        "py4j.protocol.Py4JJavaError26/01/01 04:15:05 INFO StandaloneSchedulerBackend: Shutting down\n"
        ": An error occurred while calling z:org.apache.spark.api.python.PythonRDD.collectAndServe.\n"
        ": org.apache.spark.SparkException: Job aborted due to stage failure\n"
        "\tat org.apache.spark.scheduler.DAGScheduler.failJobAndIndependentStages\n"
        "Caused by: java.lang.InterruptedException\n"
    )
    st = backend_for(None).status(fake_run(tmp_path, rc=1, log=log))
    assert st.reason == "py4j.protocol.Py4JJavaError: org.apache.spark.SparkException: Job aborted due to stage failure"


def test_failed_because_a_python_worker_was_killed(tmp_path):
    """A real driver log (tests/workers/recordings): executor 1's Python worker was killed; the driver's own
    SPARKDECK_ERROR is executor 0's error on losing it."""
    log = (REPO / "tests/workers/recordings/python_worker_killed/exec1_chief/driver.log").read_text()
    assert "SPARKDECK_ERROR=UnavailableError: " in log
    st = backend_for(None).status(fake_run(tmp_path, rc=1, log=log))
    assert st.state == "FAILED"
    assert st.reason == "Executor 1's Python worker died: it was killed or crashed"
    assert "TF node chief:0 (127.0.0.1:43133) ran on executor 1" in st.detail


def test_failed_without_any_error_line(tmp_path):
    st = backend_for(None).status(fake_run(tmp_path, rc=137, log="just\nlogs\n"))
    assert st.state == "FAILED" and "signal 9" in st.reason


def test_dead_launcher_without_rc_vanished(tmp_path):
    st = backend_for(None).status(fake_run(tmp_path, log="partial\n"))
    assert st.state == "FAILED" and st.reason == "driver process vanished"


def test_reused_pid_is_not_our_launcher(tmp_path):
    # A live pid that is not a launcher for this run dir (pid reuse after a reboot) counts as dead.
    st = backend_for(None).status(fake_run(tmp_path, launcher_pid=1))
    assert st.state == "FAILED" and st.reason == "driver process vanished"


def test_zombie_launcher_counts_as_dead(tmp_path):
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    time.sleep(1)  # exited, not yet reaped
    assert not pid_alive(zombie.pid)
    st = backend_for(None).status(fake_run(tmp_path, launcher_pid=zombie.pid))
    zombie.wait()
    assert st.state == "FAILED"


def test_cancelled_marker(tmp_path):
    handle = fake_run(tmp_path, rc=143)
    (Path(handle["run_dir"]) / "cancelled.json").write_text("{}")
    assert backend_for(None).status(handle).state == "CANCELLED"


def test_running_states_and_cancel(tmp_path, fake):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    proc = start_launcher(run_dir)
    b = backend_for(fake.url)
    handle = {"run_dir": str(run_dir), "launcher_pid": proc.pid, "rest_url": fake.url}
    try:
        assert b.status(handle).state == "SUBMITTED"  # no app id printed yet

        with open(run_dir / "driver.log", "a") as f:
            f.write(f"SPARKDECK_APP_ID={APP}\n")
        fake.state["activeapps"] = [{"id": APP, "state": "WAITING"}]
        st = b.status(handle)
        assert st.state == "SUBMITTED" and "WAITING" in st.detail

        fake.state["activeapps"] = [{"id": APP, "state": "RUNNING"}]
        assert b.status(handle).state == "RUNNING"

        handle["rest_url"] = f"http://127.0.0.1:{closed_port()}"  # master gone: keep the last state
        st = b.status(handle)
        assert st.state == "RUNNING" and "not reachable" in st.detail
        handle["rest_url"] = fake.url

        b.cancel(handle)
        assert fake.kills == [{"id": APP, "terminate": "true", "csrfToken": "tok123"}]
        assert proc.wait(timeout=10) != 0
        assert (run_dir / "driver.rc").exists()
        child = json.loads((run_dir / "launcher.json").read_text())["child_pid"]
        assert not pid_alive(child)
        assert b.status(handle).state == "CANCELLED"
    finally:
        if proc.poll() is None:
            proc.kill()


def test_cancel_when_launcher_was_killed(tmp_path, fake):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    proc = start_launcher(run_dir)
    child = json.loads((run_dir / "launcher.json").read_text())["child_pid"]
    proc.kill()  # the launcher dies without writing driver.rc; its child lives on
    proc.wait()
    assert pid_alive(child)
    b = backend_for(fake.url)
    handle = {"run_dir": str(run_dir), "launcher_pid": proc.pid, "rest_url": fake.url}
    b.cancel(handle, reason="Cancelled by alice.")
    assert not pid_alive(child)
    assert (run_dir / "driver.rc").read_text().strip() == "143"
    st = b.status(handle)
    # The reconciler may record the move before the canceller does: it must keep who cancelled.
    assert (st.state, st.reason) == ("CANCELLED", "Cancelled by alice.")


def test_logs_are_copied_incrementally(tmp_path, fake):
    fake.state["workers"] = [{"id": "w1", "state": "ALIVE", "webuiaddress": f"{fake.url}/worker"}]
    fake.executors = [{"id": 0, "appid": APP}, {"id": 1, "appid": APP}, {"id": 0, "appid": "app-other"}]
    fake.logs = {("0", "stderr"): b"line 1\n", ("1", "stderr"): b"x" * 3000}
    handle = fake_run(tmp_path, log=f"SPARKDECK_APP_ID={APP}\n")
    handle["rest_url"] = fake.url
    b = backend_for(fake.url)

    files = b.logs(handle)
    run_dir = Path(handle["run_dir"])
    assert run_dir / "executors/0/stderr" in files and run_dir / "executors/1/stdout" in files
    assert (run_dir / "executors/0/stderr").read_bytes() == b"line 1\n"

    fake.logs[("0", "stderr")] += "line 2 ü\n".encode()
    b.logs(handle)
    b.logs(handle)
    assert (run_dir / "executors/0/stderr").read_bytes() == "line 1\nline 2 ü\n".encode()
    assert (run_dir / "executors/1/stderr").read_bytes() == b"x" * 3000
    offsets = json.loads((run_dir / "executors/offsets.json").read_text())
    assert offsets["0/stderr"] == len("line 1\nline 2 ü\n".encode())


def test_follow_log_fetches_one_log_between_copies(tmp_path, fake):
    import fcntl

    fake.state["workers"] = [{"id": "w1", "state": "ALIVE", "webuiaddress": f"{fake.url}/worker"}]
    fake.executors = [{"id": 0, "appid": APP}, {"id": 1, "appid": APP}]
    fake.logs = {("0", "stderr"): b"line 1\n", ("1", "stderr"): b"a\n"}
    handle = fake_run(tmp_path, log=f"SPARKDECK_APP_ID={APP}\n")
    handle["rest_url"] = fake.url
    b = backend_for(fake.url)
    out = Path(handle["run_dir"]) / "executors"
    b.follow_log(handle, "0", "stderr")  # before any logs() copy: no worker known yet, nothing fetched
    assert not (out / "0/stderr").exists()

    b.logs(handle)  # the reconciler's copy: records which worker UI serves each executor
    source = {"ui": f"{fake.url}/worker", "app_id": APP}
    assert json.loads((out / "sources.json").read_text()) == {"0": source, "1": source}
    fake.logs[("0", "stderr")] += b"line 2\n"
    fake.logs[("1", "stderr")] += b"b\n"
    b.follow_log(handle, "0", "stderr")
    assert (out / "0/stderr").read_bytes() == b"line 1\nline 2\n"
    assert (out / "1/stderr").read_bytes() == b"a\n"  # only the log asked for
    assert json.loads((out / "offsets.json").read_text())["0/stderr"] == len(b"line 1\nline 2\n")

    b.follow_log(handle, "7", "stderr")  # unknown executor, unknown stream: nothing, no error
    b.follow_log(handle, "0", "../x")
    fake.logs[("0", "stderr")] += b"line 3\n"
    with open(out / ".lock", "w") as lock:  # a logs() copy in progress: follow_log leaves it to it
        fcntl.flock(lock, fcntl.LOCK_EX)
        b.follow_log(handle, "0", "stderr")
        assert (out / "0/stderr").read_bytes() == b"line 1\nline 2\n"
    b.logs(handle)  # the next copy continues from follow_log's offset: no byte twice
    assert (out / "0/stderr").read_bytes() == b"line 1\nline 2\nline 3\n"
    assert (out / "1/stderr").read_bytes() == b"a\nb\n"


def test_logs_without_master_return_what_is_there(tmp_path):
    handle = fake_run(tmp_path, log=f"SPARKDECK_APP_ID={APP}\n")
    handle["rest_url"] = f"http://127.0.0.1:{closed_port()}"
    assert backend_for(None).logs(handle) == []


def req_for(tmp_path):
    return SubmitRequest(
        run_id=1,
        run_dir=tmp_path / "run",
        master_url="spark://127.0.0.1:1",
        app_name="x",
        entry="/dev/null",
        python=sys.executable,
    )


def test_submit_to_unreachable_master(tmp_path):
    b = backend_for(f"http://127.0.0.1:{closed_port()}")
    t0 = time.monotonic()
    with pytest.raises(ClusterUnreachable, match="not reachable"):
        b.submit(req_for(tmp_path))
    assert time.monotonic() - t0 < 5
    assert not (tmp_path / "run" / "launcher.json").exists()


def test_submit_refuses_a_cluster_without_workers(tmp_path, fake):
    with pytest.raises(BackendError, match="no live workers"):
        backend_for(fake.url).submit(req_for(tmp_path))


def test_a_launcher_whose_argv_is_not_set_yet_is_alive(tmp_path, monkeypatch):
    """Right after Popen returns, /proc/<pid>/cmdline can read empty (exec still setting up the new
    argv): that must not make a fresh run "vanish"; another process's argv still means gone."""
    monkeypatch.setattr(supervision, "pid_alive", lambda pid: True)
    monkeypatch.setattr(supervision, "cmdline", lambda pid: "")
    assert supervision.launcher_alive(12345, tmp_path)
    monkeypatch.setattr(supervision, "cmdline", lambda pid: "/usr/bin/something-else --flag")
    assert not supervision.launcher_alive(12345, tmp_path)
