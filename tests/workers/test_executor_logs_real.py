"""Executor logs survive a Spark master crash: a real loopback cluster whose master is killed mid-run
and started again on its ports, without recovery mode (LocalCluster's default, and most clusters'),
so it knows neither the app nor the workers.

About a minute on 2 cores.
"""

import json
import os
import shutil
import sys
import time
from pathlib import Path

import pytest
import requests

from workers.backends.base import SubmitRequest
from workers.backends.standalone import StandaloneBackend
from workers.localcluster import LocalCluster, free_port, free_port_block, pid_alive

pytestmark = [
    pytest.mark.spark,
    pytest.mark.skipif(shutil.which("java") is None and not os.environ.get("JAVA_HOME"), reason="needs Java"),
]

CHATTY_APP = Path(__file__).resolve().parent / "apps" / "chatty_app.py"
TASK_SECONDS = 20  # the tasks end well before the workers' second retry (30-90 s after the crash)
MASTER_DOWN_SECONDS = 16  # past a worker's first retry (5-15 s after it lost the master)


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    # A worker that re-registers with a master which does not know the app is told to kill the app's
    # executors (Spark's own rule), and the app then waits for a master forever. With one quick retry
    # the workers' next try comes 30-90 s after the crash, after this app has ended: the case of a
    # master that was restarted but has not got its workers back yet.
    monkeypatch.setenv("SPARK_WORKER_OPTS", "-Dspark.worker.initialRegistrationRetries=1")
    c = LocalCluster(
        tmp_path / "spark", master_port=free_port(), webui_port=free_port_block(3), worker_memory="1g", recovery=False
    )
    c.start(timeout=90)
    yield c
    c.stop()


def copied(run_dir: Path) -> dict[str, int]:
    out = run_dir / "executors"
    return {f"{p.parent.name}/{p.name}": p.stat().st_size for p in sorted(out.glob("*/std*"))}


def printing(run_dir: Path) -> list[Path]:
    return [p for p in (run_dir / "executors").glob("*/stderr") if b"task " in p.read_bytes()]


def test_logs_are_complete_after_a_master_crash_and_restart(cluster, tmp_path):
    backend = StandaloneBackend(master_url=cluster.master_url, rest_url=cluster.rest_url, http_timeout=2)
    run_dir = tmp_path / "run"
    req = SubmitRequest(
        run_id=1,
        run_dir=run_dir,
        master_url=cluster.master_url,
        app_name="chatty",
        entry=str(CHATTY_APP),
        entry_args=[str(run_dir), "--seconds", str(TASK_SECONDS)],
        num_executors=2,
        executor_cores=1,
        executor_memory_mb=512,
        driver_memory_mb=512,
        python=sys.executable,
        bind_host="127.0.0.1",
    )
    marks = [("submit", time.monotonic())]
    handle = backend.submit(req)

    def tick():  # what the reconciler does for an active run
        st = backend.status(handle)
        backend.logs(handle)
        return st

    def wait(until, timeout, what):
        deadline = time.monotonic() + timeout
        while True:
            st = tick()
            if until(st):
                return st
            assert time.monotonic() < deadline and not st.is_final, f"{what}: {st}\n{driver_tail(run_dir)}"
            time.sleep(1)

    try:
        # Both tasks are printing and their logs are being copied.
        wait(lambda st: len(printing(run_dir)) == 2, 90, "executors printing")
        marks.append(("printing", time.monotonic()))
        cluster.stop_master()
        before = copied(run_dir)
        t0 = time.monotonic()
        while time.monotonic() - t0 < MASTER_DOWN_SECONDS:
            st = tick()
            time.sleep(1)
        during = copied(run_dir)
        # The driver's list (what the copier records sources from) names each executor's worker UI.
        listed = requests.get(f"{handle['ui_url']}/api/v1/applications/{handle['app_id']}/allexecutors", timeout=5)
        workers = {f"http://127.0.0.1:{p}" for p in cluster.worker_ui_ports}
        logs = [ex["executorLogs"]["stderr"] for ex in listed.json() if ex["id"] != "driver"]
        assert len(logs) == 2 and {u.split("/logPage/")[0] for u in logs} == workers, logs
        assert st.state == "RUNNING" and "not reachable" in (st.detail or "")
        # Copying goes on without the master: it goes to the workers recorded when first seen.
        assert sum(during.values()) > sum(before.values()), (before, during)
        marks.append(("master down", time.monotonic()))
        cluster.start_master()
        marks.append(("master up", time.monotonic()))
        st = wait(lambda st: st.is_final, 90, "app end")
        assert st.state == "SUCCEEDED", f"{st}\n{driver_tail(run_dir)}"
        master = requests.get(f"{cluster.rest_url}/json/", timeout=5).json()
        ended = copied(run_dir)

        marks.append(("app end", time.monotonic()))
        files = backend.logs(handle, final=True)
        marks.append(("final copy", time.monotonic()))
        steps = ", ".join(f"{name} {t - marks[i][1]:.1f} s" for i, (name, t) in enumerate(marks[1:]))
        print(f"\n{steps}")
        print(f"bytes copied: before the crash {before}, master down {during}, at the end {ended}")
        print(f"workers the restarted master listed at the end: {len(master['workers'])}")
    finally:
        if pid_alive(handle["launcher_pid"]):
            backend.cancel(handle)

    app_dirs = [wd / handle["app_id"] for wd in cluster.work_dirs]
    originals = {f"{p.parent.name}/{p.name}": p for d in app_dirs for p in sorted(d.glob("*/std*"))}
    sizes = {k: p.stat().st_size for k, p in originals.items()}
    print(f"after the final copy {copied(run_dir)}; workers' files {sizes}")
    assert len(originals) == 4  # 2 executors x stdout, stderr: none lost, none restarted
    assert {f"{p.parent.name}/{p.name}" for p in files} == set(originals)
    for key, original in originals.items():
        copy = run_dir / "executors" / key
        assert copy.read_bytes() == original.read_bytes(), f"{key}: {copy.stat().st_size} of {original.stat().st_size}"
    assert sum(p.stat().st_size for p in originals.values()) > 20_000
    status = json.loads((run_dir / "executors" / "status.json").read_text())
    assert {k: (v["complete"], v["final"]) for k, v in status.items()} == {k: (True, True) for k in originals}
    sources = json.loads((run_dir / "executors" / "sources.json").read_text())
    assert {s["ui"] for s in sources.values()} == workers


def driver_tail(run_dir: Path) -> str:
    log = run_dir / "driver.log"
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    return "\n".join(x for x in lines[-40:] if not x.lstrip().startswith("at "))
