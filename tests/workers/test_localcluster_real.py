"""A real loopback Spark standalone cluster from pip's pyspark: start, run tiny apps, cancel, stop.

Ports 17177/18180-18182 (and 17277/18280-18282 for the CLI test) keep clear of 7077/8080-8082 and of
7177/8180-8182. Takes about 1.5-2 minutes on 2 cores.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from workers.backends.base import SubmitRequest
from workers.backends.standalone import StandaloneBackend
from workers.localcluster import ClusterError, LocalCluster, group_pids, pid_alive, port_open

pytestmark = [
    pytest.mark.spark,
    pytest.mark.skipif(shutil.which("java") is None and not os.environ.get("JAVA_HOME"), reason="needs Java"),
]

REPO = Path(__file__).resolve().parents[2]
TINY_APP = Path(__file__).resolve().parent / "apps" / "tiny_app.py"
MASTER_PORT, UI_PORT = 17177, 18180


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = LocalCluster(tmp_path_factory.mktemp("spark"), master_port=MASTER_PORT, webui_port=UI_PORT, worker_memory="1g")
    t0 = time.monotonic()
    c.start(timeout=90)
    print(f"\ncluster start: {time.monotonic() - t0:.1f} s")
    daemons = c.daemons()
    yield c
    c.stop()
    # Nothing left: no daemon, nothing in their process groups (executors, Python workers).
    assert not any(pid_alive(d["pid"]) or group_pids(d["pid"]) for d in daemons)
    assert not c.is_running()
    assert not any(port_open(p) for p in (MASTER_PORT, UI_PORT, *c.worker_ui_ports))


@pytest.fixture
def backend(cluster):
    return StandaloneBackend(master_url=cluster.master_url, rest_url=cluster.rest_url, cancel_grace=10)


def tiny_request(cluster, run_dir, *args):
    return SubmitRequest(
        run_id=run_dir.name,
        run_dir=run_dir,
        master_url=cluster.master_url,
        app_name=f"tiny-{run_dir.name}",
        entry=str(TINY_APP),
        entry_args=[str(run_dir), *args],
        num_executors=2,
        executor_cores=1,
        executor_memory_mb=512,
        driver_memory_mb=512,
        python=sys.executable,
        bind_host="127.0.0.1",
    )


def wait_state(backend, handle, states, timeout=150):
    deadline = time.monotonic() + timeout
    while True:
        st = backend.status(handle)
        if st.state in states:
            return st
        assert time.monotonic() < deadline, f"stuck in {st}; log tail:\n{tail(handle)}"
        time.sleep(0.5)


def tail(handle):
    log = Path(handle["run_dir"]) / "driver.log"
    return "\n".join(log.read_text(errors="replace").splitlines()[-30:]) if log.exists() else ""


def test_cli_foreground_stops_everything_on_sigterm(tmp_path):
    # First in the file, before the module cluster starts: two clusters at once would crowd 2 cores.
    argv = [sys.executable, "-m", "workers.localcluster", "start", "--state-dir", str(tmp_path / "fg")]
    argv += ["--master-port", "17277", "--webui-port", "18280", "--worker-memory", "512m", "--foreground"]
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = proc.stdout.readline()
        assert "Spark master spark://127.0.0.1:17277" in line, line + proc.stdout.read()
        fg = LocalCluster(tmp_path / "fg", master_port=17277, webui_port=18280)
        assert fg.alive_workers() == 2
        daemons = fg.daemons()
        assert len(daemons) == 3
        status = subprocess.run(
            [*argv[:3], "status", "--state-dir", str(tmp_path / "fg")],  # ports come from the state file
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        assert status.returncode == 0 and "2 worker(s) ALIVE" in status.stdout
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert not any(pid_alive(d["pid"]) or group_pids(d["pid"]) for d in daemons)
        assert not fg.is_running()
    finally:
        if proc.poll() is None:
            proc.kill()
            subprocess.run([*argv[:3], "stop", "--state-dir", str(tmp_path / "fg")], cwd=REPO)


def test_cluster_is_up(cluster):
    state = requests.get(f"{cluster.rest_url}/json/", timeout=5).json()
    assert [w["state"] for w in state["workers"]] == ["ALIVE", "ALIVE"]
    assert all(w["webuiaddress"].startswith("http://127.0.0.1:") for w in state["workers"])
    assert cluster.is_running()
    with pytest.raises(ClusterError, match="already running"):
        cluster.start()
    other = LocalCluster(cluster.state_dir / "other", master_port=MASTER_PORT, webui_port=UI_PORT)
    with pytest.raises(ClusterError, match="already in use"):
        other.start()


def test_tiny_app_succeeds_and_logs_are_collected(cluster, backend, tmp_path):
    run_dir = tmp_path / "ok"
    t0 = time.monotonic()
    handle = backend.submit(tiny_request(cluster, run_dir))
    json.dumps(handle)  # must be storable as-is
    st = wait_state(backend, handle, {"SUCCEEDED", "FAILED", "CANCELLED"})
    print(f"\ntiny app submit -> {st.state}: {time.monotonic() - t0:.1f} s")
    assert st.state == "SUCCEEDED", f"{st}\n{tail(handle)}"
    assert st.app_id and st.app_id.startswith("app-")
    assert json.loads((run_dir / "result.json").read_text())["sum"] == sum(range(100))

    files = backend.logs(handle)
    stderrs = [f for f in files if f.name == "stderr"]
    assert len(stderrs) == 2 and all(f.stat().st_size > 0 for f in stderrs)
    printed = "".join(f.read_text() for f in files).split()
    assert {str(i) for i in range(100)} <= set(printed)  # the map function's print() output
    sizes = {f: f.stat().st_size for f in files}
    backend.logs(handle)  # nothing new: nothing appended twice
    assert {f: f.stat().st_size for f in files} == sizes


def test_failing_app_reports_its_error(cluster, backend, tmp_path):
    handle = backend.submit(tiny_request(cluster, tmp_path / "bad", "--fail", "Dataset has a single class"))
    st = wait_state(backend, handle, {"SUCCEEDED", "FAILED", "CANCELLED"})
    assert st.state == "FAILED" and st.reason == "Dataset has a single class"


def test_cancel_a_running_app(cluster, backend, tmp_path):
    run_dir = tmp_path / "sleepy"
    handle = backend.submit(tiny_request(cluster, run_dir, "--sleep", "300"))
    st = wait_state(backend, handle, {"RUNNING", "FAILED"})
    assert st.state == "RUNNING", f"{st}\n{tail(handle)}"
    child = json.loads((run_dir / "launcher.json").read_text())["child_pid"]
    t0 = time.monotonic()
    backend.cancel(handle)
    assert time.monotonic() - t0 < 30
    assert (run_dir / "driver.rc").exists()
    assert not pid_alive(handle["launcher_pid"]) and not group_pids(child)
    assert backend.status(handle).state == "CANCELLED"
    state = requests.get(f"{cluster.rest_url}/json/", timeout=5).json()
    assert not state["activeapps"]
    assert {a["id"]: a["state"] for a in state["completedapps"]}[handle["app_id"]] == "KILLED"
