"""The GPU configuration path on a real loopback Spark cluster, on a CPU-only machine: workers
declare one fake GPU each (tests/data/gpu/fake_one_gpu.sh), a TFoS training run asks for one GPU
per executor through StandaloneBackend, and every executor logs the address Spark gave it and the
CUDA_VISIBLE_DEVICES TFoS set from it. The cluster runs with a fake 2-GPU nvidia-smi on its PATH
(tests/data/gpu/fake_host/), so TFoS's own GPU fallback sees GPUs too: a run without GPUs must still
get none. About 2 minutes on 2 cores.
"""

import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.jobs.digits import spec_dict, write_digits_parquet
from workers.backends.base import BackendError, SubmitRequest
from workers.backends.standalone import StandaloneBackend
from workers.jobs.package import build_jobs_zip
from workers.localcluster import (
    GPU_DISCOVERY_SCRIPT,
    ClusterError,
    LocalCluster,
    free_port,
    free_port_block,
    group_pids,
    pid_alive,
    port_open,
)

pytestmark = [
    pytest.mark.spark,
    pytest.mark.skipif(shutil.which("java") is None and not os.environ.get("JAVA_HOME"), reason="needs Java"),
]

REPO = Path(__file__).resolve().parents[2]
FAKE_ONE_GPU = REPO / "tests" / "data" / "gpu" / "fake_one_gpu.sh"
FAKE_HOST_BIN = REPO / "tests" / "data" / "gpu" / "fake_host"  # nvidia-smi of an idle 2-GPU host
GPU_LINE = re.compile(r"SPARKDECK_GPU executor=(\d+) assigned=(\[.*?\]) CUDA_VISIBLE_DEVICES=(\S+) tf_gpus=\[\]")
EPOCHS = 2


def assert_all_stopped(lc: LocalCluster, daemons: list[dict]) -> None:
    # No daemon, nothing in their process groups (executors, Python workers), no port open.
    assert not any(pid_alive(d["pid"]) or group_pids(d["pid"]) for d in daemons)
    assert not lc.is_running()
    assert not any(port_open(p) for p in (lc.master_port, lc.webui_port, *lc.worker_ui_ports))


def test_a_worker_without_the_gpus_it_declares_fails_loudly(tmp_path, monkeypatch):
    # First in the file, before the module cluster starts: two clusters at once would crowd 2 cores.
    # The real script, with an nvidia-smi that finds no GPU: the worker must not come up.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nvidia-smi").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "nvidia-smi").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    lc = LocalCluster(
        tmp_path / "state",
        master_port=free_port(),
        webui_port=free_port_block(3),
        workers=1,
        worker_memory="512m",
        gpus_per_worker=1,
        gpu_discovery_script=GPU_DISCOVERY_SCRIPT,
    )
    try:
        with pytest.raises(ClusterError, match="less than what the user requested: 1"):
            lc.start(timeout=90)
    finally:
        lc.stop()
    assert not lc.is_running()


@pytest.fixture(scope="module")
def gpu_cluster(tmp_path_factory):
    lc = LocalCluster(
        tmp_path_factory.mktemp("gpu-spark"),
        master_port=free_port(),
        webui_port=free_port_block(3),
        workers=2,
        worker_cores=1,
        worker_memory="2g",
        gpus_per_worker=1,
        gpu_discovery_script=FAKE_ONE_GPU,
    )
    daemons = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PATH", f"{FAKE_HOST_BIN}:{os.environ['PATH']}")  # daemons and executors inherit it
        try:
            t0 = time.monotonic()
            lc.start(timeout=90)
            print(f"\nGPU cluster start: {time.monotonic() - t0:.1f} s")
            daemons = lc.daemons()
            yield lc
        finally:
            lc.stop()
    assert_all_stopped(lc, daemons)


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return write_digits_parquet(tmp_path_factory.mktemp("digits"))


@pytest.fixture
def backend(gpu_cluster):
    return StandaloneBackend(master_url=gpu_cluster.master_url, rest_url=gpu_cluster.rest_url)


def train_request(cluster: LocalCluster, digits: dict, run_dir: Path, gpus: int) -> SubmitRequest:
    run_dir.mkdir(parents=True)
    spec = spec_dict(
        digits,
        run_dir,  # the run dir is the artifact dir, as in Sparkdeck: the backend looks for result.json there
        app_name=f"sparkdeck-gpu-{run_dir.name}",
        hyperparameters={"epochs": EPOCHS, "batch_size": 64, "steps_per_epoch": 5},
        timeouts={"reservation": 60, "feed": 60, "shutdown": 60},
    )
    (run_dir / "spec.json").write_text(json.dumps(spec))
    return SubmitRequest(
        run_id=run_dir.name,
        run_dir=run_dir,
        master_url=cluster.master_url,
        app_name=spec["app_name"],
        entry=str(REPO / "workers" / "jobs" / "driver.py"),
        entry_args=["--spec", str(run_dir / "spec.json")],
        py_files=[build_jobs_zip(str(run_dir / "jobs.zip"))],
        num_executors=2,
        executor_cores=1,
        executor_memory_mb=1024,
        driver_memory_mb=1024,
        python=sys.executable,
        bind_host="127.0.0.1",
        gpus_per_executor=gpus,
    )


def run_to_the_end(backend, req: SubmitRequest, timeout: float = 240) -> dict[str, str]:
    """Submit, wait until SUCCEEDED; {executor id: its stderr}."""
    handle = backend.submit(req)
    deadline = time.monotonic() + timeout
    while not (st := backend.status(handle)).is_final:
        assert time.monotonic() < deadline, f"stuck in {st}\n{driver_tail(req.run_dir)}"
        time.sleep(1)
    assert st.state == "SUCCEEDED", f"{st}\n{driver_tail(req.run_dir)}"
    stderr = {f.parent.name: f.read_text(errors="replace") for f in backend.logs(handle) if f.name == "stderr"}
    assert len(stderr) == 2, stderr.keys()
    return stderr


def gpu_lines(stderr: dict[str, str]) -> dict[str, tuple[str, str]]:
    """{TF node: (assigned, CUDA_VISIBLE_DEVICES)} from each executor's one SPARKDECK_GPU line."""
    found = {}
    for exec_id, text in stderr.items():
        lines = [ln for ln in text.splitlines() if ln.startswith("SPARKDECK_GPU ")]
        assert len(lines) == 1, f"executor {exec_id}:\n{text[-3000:]}"
        m = GPU_LINE.fullmatch(lines[0])
        assert m, lines[0]
        found[m.group(1)] = (m.group(2), m.group(3))
    return found


def driver_tail(run_dir: Path, lines: int = 40) -> str:
    log = run_dir / "driver.log"
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""


def test_workers_declare_one_gpu_each(gpu_cluster):
    state = requests.get(f"{gpu_cluster.rest_url}/json/", timeout=5).json()
    workers = [w for w in state["workers"] if w["state"] == "ALIVE"]
    assert len(workers) == 2
    assert [w["resources"]["gpu"]["addresses"] for w in workers] == [["0"], ["0"]]


def test_more_gpus_than_any_worker_has_is_refused_before_anything_starts(gpu_cluster, backend, digits, tmp_path):
    req = train_request(gpu_cluster, digits, tmp_path / "two-gpus", gpus=2)
    with pytest.raises(BackendError, match=r"at most 0 executor\(s\) of 1 core\(s\), 1024 MB, 2 GPU\(s\)"):
        backend.submit(req)
    assert not (req.run_dir / "driver.log").exists() and not (req.run_dir / "launcher.json").exists()
    state = requests.get(f"{gpu_cluster.rest_url}/json/", timeout=5).json()
    assert not state["activeapps"] and not state["completedapps"]


def test_each_executor_gets_its_gpu_and_tfos_exports_it(gpu_cluster, backend, digits, tmp_path):
    req = train_request(gpu_cluster, digits, tmp_path / "one-gpu", gpus=1)
    argv = backend.build_argv(req)
    assert "spark.executor.resource.gpu.amount=1" in argv and "spark.task.resource.gpu.amount=1" in argv
    t0 = time.monotonic()
    stderr = run_to_the_end(backend, req)
    wall = time.monotonic() - t0
    # Spark's address on both, not TFoS's own pick from the fake host's nvidia-smi (0 and 1).
    assert gpu_lines(stderr) == {"0": ("['0']", "0"), "1": ("['0']", "0")}
    for text in stderr.values():
        steps = re.findall(
            rf"^SPARKDECK_STEP executor=\d+ epoch=(\d+)/{EPOCHS} steps=5 seconds=\S+ ms_per_step=\S+ at=\S+$",
            text,
            re.M,
        )
        assert steps == [str(e) for e in range(1, EPOCHS + 1)], text[-3000:]
    result = json.loads((req.run_dir / "result.json").read_text())
    assert len(result["ms_per_step"]) == EPOCHS and all(ms > 0 for ms in result["ms_per_step"])
    assert "ms/step per epoch [" in (req.run_dir / "driver.log").read_text()
    print(f"\nGPU run submit -> SUCCEEDED: {wall:.1f} s; ms/step per epoch (chief) {result['ms_per_step']}")


def test_a_run_without_gpus_gets_none_on_a_gpu_host(gpu_cluster, backend, digits, tmp_path):
    # Left alone, TFoS would give each TF node an idle GPU it finds with nvidia-smi, outside Spark.
    req = train_request(gpu_cluster, digits, tmp_path / "no-gpu", gpus=0)
    t0 = time.monotonic()
    stderr = run_to_the_end(backend, req)
    assert gpu_lines(stderr) == {"0": ("[]", "''"), "1": ("[]", "''")}
    print(f"\nCPU run submit -> SUCCEEDED: {time.monotonic() - t0:.1f} s")
