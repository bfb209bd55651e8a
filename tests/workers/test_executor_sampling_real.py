"""Executor sampling against a real Spark application's REST API: a loopback cluster (2 workers x 1
core), an application whose two tasks each hold a core for ~8 s, sampled through the Django-free
fetch (webapp/monitoring/services.fetch_executors) and through the periodic task's path
(sample_running -> ExecutorSample rows -> series)."""

import json
import os
import shutil
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from webapp.monitoring import services
from workers.localcluster import LocalCluster, free_port, free_port_block, spark_home

pytestmark = [
    pytest.mark.spark,
    pytest.mark.skipif(shutil.which("java") is None and not os.environ.get("JAVA_HOME"), reason="needs Java"),
]

# The application: settings as the driver sets them (processTreeMetrics: the Python workers' RSS),
# a 2 s heartbeat so the live metrics arrive within the test's few seconds.
APP = r"""
import sys, time
from pyspark import SparkConf, SparkContext
master, ui_port = sys.argv[1], sys.argv[2]
conf = (SparkConf().setMaster(master).setAppName("sparkdeck-sampling")
        .set("spark.driver.host", "127.0.0.1").set("spark.driver.bindAddress", "127.0.0.1")
        .set("spark.ui.port", ui_port).set("spark.port.maxRetries", "0")
        .set("spark.executor.memory", "512m").set("spark.cores.max", "2")
        .set("spark.executor.processTreeMetrics.enabled", "true")
        .set("spark.executor.heartbeatInterval", "2s"))
sc = SparkContext(conf=conf)
print(f"SPARKDECK_APP_ID={sc.applicationId}", flush=True)
print(f"SPARKDECK_UI_URL={sc.uiWebUrl}", flush=True)
def hold(_):
    import time
    block = bytearray(150 * 2**20)  # Python worker memory the RSS metric should see
    time.sleep(8)
    return [len(block)]
while sc._jsc.sc().getExecutorMemoryStatus().size() < 3:  # the driver + 2 executors
    time.sleep(0.2)
sc.parallelize([0, 1], 2).mapPartitions(hold).collect()
print("JOB_DONE", flush=True)
sys.stdin.readline()  # keep the UI up until the test has read the final numbers
sc.stop()
"""


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    lc = LocalCluster(
        tmp_path_factory.mktemp("sampling"),
        master_port=free_port(),
        webui_port=free_port_block(3),
        workers=2,
        worker_cores=1,
        worker_memory="1g",
    )
    try:
        lc.start(timeout=90)
        yield lc
    finally:
        lc.stop()


def read_key(proc, key, deadline):
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if line.startswith(f"{key}="):
            return line.strip().split("=", 1)[1]
        if line.strip() == key:
            return key
    raise AssertionError(f"the application never printed {key}")


@pytest.mark.django_db
def test_sampling_a_real_application(two_workers, tmp_path, alice, cluster):
    from webapp.datasets.models import Dataset
    from webapp.monitoring.models import ExecutorSample
    from webapp.runs.models import Run

    env = {
        **os.environ,
        "SPARK_HOME": str(spark_home()),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": sys.executable,
    }
    env.pop("SPARK_CONF_DIR", None)
    argv = [sys.executable, "-c", APP, two_workers.master_url, str(free_port())]
    proc = subprocess.Popen(argv, env=env, cwd=tmp_path, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    t0 = time.monotonic()
    try:
        deadline = t0 + 90
        app_id = read_key(proc, "SPARKDECK_APP_ID", deadline)
        ui = read_key(proc, "SPARKDECK_UI_URL", deadline)
        url = services.executors_url(ui, app_id)
        assert url == f"{ui}/api/v1/applications/{app_id}/executors"

        # While the tasks run: both executors busy, heartbeat metrics (GC time, Python RSS) live.
        during = None
        while time.monotonic() < deadline:
            try:
                entries = {e["id"]: e for e in services.fetch_executors(url, timeout=10)}
            except services.FetchError:
                entries = {}  # the UI's REST servlet starts on its first request
            busy = [e for k, e in entries.items() if k != "driver" and e["activeTasks"] == 1]
            # ... once a heartbeat after the tasks' 150 MB allocation has arrived
            if len(busy) == 2 and all(
                (e.get("peakMemoryMetrics") or {}).get("ProcessTreePythonRSSMemory", 0) > 150 * 2**20 for e in busy
            ):
                during = entries
                break
            time.sleep(0.5)
        assert during, "never saw both executors running a task with their Python workers' memory"
        fields = {k: services.sample_fields(e) for k, e in during.items()}
        assert set(fields) == {"driver", "0", "1"} and fields["driver"]["is_driver"]
        for k in ("0", "1"):
            f = fields[k]
            assert (f["total_cores"], f["max_tasks"], f["active_tasks"]) == (1, 1, 1)
            assert f["total_duration_ms"] == 0  # task time only counts once a task ends
            assert f["jvm_gc_time_ms"] is not None and f["peak_jvm_heap"] > 0 and f["max_memory"] > 0
            assert f["raw"]["ProcessTreePythonRSSMemory"] > 150 * 2**20  # the task's 150 MB block, as a column's input

        # The periodic task's path: a RUNNING run pointing at this UI gets rows, then a series.
        dataset = Dataset.objects.create(team=alice[1], name="d", source_format="npz", original_name="d.npz")
        run = Run.objects.create(
            team=alice[1], dataset=dataset, template="cnn", cluster=cluster, status=Run.Status.RUNNING,
            spark_ui_url=ui, spark_app_id=app_id,
        )  # fmt: skip
        assert services.sample_running() == 3
        read_key(proc, "JOB_DONE", t0 + 120)
        time.sleep(1)
        ExecutorSample.objects.filter(run=run).update(sampled_at=timezone.now() - timedelta(seconds=5))
        assert services.sample_running() == 3
        data = services.series(run)
        execs = {e["id"]: e for e in data["executors"]}
        for k in ("0", "1"):
            assert execs[k]["latest"]["task_time_s"] >= 8  # the finished task's time
            assert execs[k]["cores_busy"][-1] == 1.0  # >= 8 s of task time in ~5 s, capped at the core
        print(f"\nsampled a real application in {time.monotonic() - t0:.1f} s: {json.dumps(execs['0']['latest'])}")
    finally:
        if proc.poll() is None:
            proc.stdin.write("\n")
            proc.stdin.flush()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
