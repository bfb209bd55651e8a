"""`make run`'s stack for real, on its embedded default (SQLite, the server-less Celery transport): the
commands `make run` runs (migrate, seed_demo, run_stack) with ports of the test's own. A child killed
with SIGKILL is started again and the terminal says so while the rest keeps serving; the Spark History
Server answers on its port, reading the event log directory the seeded cluster's runs write to; SIGTERM
(`make stop`) then leaves no process behind."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from workers.localcluster import LocalCluster, free_port, free_port_block, group_pids, pid_alive

pytestmark = [pytest.mark.spark]

REPO = Path(__file__).resolve().parents[2]


def children_of(pid: int) -> dict[int, str]:
    """The direct children of `pid`: {pid: command line}."""
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
            cmd = Path(f"/proc/{entry.name}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found[int(entry.name)] = cmd
    return found


def wait_for(check, timeout, what, log: Path):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.25)
    pytest.fail(f"timed out waiting for {what}; stack output:\n{log.read_text(errors='replace')[-4000:]}")


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=3) as resp:
            return resp.status == 200
    except OSError:
        return False


def history_apps(port: int) -> bytes | None:
    """The History Server's application list (JSON), None while it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/applications", timeout=3) as resp:
            return resp.read() if resp.status == 200 else None
    except OSError:
        return None


def environ_of(pid: int) -> str:
    return Path(f"/proc/{pid}/environ").read_bytes().replace(b"\0", b" ").decode(errors="replace")


def test_make_run_restarts_a_killed_child_and_stops_clean(tmp_path):
    var = tmp_path / "var"
    # The embedded default: no DATABASE_URL, no CELERY_BROKER_URL.
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "JAVA_HOME", "TMPDIR")}
    env |= {"DJANGO_SECRET_KEY": "run-stack-test", "SPARKDECK_INSECURE_HTTP": "1", "SPARKDECK_VAR_DIR": str(var)}
    env["PYTHONUNBUFFERED"] = "1"  # its output is read as it comes
    port, master_port, webui_port, history_port = free_port(), free_port(), free_port_block(3), free_port()
    ports = ["--master-port", str(master_port), "--webui-port", str(webui_port), "--history-port", str(history_port)]
    manage = [sys.executable, str(REPO / "manage.py")]
    for argv in (["migrate", "--noinput", "-v", "0"], ["seed_demo", *ports]):
        subprocess.run([*manage, *argv], cwd=REPO, env=env, check=True, capture_output=True, timeout=300)
    out = tmp_path / "stack.out"
    with open(out, "wb") as sink:
        stack = subprocess.Popen(
            [*manage, "run_stack", "--port", str(port), *ports, "--worker-memory", "1g"],
            cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    cluster = LocalCluster(var / "spark", master_port=master_port, webui_port=webui_port)
    try:
        wait_for(lambda: "Sparkdeck is running" in out.read_text(errors="replace"), 180, "the stack", out)
        wait_for(lambda: healthy(port), 60, "the web server", out)
        daemons = {d["pid"] for d in cluster.daemons()}  # the Spark master and workers
        kids = {p: cmd for p, cmd in children_of(stack.pid).items() if p not in daemons}
        worker = [p for p, cmd in kids.items() if " worker " in cmd and "control@" in cmd]
        web = [p for p, cmd in kids.items() if "gunicorn" in cmd]
        history = [p for p, cmd in kids.items() if "org.apache.spark.deploy.history.HistoryServer" in cmd]
        # History Server, worker, ingest worker, beat, web
        assert len(daemons) == 3 and len(kids) == 5 and len(worker) == 1 and len(web) == 1, kids
        assert len(history) == 1, kids
        # It serves the directory that seed_demo gave the local cluster (its runs write event logs there).
        apps = wait_for(lambda: history_apps(history_port), 90, "the History Server", out)
        assert json.loads(apps) == []
        with sqlite3.connect(var / "sparkdeck.sqlite3") as db:
            row = db.execute("select event_log_dir, history_url from clusters_cluster where name='local'").fetchone()
        assert row == (str(var / "spark-events"), f"http://127.0.0.1:{history_port}")
        assert (var / "spark-events").is_dir()
        assert f"-Dspark.history.fs.logDirectory=file://{var / 'spark-events'}" in environ_of(history[0])
        worker_log = var / "logs" / "worker.log"
        wait_for(lambda: "ready." in worker_log.read_text(errors="replace"), 60, "the worker", out)

        os.killpg(worker[0], signal.SIGKILL)
        said = wait_for(lambda: "worker restarted (pid" in (t := out.read_text(errors="replace")) and t, 30,
                        "the restart", out)  # fmt: skip
        assert f"worker exited with code {-signal.SIGKILL}; restarting it in 1 s (1 of 5)" in said
        new = [p for p, cmd in children_of(stack.pid).items() if " worker " in cmd and "control@" in cmd]
        assert len(new) == 1 and new[0] != worker[0] and not group_pids(worker[0]), new
        wait_for(lambda: worker_log.read_text(errors="replace").count("ready.") == 2, 60, "the new worker", out)
        # The others were not touched, and the stack is still up.
        assert pid_alive(web[0]) and pid_alive(history[0]) and healthy(port) and stack.poll() is None
        assert len(cluster.daemons()) == 3

        started = list(children_of(stack.pid))
        stack.send_signal(signal.SIGTERM)
        assert stack.wait(90) == 0
        assert "stopped." in out.read_text(errors="replace")
        assert [p for p in started if group_pids(p)] == [] and cluster.daemons() == []
        assert history[0] in started and not history_apps(history_port)
    finally:
        if stack.poll() is None:
            stack.send_signal(signal.SIGTERM)
            stack.wait(90)
        cluster.stop()
