"""The driver on a real Spark standalone cluster: both input modes, and a failing run.

By default a loopback cluster (master + 2 workers) is started for this module. To use one that is
already running: SPARKDECK_JOBS_MASTER=spark://127.0.0.1:7177 [SPARKDECK_JOBS_WORK_DIRS=/w1:/w2];
WORK_DIRS (the workers' --work-dir) lets the test read executor stderr and check the TF cluster spec.
"""

import glob
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.jobs.digits import spec_dict
from tests.jobs.events import tensorboard_scalars
from workers.jobs.malloc_env import MALLOC_ENV
from workers.jobs.package import build_jobs_zip

pytestmark = [pytest.mark.spark]
REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """(master URL, worker work dirs): the given cluster, or a loopback one started here."""
    if os.environ.get("SPARKDECK_JOBS_MASTER"):
        dirs = [d for d in os.environ.get("SPARKDECK_JOBS_WORK_DIRS", "").split(":") if d]
        yield os.environ["SPARKDECK_JOBS_MASTER"], dirs
        return
    from workers.localcluster import LocalCluster, free_port, free_port_block

    state = tmp_path_factory.mktemp("jobs-cluster")
    lc = LocalCluster(state, master_port=free_port(), webui_port=free_port_block(3), worker_memory="3g")
    lc.start(timeout=90)
    yield lc.master_url, [str(d) for d in lc.work_dirs]
    lc.stop()


def submit(master, tmp_path, spec: dict, timeout=600):
    zip_path = build_jobs_zip(str(tmp_path / "jobs.zip"))
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(spec))
    argv = [
        str(VENV_BIN / "spark-submit"), "--master", master, "--deploy-mode", "client",
        "--conf", "spark.cores.max=2", "--executor-cores", "1", "--executor-memory", "2g",
        "--conf", "spark.task.cpus=1", "--conf", "spark.dynamicAllocation.enabled=false",
        "--conf", "spark.driver.host=127.0.0.1", "--conf", "spark.driver.bindAddress=127.0.0.1",
        "--conf", f"spark.pyspark.python={sys.executable}",
        "--py-files", zip_path, str(REPO / "workers/jobs/driver.py"), "--spec", str(spec_path),
    ]  # fmt: skip
    spark_home = subprocess.check_output(
        [sys.executable, "-c", "import pyspark, os; print(os.path.dirname(pyspark.__file__))"], text=True
    ).strip()
    env = {
        **os.environ,
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_HOME": spark_home,
        "PATH": f"{VENV_BIN}:{os.environ['PATH']}",
    }
    t0 = time.time()
    proc = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=timeout)
    return proc, time.time() - t0


def stdout_value(out: str, key: str):
    found = re.findall(rf"^{key}=(.*)$", out, re.M)
    return found[-1] if found else None


@pytest.mark.parametrize("mode", ["tensorflow", "spark"])
def test_trains_on_the_cluster(cluster, tmp_path, digits, sink, mode):
    master, work_dirs = cluster
    # SPARK mode validates too: the driver leaves the held-out rows out of the feed.
    validation = 0.1 if mode == "spark" else 0
    spec = spec_dict(digits, tmp_path / "art", input_mode=mode,
                     hyperparameters={"epochs": 5, "validation_split": validation},
                     metrics={"url": sink.url, "token": "tok", "every_steps": 5})  # fmt: skip
    proc, wall = submit(master, tmp_path, spec)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    app_id = stdout_value(proc.stdout, "SPARKDECK_APP_ID")
    assert app_id and stdout_value(proc.stdout, "SPARKDECK_UI_URL").startswith("http://127.0.0.1:")
    result = json.loads((tmp_path / "art" / "result.json").read_text())
    assert result["test_accuracy"] >= 0.9 and result["test_rows"] == 360 and result["input_mode"] == mode
    assert (tmp_path / "art" / "predictions" / "predictions.csv").is_file()
    assert {p for _, _, b in sink.requests for p in [b["executor"]]} == {"0", "1"}
    # The chief (executor 0 only) posts steps_per_epoch for the ETA and writes TensorBoard event files.
    spe = [
        (b["executor"], p["value"]) for _, _, b in sink.requests for p in b["points"] if p["name"] == "steps_per_epoch"
    ]
    assert spe == [("0", result["steps_per_epoch"])]
    # Every point once: per executor loss and accuracy every 5 of the 5 x S steps, both epoch_* each
    # epoch; plus the chief's steps_per_epoch (the count a web-outage test must find stored).
    keys = [(b["executor"], p["name"], p["step"]) for _, _, b in sink.requests for p in b["points"]]
    val_points = 2 * 5 if validation else 0  # val_loss and val_accuracy per epoch, from the chief only
    assert len(keys) == len(set(keys)) == 2 * (2 * (5 * result["steps_per_epoch"] // 5) + 2 * 5) + 1 + val_points
    if validation:
        assert {e for e, n, _ in keys if n.startswith("val_")} == {"0"}
        assert "feed RDD ready: 1293 rows" in proc.stdout  # 1,437 training rows less 144 held out
        assert result["steps_per_epoch"] == 41 and len(result["history"]["val_accuracy"]) == 5  # 1,293 / 32
        assert result["history"]["val_accuracy"][-1] >= 0.85
    assert [s for s, _ in tensorboard_scalars(tmp_path / "art")["epoch_loss"]] == [0, 1, 2, 3, 4]
    if work_dirs:
        stderr = "".join(Path(p).read_text() for d in work_dirs for p in glob.glob(f"{d}/{app_id}/*/stderr"))
        configs = re.findall(r"\[sparkdeck\] TF_CONFIG: (\{.*\})", stderr)
        assert len(configs) == 2
        for cfg in configs:
            addrs = [a for hosts in json.loads(cfg)["cluster"].values() for a in hosts]
            assert addrs and all(a.startswith("127.0.0.1:") for a in addrs)
        # The driver's malloc defaults reached the Python workers that train (malloc_env.py).
        expected = " ".join(f"{k}={v}" for k, v in sorted(MALLOC_ENV.items()))
        assert re.findall(r"\[sparkdeck\] malloc: (.*)", stderr) == [expected, expected]
        # C1-only executor JVMs in TENSORFLOW mode, the JIT's default in SPARK mode (jvm_opts.py).
        commands = re.findall(r"Spark Executor Command: (.*)", stderr)
        assert len(commands) == 2
        assert all(('"-XX:TieredStopAtLevel=1"' in c) == (mode == "tensorflow") for c in commands)
    print(f"{mode}: wall {wall:.1f} s, result {result}")


def test_a_failing_map_function_fails_the_run_quickly(cluster, tmp_path, digits):
    spec = spec_dict(digits, tmp_path / "art", timeouts={"reservation": 60, "feed": 60, "shutdown": 30})
    spec["dataset"]["shape"] = [4, 4, 1]  # an image shape, but the rows hold 64 values
    proc, wall = submit(cluster[0], tmp_path, spec, timeout=300)
    assert proc.returncode != 0
    assert proc.stdout.strip().splitlines()[-1].startswith("SPARKDECK_ERROR=ValueError: ")
    assert "needs 16" in stdout_value(proc.stdout, "SPARKDECK_ERROR")
    assert wall < 120


def test_an_ingest_that_dies_mid_run_loses_no_point(cluster, tmp_path, digits):
    """The web server stops listening after the first points and never returns: what it did not
    store is in the run's metrics-pending files when the driver ends, each point exactly once."""
    from tests.outage_server import OutageServer

    stored, dying = [], threading.Event()

    def respond(path, headers, body):
        batch = json.loads(body)
        stored.extend(f"{batch['executor']}/{p['name']}/{p['step']}" for p in batch["points"])
        if len(stored) >= 20 and not dying.is_set():
            dying.set()
            threading.Thread(target=web.stop).start()  # dies while the executors keep training
        return 200, b'{"stored": 1}'

    web = OutageServer(respond).start()
    spec = spec_dict(digits, tmp_path / "art", input_mode="tensorflow", hyperparameters={"epochs": 5},
                     metrics={"url": web.url, "token": "tok", "every_steps": 5, "close_seconds": 2})  # fmt: skip
    try:
        proc, _ = submit(master=cluster[0], tmp_path=tmp_path, spec=spec)
    finally:
        if not dying.is_set():
            web.stop()
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    result = json.loads((tmp_path / "art" / "result.json").read_text())
    pending = sorted((tmp_path / "art" / "metrics-pending").iterdir())
    assert {p.name.split("-")[0] for p in pending} == {"0", "1"}  # one file per executor
    left = [
        f"{p['executor']}/{p['name']}/{p['step']}" for f in pending for p in map(json.loads, f.read_text().splitlines())
    ]
    assert stored and left
    assert len(stored + left) == len(set(stored + left)) == 2 * (2 * (5 * result["steps_per_epoch"] // 5) + 2 * 5) + 1
