"""YarnBackend: argv building, and status/cancel/submit/logs against recorded ResourceManager responses.

No YARN here: a small HTTP server replays the JSON files in yarn_recordings/ (hand-written after the
Hadoop 3 ResourceManager REST API) and records PUT bodies; spark-submit and yarn are fake scripts.
"""

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from tests.workers.launchers import start_launcher
from workers.backends.base import BackendError, ClusterUnreachable, SubmitRequest, get_backend
from workers.backends.yarn import YarnBackend, map_app
from workers.localcluster import pid_alive

REPO = Path(__file__).resolve().parents[2]
RECORDINGS = Path(__file__).parent / "yarn_recordings"
APP = "application_1700000000000_0001"


# -- argv ----------------------------------------------------------------------------------------


def make_req(tmp_path, **kw):
    base = dict(
        run_id=7,
        run_dir=tmp_path / "run",
        master_url="yarn",
        app_name="sparkdeck-run-7",
        entry="/app/workers/jobs/driver.py",
        entry_args=["--spec", "/runs/7/spec.json"],
        py_files=["/app/jobs.zip", "/app/extra.py"],
        num_executors=3,
        executor_cores=2,
        executor_memory_mb=1536,
        driver_memory_mb=1024,
        python="/venv/bin/python",
    )
    base.update(kw)
    return SubmitRequest(**base)


def confs(argv):
    out = {}
    for i, a in enumerate(argv):
        if a == "--conf":
            key, _, value = argv[i + 1].partition("=")
            assert key not in out, f"{key} passed twice"
            out[key] = value
    return out


def flag(argv, name):
    return argv[argv.index(name) + 1]


def yarn(**kw):
    kw.setdefault("spark_submit", "/opt/spark/bin/spark-submit")
    return YarnBackend("http://rm:8088", **kw)


def test_client_mode_argv(tmp_path):
    argv = yarn(queue="ml").build_argv(make_req(tmp_path))
    assert isinstance(argv, list) and all(isinstance(a, str) for a in argv)
    assert argv[0] == "/opt/spark/bin/spark-submit"
    assert flag(argv, "--master") == "yarn" and flag(argv, "--deploy-mode") == "client"
    assert flag(argv, "--name") == "sparkdeck-run-7" and flag(argv, "--queue") == "ml"
    assert flag(argv, "--num-executors") == "3" and flag(argv, "--executor-cores") == "2"
    assert flag(argv, "--executor-memory") == "1536m" and flag(argv, "--driver-memory") == "1024m"
    assert flag(argv, "--py-files") == "/app/jobs.zip,/app/extra.py"
    assert "--archives" not in argv
    assert argv[-3:] == ["/app/workers/jobs/driver.py", "--spec", "/runs/7/spec.json"]
    c = confs(argv)
    assert c["spark.dynamicAllocation.enabled"] == "false"
    assert c["spark.executor.instances"] == "3"
    assert c["spark.task.cpus"] == "2"  # one task, one TF process, per executor
    assert c["spark.executorEnv.TF_USE_LEGACY_KERAS"] == "1"
    assert c["spark.pyspark.python"] == c["spark.pyspark.driver.python"] == "/venv/bin/python"
    assert c["spark.yarn.maxAppAttempts"] == "1"
    assert c["spark.driver.extraJavaOptions"] == "-XX:TieredStopAtLevel=1"  # workers/jobs/jvm_opts.py
    assert not [k for k in c if k.startswith("spark.yarn.appMasterEnv.")]
    assert not [k for k in c if "gpu" in k]


def test_cluster_mode_argv(tmp_path, monkeypatch):
    monkeypatch.delenv("SPARK_LOCAL_IP", raising=False)
    req = make_req(tmp_path, env={"SPARKDECK_RUN": "7"}, executor_env={"SPARKDECK_RUN": "7"}, bind_host="127.0.0.1")
    argv = yarn(deploy_mode="cluster").build_argv(req)
    assert flag(argv, "--deploy-mode") == "cluster" and flag(argv, "--queue") == "default"
    c = confs(argv)
    assert c["spark.yarn.appMasterEnv.TF_USE_LEGACY_KERAS"] == "1"
    assert c["spark.yarn.appMasterEnv.PYSPARK_PYTHON"] == "/venv/bin/python"
    assert c["spark.yarn.appMasterEnv.SPARKDECK_RUN"] == "7"  # the driver does not inherit spark-submit's env
    assert c["spark.executorEnv.SPARKDECK_RUN"] == "7"
    assert c["spark.yarn.submit.waitAppCompletion"] == "true"
    # the driver runs in the AM container: nothing binds to the worker host's loopback
    assert "spark.driver.host" not in c and "spark.driver.bindAddress" not in c
    assert "SPARK_LOCAL_IP" not in yarn(deploy_mode="cluster").build_env(req)


def test_client_mode_bind_host_is_for_the_driver_only(tmp_path):
    c = confs(yarn().build_argv(make_req(tmp_path, bind_host="10.0.0.5")))
    assert c["spark.driver.host"] == c["spark.driver.bindAddress"] == "10.0.0.5"
    assert "spark.executorEnv.SPARKDECK_BIND_HOST" not in c  # executors bind on their NodeManager


def test_archives_and_python_alias(tmp_path):
    archives = ("hdfs:///envs/venv.tar.gz#venv", "hdfs:///data/extra.zip#extra")
    argv = yarn(archives=archives, python_archive_alias="venv").build_argv(make_req(tmp_path))
    assert flag(argv, "--archives") == "hdfs:///envs/venv.tar.gz#venv,hdfs:///data/extra.zip#extra"
    c = confs(argv)
    assert c["spark.pyspark.python"] == "./venv/bin/python"
    assert c["spark.pyspark.driver.python"] == "/venv/bin/python"  # client mode: the driver runs here

    c = confs(
        yarn(deploy_mode="cluster", archives=archives, python_archive_alias="venv").build_argv(make_req(tmp_path))
    )
    assert c["spark.pyspark.python"] == c["spark.pyspark.driver.python"] == "./venv/bin/python"
    assert c["spark.yarn.appMasterEnv.PYSPARK_PYTHON"] == "./venv/bin/python"

    with pytest.raises(BackendError, match="names no archive"):
        yarn(archives=archives, python_archive_alias="conda").build_argv(make_req(tmp_path))
    c = confs(yarn(archives=archives).build_argv(make_req(tmp_path)))  # archives without alias: req.python
    assert c["spark.pyspark.python"] == "/venv/bin/python"


def test_gpu_confs(tmp_path, monkeypatch):
    monkeypatch.delenv("SPARKDECK_YARN_GPU_DISCOVERY_SCRIPT", raising=False)
    b = yarn(gpu_discovery_script="/opt/spark/getGpusResources.sh")
    c = confs(b.build_argv(make_req(tmp_path, gpus_per_executor=2)))
    assert c["spark.executor.resource.gpu.amount"] == "2"
    assert c["spark.task.resource.gpu.amount"] == "2"
    assert c["spark.executor.resource.gpu.discoveryScript"] == "/opt/spark/getGpusResources.sh"
    assert "spark.yarn.executor.resource.yarn.io/gpu.amount" not in c  # Spark maps gpu -> yarn.io/gpu itself

    with pytest.raises(BackendError, match="discovery script"):
        yarn().build_argv(make_req(tmp_path, gpus_per_executor=1))
    script = {"spark.executor.resource.gpu.discoveryScript": "/x/gpus.sh"}
    c = confs(yarn().build_argv(make_req(tmp_path, gpus_per_executor=1, spark_conf=script)))
    assert c["spark.executor.resource.gpu.discoveryScript"] == "/x/gpus.sh"
    monkeypatch.setenv("SPARKDECK_YARN_GPU_DISCOVERY_SCRIPT", "/env/gpus.sh")
    c = confs(yarn().build_argv(make_req(tmp_path, gpus_per_executor=1)))
    assert c["spark.executor.resource.gpu.discoveryScript"] == "/env/gpus.sh"


@pytest.mark.parametrize(
    "key",
    [
        "spark.dynamicAllocation.enabled",
        "spark.task.cpus",
        "spark.executor.instances",
        "spark.executor.cores",
        "spark.executor.resource.gpu.amount",
        "spark.yarn.queue",
        "spark.yarn.dist.archives",
        "spark.yarn.appMasterEnv.TF_USE_LEGACY_KERAS",
        "spark.yarn.appMasterEnv.ANYTHING",
        "spark.yarn.executor.resource.yarn.io/gpu.amount",
        "spark.pyspark.python",
    ],
)
def test_reserved_conf_refused(tmp_path, key):
    with pytest.raises(BackendError, match=key.replace(".", r"\.")):
        yarn().build_argv(make_req(tmp_path, spark_conf={key: "x"}))


def test_extra_conf(tmp_path):
    argv = yarn().build_argv(
        make_req(tmp_path, spark_conf={"spark.network.timeout": "300s", "spark.yarn.maxAppAttempts": "2"})
    )
    assert confs(argv)["spark.yarn.maxAppAttempts"] == "2"  # a default, not a reserved key
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "--conf"][-1] == "spark.network.timeout=300s"
    with pytest.raises(BackendError, match="not a Spark setting"):
        yarn().build_argv(make_req(tmp_path, spark_conf={"foo": "1"}))
    with pytest.raises(BackendError):
        yarn().build_argv(make_req(tmp_path, executor_env={"TF_USE_LEGACY_KERAS": "0"}))
    with pytest.raises(BackendError):
        yarn().build_argv(make_req(tmp_path, num_executors=0))


def test_spark_home_and_get_backend(tmp_path):
    b = YarnBackend("http://rm:8088", spark_home="/opt/spark-4")
    assert b.build_argv(make_req(tmp_path))[0] == "/opt/spark-4/bin/spark-submit"
    assert b.build_env(make_req(tmp_path))["SPARK_HOME"] == "/opt/spark-4"
    with pytest.raises(BackendError, match="deploy_mode"):
        YarnBackend("http://rm:8088", deploy_mode="local")

    b = get_backend("yarn", rest_url="http://rm:8088/")  # what the web app passes
    assert isinstance(b, YarnBackend) and b.kind == "yarn"
    assert b.rest_url == "http://rm:8088" and b.queue == "default" and b.deploy_mode == "client"
    assert b.build_argv(make_req(tmp_path))[0].endswith("spark-submit")
    with pytest.raises(BackendError, match="rest_url"):
        get_backend("yarn", rest_url="")
    with pytest.raises(BackendError, match="not available"):
        get_backend("local")


# -- recorded ResourceManager --------------------------------------------------------------------


def recording(name, app_id=APP):
    return (RECORDINGS / name).read_text().replace("application_1700000000000_0001", app_id)


class FakeRM:
    """Replays yarn_recordings/: /ws/v1/cluster/info, /ws/v1/cluster/apps/{id}, PUT .../state."""

    def __init__(self):
        self.apps = {}  # app id -> recording file name
        self.puts = []
        self.kill_reply = (202, "app_state_kill_accepted.json")
        self.info = (200, "cluster_info.json")
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _send(self, code, body):
                data = body.encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                parts = urlparse(self.path).path.rstrip("/").split("/")
                if parts[1:] == ["ws", "v1", "cluster", "info"]:
                    self._send(fake.info[0], recording(fake.info[1]))
                elif parts[1:5] == ["ws", "v1", "cluster", "apps"] and len(parts) == 6:
                    name = fake.apps.get(parts[5])
                    if name:
                        self._send(200, recording(name, parts[5]))
                    else:
                        self._send(404, recording("app_not_found.json", parts[5]))
                else:
                    self._send(404, "{}")

            def do_PUT(self):
                url = urlparse(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                fake.puts.append(
                    {
                        "path": url.path,
                        "query": {k: v[0] for k, v in parse_qs(url.query).items()},
                        "content_type": self.headers.get("Content-Type"),
                        "body": json.loads(body),
                    }
                )
                self._send(fake.kill_reply[0], recording(fake.kill_reply[1]))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def rm():
    f = FakeRM()
    yield f
    f.server.shutdown()
    f.server.server_close()


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def backend_for(url, **kw):
    return YarnBackend(url, timeout=2, cancel_grace=3, spark_submit="/nonexistent/spark-submit", **kw)


def fake_run(tmp_path, url, rc=None, log="", result=False, pid=999_999_999, mode="client"):
    run_dir = tmp_path / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "driver.log").write_text(log)
    if rc is not None:
        (run_dir / "driver.rc").write_text(f"{rc}\n")
    if result:
        (run_dir / "result.json").write_text('{"test_accuracy": 0.9}')
    return {"backend": "yarn", "run_dir": str(run_dir), "launcher_pid": pid, "rest_url": url, "deploy_mode": mode}


SUBMITTED_LINE = f"23/11/16 00:01:40 INFO Client: Submitted application {APP}\n"


@pytest.mark.parametrize(
    "name, state, reason",
    [
        ("app_accepted.json", "SUBMITTED", None),
        ("app_running.json", "RUNNING", None),
        ("app_succeeded.json", "SUCCEEDED", None),
        ("app_failed.json", "FAILED", "User application exited with status 1"),
        ("app_am_failed.json", "FAILED", "Application application_1700000000000_0001 failed 1 times"),
        ("app_killed.json", "CANCELLED", "was killed by user sparkdeck"),
    ],
)
def test_cluster_mode_follows_the_rm(tmp_path, rm, name, state, reason):
    rm.apps[APP] = name
    handle = fake_run(tmp_path, rm.url, log=SUBMITTED_LINE, mode="cluster")
    st = backend_for(rm.url, deploy_mode="cluster").status(handle)
    assert st.state == state and st.app_id == APP and handle["app_id"] == APP
    assert handle["last_state"] == state
    if reason:
        assert reason in st.reason
    if name != "app_accepted.json":
        assert st.ui_url == json.loads(recording(name))["app"]["trackingUrl"] == handle["ui_url"]
    else:
        assert st.ui_url is None and "ACCEPTED" in st.detail


def test_map_app_all_states():
    def m(state, final="UNDEFINED", **kw):
        return map_app({"state": state, "finalStatus": final, **kw}).state

    assert [m(s) for s in ("NEW", "NEW_SAVING", "SUBMITTED", "ACCEPTED")] == ["SUBMITTED"] * 4
    assert m("RUNNING") == "RUNNING"
    assert m("FINISHED", "SUCCEEDED") == "SUCCEEDED"
    assert m("FINISHED", "FAILED") == m("FAILED", "FAILED") == "FAILED"
    assert m("KILLED", "KILLED") == "CANCELLED"
    assert map_app({"state": "FAILED", "finalStatus": "FAILED"}).reason == "application failed with final status FAILED"


def test_cluster_mode_unknown_app_id(tmp_path, rm):
    handle = fake_run(tmp_path, rm.url, rc=1, log=SUBMITTED_LINE, mode="cluster")
    st = backend_for(rm.url, deploy_mode="cluster").status(handle)
    assert st.state == "FAILED" and f"does not know application {APP}" in st.reason


def test_cluster_mode_rm_blip(tmp_path, rm):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    proc = start_launcher(run_dir)
    try:
        (run_dir / "driver.log").write_text(SUBMITTED_LINE)
        rm.apps[APP] = "app_running.json"
        b = backend_for(rm.url, deploy_mode="cluster")
        handle = {"run_dir": str(run_dir), "launcher_pid": proc.pid, "rest_url": rm.url, "deploy_mode": "cluster"}
        assert b.status(handle).state == "RUNNING"
        handle["rest_url"] = f"http://127.0.0.1:{closed_port()}"
        st = b.status(handle)
        assert st.state == "RUNNING" and "not reachable" in st.detail
    finally:
        proc.kill()
        proc.wait()
    # spark-submit's client gone and the RM unreachable: fall back on its exit code
    (run_dir / "driver.rc").write_text("0\n")
    assert b.status(handle).state == "SUCCEEDED"


def test_client_mode_running_blip_404_and_cancel(tmp_path, rm):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    proc = start_launcher(run_dir)
    b = backend_for(rm.url, rm_user="sparkdeck")
    handle = {"backend": "yarn", "run_dir": str(run_dir), "launcher_pid": proc.pid, "rest_url": rm.url}
    try:
        assert b.status(handle).state == "SUBMITTED"  # no app id printed yet

        with open(run_dir / "driver.log", "a") as f:
            f.write(f"noise SPARKDECK_APP_ID={APP}\n")
        rm.apps[APP] = "app_accepted.json"
        st = b.status(handle)
        assert st.state == "SUBMITTED" and "ACCEPTED" in st.detail

        rm.apps[APP] = "app_running.json"
        st = b.status(handle)
        assert st.state == "RUNNING" and st.ui_url == f"http://rm:8088/proxy/{APP}/"

        handle["rest_url"] = f"http://127.0.0.1:{closed_port()}"  # one network blip: keep the last state
        st = b.status(handle)
        assert st.state == "RUNNING" and "not reachable" in st.detail and st.ui_url.startswith("http://rm:8088")
        handle["rest_url"] = rm.url

        del rm.apps[APP]  # the RM forgot the app while our driver still runs: keep going, say why
        st = b.status(handle)
        assert st.state == "RUNNING" and f"does not know application {APP}" in st.detail

        rm.apps[APP] = "app_failed.json"  # client mode: the driver's exit decides, not the RM
        st = b.status(handle)
        assert st.state == "RUNNING" and "shutting down" in st.detail

        b.cancel(handle)
        assert rm.puts == [
            {
                "path": f"/ws/v1/cluster/apps/{APP}/state",
                "query": {"user.name": "sparkdeck"},
                "content_type": "application/json",
                "body": {"state": "KILLED"},
            }
        ]
        assert proc.wait(timeout=10) != 0
        child = json.loads((run_dir / "launcher.json").read_text())["child_pid"]
        assert not pid_alive(child)
        rm.apps[APP] = "app_killed.json"
        st = b.status(handle)
        assert st.state == "CANCELLED" and st.is_final

        rm.kill_reply = (200, "app_state_killed.json")
        b.cancel(handle)  # idempotent: finished app, dead driver
        assert len(rm.puts) == 2
    finally:
        if proc.poll() is None:
            proc.kill()


def test_cancel_cluster_mode(tmp_path, rm):
    rm.apps[APP] = "app_running.json"
    handle = fake_run(tmp_path, rm.url, log=SUBMITTED_LINE, mode="cluster")
    b = backend_for(rm.url, deploy_mode="cluster")
    b.cancel(handle, reason="Cancelled by bob.")
    assert rm.puts[0]["path"] == f"/ws/v1/cluster/apps/{APP}/state" and rm.puts[0]["body"] == {"state": "KILLED"}
    rm.apps[APP] = "app_killed.json"
    st = b.status(handle)
    assert (st.state, st.reason) == ("CANCELLED", "Cancelled by bob.")

    # RM unreachable in cluster mode: the app would live on, so the cancel must not pretend it worked
    handle = fake_run(tmp_path / "b", f"http://127.0.0.1:{closed_port()}", log=SUBMITTED_LINE, mode="cluster")
    with pytest.raises(ClusterUnreachable, match="kill"):
        b.cancel(handle)
    assert not (Path(handle["run_dir"]) / "cancelled.json").exists()


def test_client_mode_driver_exit_decides(tmp_path, rm):
    rm.apps[APP] = "app_failed.json"  # e.g. the AM reports failure after the driver disconnected
    log = f"SPARKDECK_APP_ID={APP}\nSPARKDECK_RESULT={{}}\n"
    st = backend_for(rm.url).status(fake_run(tmp_path, rm.url, rc=0, log=log, result=True))
    assert st.state == "SUCCEEDED" and st.app_id == APP

    log = f"SPARKDECK_APP_ID={APP}\nTraceback (most recent call last):\nValueError: x\n"
    log += "SPARKDECK_ERROR=Dataset has 1 class\n"
    st = backend_for(rm.url).status(fake_run(tmp_path / "b", rm.url, rc=1, log=log))
    assert st.state == "FAILED" and st.reason == "Dataset has 1 class"

    rm.apps[APP] = "app_killed.json"  # killed on YARN by someone else
    st = backend_for(rm.url).status(fake_run(tmp_path / "c", rm.url, rc=1, log=log))
    assert st.state == "CANCELLED" and "killed by user" in st.reason

    st = backend_for(rm.url).status(fake_run(tmp_path / "d", rm.url, rc=0, log=log))
    assert st.state == "FAILED" and "result.json" in st.reason
    st = backend_for(rm.url).status(fake_run(tmp_path / "e", rm.url, log=""))
    assert st.state == "FAILED" and st.reason == "driver process vanished"


# -- submit --------------------------------------------------------------------------------------


def req_for(tmp_path):
    return SubmitRequest(run_id=1, run_dir=tmp_path / "run", master_url="", app_name="x", entry="/dev/null")


def test_submit_to_unreachable_rm(tmp_path, monkeypatch):
    monkeypatch.setenv("HADOOP_CONF_DIR", str(tmp_path))
    url = f"http://127.0.0.1:{closed_port()}"
    t0 = time.monotonic()
    with pytest.raises(ClusterUnreachable, match=f"ResourceManager at {url} is not reachable"):
        backend_for(url).submit(req_for(tmp_path))
    assert time.monotonic() - t0 < 5
    assert not (tmp_path / "run" / "launcher.json").exists()


def test_submit_to_something_else(tmp_path, rm, monkeypatch):
    monkeypatch.setenv("HADOOP_CONF_DIR", str(tmp_path))
    rm.info = (404, "app_not_found.json")
    with pytest.raises(ClusterUnreachable, match="did not answer like a YARN ResourceManager"):
        backend_for(rm.url).submit(req_for(tmp_path))


def test_submit_needs_hadoop_conf(tmp_path, rm, monkeypatch):
    monkeypatch.delenv("HADOOP_CONF_DIR", raising=False)
    monkeypatch.delenv("YARN_CONF_DIR", raising=False)
    with pytest.raises(BackendError, match="HADOOP_CONF_DIR"):
        backend_for(rm.url).submit(req_for(tmp_path))


def test_submit_with_fake_spark_submit(tmp_path, rm, monkeypatch):
    monkeypatch.setenv("HADOOP_CONF_DIR", str(tmp_path))
    fake = tmp_path / "spark-submit"
    fake.write_text(
        "#!/bin/sh\n"
        'echo "args: $*"\n'
        f"echo SPARKDECK_APP_ID={APP}\n"
        "echo '{\"test_accuracy\": 0.9}' > result.json\n"  # the launcher runs it in the run dir
        "exit 0\n"
    )
    fake.chmod(0o755)
    rm.apps[APP] = "app_succeeded.json"
    b = YarnBackend(rm.url, queue="ml", spark_submit=str(fake), timeout=2)
    handle = b.submit(req_for(tmp_path))
    assert handle["backend"] == "yarn" and handle["rest_url"] == rm.url and handle["launcher_pid"] > 0
    run_dir = Path(handle["run_dir"])
    assert json.loads(json.dumps(handle)) == handle
    deadline = time.monotonic() + 15
    while not (run_dir / "driver.rc").exists():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    st = b.status(handle)
    assert st.state == "SUCCEEDED" and st.app_id == APP and st.ui_url == f"http://rm:8088/proxy/{APP}/"
    log = (run_dir / "driver.log").read_text()
    assert "--master yarn --deploy-mode client --name x --queue ml" in log


# -- logs ----------------------------------------------------------------------------------------


def test_logs_without_yarn_binary(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    handle = fake_run(tmp_path, "http://rm:8088", rc=0, log=f"SPARKDECK_APP_ID={APP}\n")
    handle["last_state"] = "SUCCEEDED"
    assert backend_for("http://rm:8088").logs(handle) == []


def test_logs_with_yarn_binary(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "yarn").write_text('#!/bin/sh\necho "Container: container_1 on nm1:45454"\necho "args: $*"\n')
    (bindir / "yarn").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:/usr/bin:/bin")
    handle = fake_run(tmp_path, "http://rm:8088", log=f"SPARKDECK_APP_ID={APP}\n")
    b = backend_for("http://rm:8088")
    handle["last_state"] = "RUNNING"
    assert b.logs(handle) == []  # aggregation only happens once the app is finished
    handle["last_state"] = "FAILED"
    files = b.logs(handle)
    dest = Path(handle["run_dir"]) / "executors" / "yarn-aggregated.log"
    assert files == [dest]
    assert f"args: logs -applicationId {APP}" in dest.read_text()
    assert b.logs(handle) == [dest]  # copied once
