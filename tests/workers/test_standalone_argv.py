"""spark-submit argv and env building for the standalone backend (no Spark needed)."""

import os

import pytest

from workers.backends.base import BackendError, SubmitRequest, get_backend, prepare_event_log_dir
from workers.backends.standalone import StandaloneBackend, check_capacity


def make_req(tmp_path, **kw):
    base = dict(
        run_id=7,
        run_dir=tmp_path / "run",
        master_url="spark://127.0.0.1:17177",
        app_name="sparkdeck-run-7",
        entry="/app/workers/jobs/driver.py",
        entry_args=["--spec", "/runs/7/spec.json"],
        py_files=["/app/jobs.zip", "/app/extra.py"],
        num_executors=2,
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


@pytest.fixture
def backend():
    return StandaloneBackend(master_url="spark://127.0.0.1:17177", spark_submit="/venv/bin/spark-submit")


def test_argv_is_a_list_of_strings(backend, tmp_path):
    argv = backend.build_argv(make_req(tmp_path))
    assert isinstance(argv, list) and all(isinstance(a, str) for a in argv)
    assert argv[0] == "/venv/bin/spark-submit"
    assert argv[argv.index("--master") + 1] == "spark://127.0.0.1:17177"
    assert argv[argv.index("--deploy-mode") + 1] == "client"
    assert argv[argv.index("--name") + 1] == "sparkdeck-run-7"
    assert argv[argv.index("--executor-cores") + 1] == "2"
    assert argv[argv.index("--executor-memory") + 1] == "1536m"
    assert argv[argv.index("--driver-memory") + 1] == "1024m"
    assert argv[argv.index("--py-files") + 1] == "/app/jobs.zip,/app/extra.py"
    assert argv[-3:] == ["/app/workers/jobs/driver.py", "--spec", "/runs/7/spec.json"]


def test_tfos_critical_confs(backend, tmp_path):
    c = confs(backend.build_argv(make_req(tmp_path)))
    assert c["spark.cores.max"] == "4"
    assert c["spark.executor.instances"] == "2"
    assert c["spark.task.cpus"] == "2"  # one task (one TF process) per executor
    assert c["spark.dynamicAllocation.enabled"] == "false"
    assert c["spark.pyspark.python"] == "/venv/bin/python"
    assert c["spark.pyspark.driver.python"] == "/venv/bin/python"
    assert c["spark.executorEnv.TF_USE_LEGACY_KERAS"] == "1"


def test_driver_jvm_starts_with_c1_unless_the_cluster_says_otherwise(backend, tmp_path):
    assert confs(backend.build_argv(make_req(tmp_path)))["spark.driver.extraJavaOptions"] == "-XX:TieredStopAtLevel=1"
    own = {"spark.driver.extraJavaOptions": "-Dlog4j2.level=warn"}
    c = confs(backend.build_argv(make_req(tmp_path, spark_conf=own)))
    assert c["spark.driver.extraJavaOptions"] == "-Dlog4j2.level=warn"


def test_class_archive_options_reach_the_driver_and_the_executors(backend, tmp_path):
    archives = {"driver": "-XX:SharedArchiveFile=/v/driver.jsa", "executor": "-XX:SharedArchiveFile=/v/executor.jsa"}
    c = confs(backend.build_argv(make_req(tmp_path, java_opts=archives)))
    assert c["spark.driver.extraJavaOptions"] == "-XX:TieredStopAtLevel=1 -XX:SharedArchiveFile=/v/driver.jsa"
    # Under a key of its own: the driver joins it with C1 (driver.apply_defaults).
    assert c["spark.sparkdeck.executorJavaOptions"] == "-XX:SharedArchiveFile=/v/executor.jsa"
    assert "spark.sparkdeck.executorJavaOptions" not in confs(backend.build_argv(make_req(tmp_path)))
    with pytest.raises(BackendError, match="managed by Sparkdeck"):
        backend.build_argv(make_req(tmp_path, spark_conf={"spark.sparkdeck.executorJavaOptions": "-Xmx1t"}))


def test_no_py_files_flag_when_none(backend, tmp_path):
    argv = backend.build_argv(make_req(tmp_path, py_files=[]))
    assert "--py-files" not in argv


def test_extra_conf_comes_last(backend, tmp_path):
    argv = backend.build_argv(make_req(tmp_path, spark_conf={"spark.network.timeout": "300s"}))
    conf_values = [argv[i + 1] for i, a in enumerate(argv) if a == "--conf"]
    assert conf_values[-1] == "spark.network.timeout=300s"


@pytest.mark.parametrize(
    "key",
    [
        "spark.task.cpus",
        "spark.cores.max",
        "spark.executor.instances",
        "spark.dynamicAllocation.enabled",
        "spark.pyspark.python",
        "spark.executorEnv.TF_USE_LEGACY_KERAS",
        "spark.executor.resource.gpu.amount",
        "spark.master",
        "spark.executor.memory",
    ],
)
def test_extra_conf_cannot_override_critical_keys(backend, tmp_path, key):
    with pytest.raises(BackendError, match=key.replace(".", r"\.")):
        backend.build_argv(make_req(tmp_path, spark_conf={key: "x"}))


def test_extra_conf_must_be_spark_keys(backend, tmp_path):
    with pytest.raises(BackendError, match="not a Spark setting"):
        backend.build_argv(make_req(tmp_path, spark_conf={"foo": "1"}))


def test_executor_env(backend, tmp_path):
    c = confs(backend.build_argv(make_req(tmp_path, executor_env={"SPARKDECK_RUN": "7"})))
    assert c["spark.executorEnv.SPARKDECK_RUN"] == "7"
    with pytest.raises(BackendError):
        backend.build_argv(make_req(tmp_path, executor_env={"TF_USE_LEGACY_KERAS": "0"}))


def test_gpu_confs(backend, tmp_path):
    c = confs(backend.build_argv(make_req(tmp_path)))
    assert "spark.executor.resource.gpu.amount" not in c and "spark.task.resource.gpu.amount" not in c
    c = confs(backend.build_argv(make_req(tmp_path, gpus_per_executor=1)))
    assert c["spark.executor.resource.gpu.amount"] == "1"
    assert c["spark.task.resource.gpu.amount"] == "1"


def test_bind_host(backend, tmp_path, monkeypatch):
    for var in ("SPARK_LOCAL_IP", "TFOS_SERVER_HOST", "SPARKDECK_BIND_HOST"):
        monkeypatch.delenv(var, raising=False)
    req = make_req(tmp_path)
    c = confs(backend.build_argv(req))
    assert not {"spark.driver.host", "spark.driver.bindAddress", "spark.executorEnv.SPARKDECK_BIND_HOST"} & set(c)
    env = backend.build_env(req)
    assert not {"SPARK_LOCAL_IP", "TFOS_SERVER_HOST", "SPARKDECK_BIND_HOST"} & set(env)

    req = make_req(tmp_path, bind_host="127.0.0.1")
    c = confs(backend.build_argv(req))
    assert c["spark.driver.host"] == c["spark.driver.bindAddress"] == "127.0.0.1"
    assert c["spark.executorEnv.SPARKDECK_BIND_HOST"] == "127.0.0.1"
    env = backend.build_env(req)
    assert env["SPARK_LOCAL_IP"] == env["TFOS_SERVER_HOST"] == env["SPARKDECK_BIND_HOST"] == "127.0.0.1"


def test_env(backend, tmp_path, monkeypatch):
    # The toolchain's variables reach spark-submit; the web app's secrets and anything unknown do not.
    monkeypatch.setenv("JAVA_HOME", "/opt/jdk")
    monkeypatch.setenv("HADOOP_CONF_DIR", "/etc/hadoop")
    secrets = {
        "DJANGO_SECRET_KEY": "s3cret",
        "DATABASE_URL": "postgres://u:pw@db/x",
        "CELERY_BROKER_URL": "redis://:pw@r/0",
        "EMAIL_HOST_PASSWORD": "mailpw",
        "SOME_INHERITED": "yes",
    }
    for key, value in secrets.items():
        monkeypatch.setenv(key, value)
    env = backend.build_env(make_req(tmp_path, env={"EXTRA": "1"}))
    assert env["TF_USE_LEGACY_KERAS"] == "1"
    assert env["PYSPARK_PYTHON"] == "/venv/bin/python"
    assert env["JAVA_HOME"] == "/opt/jdk" and env["HADOOP_CONF_DIR"] == "/etc/hadoop" and env["EXTRA"] == "1"
    assert env["PATH"] == os.environ["PATH"]
    assert not set(secrets) & set(env)
    assert not [v for v in env.values() if any(s in v for s in ("s3cret", ":pw@", "mailpw"))]
    with pytest.raises(BackendError):
        backend.build_env(make_req(tmp_path, env={"TF_USE_LEGACY_KERAS": "0"}))


@pytest.mark.parametrize("field", ["num_executors", "executor_cores", "executor_memory_mb", "driver_memory_mb"])
def test_rejects_nonpositive_sizes(backend, tmp_path, field):
    with pytest.raises(BackendError):
        backend.build_argv(make_req(tmp_path, **{field: 0}))


def test_default_spark_submit_exists(tmp_path):
    from pathlib import Path

    path = StandaloneBackend(master_url="spark://127.0.0.1:1").spark_submit_path()
    assert Path(path).name == "spark-submit" and Path(path).exists()


def test_get_backend():
    b = get_backend("standalone", master_url="spark://h:7077", rest_url="http://h:8080/", name="ignored")
    assert isinstance(b, StandaloneBackend) and b.rest_url == "http://h:8080"
    with pytest.raises(BackendError, match="not available"):
        get_backend("local")
    with pytest.raises(BackendError, match="ResourceManager web address"):
        get_backend("yarn")  # a YARN cluster needs its rest_url
    with pytest.raises(BackendError, match="Unknown"):
        get_backend("mesos")


def _worker(cores=1, memory=4096, gpus=0, state="ALIVE"):
    res = {"gpu": {"name": "gpu", "addresses": [str(i) for i in range(gpus)]}} if gpus else {}
    return {"state": state, "cores": cores, "memory": memory, "resources": res}


def test_check_capacity(tmp_path):
    req = make_req(tmp_path, num_executors=2, executor_cores=1, executor_memory_mb=1024)
    check_capacity({"workers": [_worker(), _worker()]}, req)
    check_capacity({"workers": [_worker(cores=2, memory=2048)]}, req)  # two executors on one worker
    with pytest.raises(BackendError, match="no live workers"):
        check_capacity({"workers": [_worker(state="DEAD")]}, req)
    with pytest.raises(BackendError, match="at most 1"):
        check_capacity({"workers": [_worker(), _worker(memory=512)]}, req)
    gpu_req = make_req(tmp_path, num_executors=2, executor_cores=1, executor_memory_mb=1024, gpus_per_executor=1)
    with pytest.raises(BackendError, match="GPU"):
        check_capacity({"workers": [_worker(), _worker()]}, gpu_req)
    check_capacity({"workers": [_worker(gpus=1), _worker(gpus=1)]}, gpu_req)


def test_event_logs_go_to_the_clusters_directory(backend, tmp_path):
    assert not any(k.startswith("spark.eventLog.") for k in confs(backend.build_argv(make_req(tmp_path))))
    c = confs(backend.build_argv(make_req(tmp_path, event_log_dir="hdfs://nn:8020/spark-logs")))
    assert (c["spark.eventLog.enabled"], c["spark.eventLog.dir"]) == ("true", "hdfs://nn:8020/spark-logs")
    yarn = get_backend("yarn", rest_url="http://rm:8088")  # the conf every backend builds
    c = confs(yarn.build_argv(make_req(tmp_path, master_url="", event_log_dir="/var/events")))
    assert (c["spark.eventLog.enabled"], c["spark.eventLog.dir"]) == ("true", "/var/events")


@pytest.mark.parametrize("form", ["{}", "file:{}", "file://{}"])
def test_a_missing_local_event_log_directory_is_made(tmp_path, form):
    target = tmp_path / "a" / "events"
    prepare_event_log_dir(form.format(target))
    assert target.is_dir()
    prepare_event_log_dir(form.format(target))  # already there: fine
    prepare_event_log_dir("hdfs://nn:8020/spark-logs")  # not ours to make (nor to check) here


def test_an_event_log_directory_that_cannot_be_made_fails_the_submission_clearly(backend, tmp_path):
    (tmp_path / "taken").write_text("a file, not a directory")
    req = make_req(tmp_path, event_log_dir=f"file:{tmp_path}/taken/events")
    with pytest.raises(BackendError, match=r"event log directory file:.*/taken/events could not be created"):
        backend._launch(req, ["/bin/true"], {})
    assert not req.run_dir.exists()  # refused before anything was launched
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(BackendError, match="not writable"):
            prepare_event_log_dir(str(locked))
