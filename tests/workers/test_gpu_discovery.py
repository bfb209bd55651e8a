"""workers/gpu/discover_gpus.sh with a fake nvidia-smi, the `make run` GPU settings and what
the local cluster hands each worker. Fast: no Spark, no JVM."""

import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from django.core.management import call_command

from workers.localcluster import GPU_DISCOVERY_SCRIPT, GPU_SLICE_ENV, ClusterError, LocalCluster, local_gpu_settings

REPO = Path(__file__).resolve().parents[2]
FAKE_ONE_GPU = REPO / "tests" / "data" / "gpu" / "fake_one_gpu.sh"


def fake_nvidia_smi(tmp_path, body: str) -> Path:
    """A directory holding an `nvidia-smi` shell script with `body`; put it on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    script = bin_dir / "nvidia-smi"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return bin_dir


def discover(path_dir: Path, shell: str | None = None, **env) -> subprocess.CompletedProcess:
    # Only the given dir on PATH: no real nvidia-smi can leak in. The script needs no other program.
    argv = [shell, str(GPU_DISCOVERY_SCRIPT)] if shell else [str(GPU_DISCOVERY_SCRIPT)]
    return subprocess.run(argv, env={"PATH": str(path_dir), **env}, capture_output=True, text=True, timeout=10)


def test_scripts_are_executable():
    for script in (GPU_DISCOVERY_SCRIPT, FAKE_ONE_GPU):
        assert os.access(script, os.X_OK), script
        assert script.read_text().startswith("#!/bin/sh\n")


def test_reports_every_gpu_nvidia_smi_lists(tmp_path):
    proc = discover(fake_nvidia_smi(tmp_path, 'printf "0\\n1\\n"'))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\n") == 1  # Spark parses the whole stdout as one JSON object
    assert json.loads(proc.stdout) == {"name": "gpu", "addresses": ["0", "1"]}
    # The exact flags matter: index only, no CSV header.
    args = fake_nvidia_smi(tmp_path, 'echo "$@" > "${0%/*}/args"; echo 0')
    assert json.loads(discover(args).stdout)["addresses"] == ["0"]
    assert (args / "args").read_text().split() == ["--query-gpu=index", "--format=csv,noheader"]


@pytest.mark.parametrize("shell", ["dash", "bash"])
def test_runs_under_plain_posix_shells(tmp_path, shell):
    if shutil.which(shell) is None:
        pytest.skip(f"no {shell}")
    proc = discover(fake_nvidia_smi(tmp_path, 'printf "0\\n1\\n2\\n"'), shell=shutil.which(shell))
    assert json.loads(proc.stdout)["addresses"] == ["0", "1", "2"]


def test_no_nvidia_smi_reports_no_gpus_without_failing(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = discover(empty)
    # Exit 0 with an empty list: Spark then fails the worker with "less than what the user requested".
    assert proc.returncode == 0
    assert json.loads(proc.stdout) == {"name": "gpu", "addresses": []}
    assert "nvidia-smi not found" in proc.stderr


def test_a_failing_nvidia_smi_reports_no_gpus(tmp_path):
    smi = fake_nvidia_smi(tmp_path, 'echo "NVIDIA-SMI has failed because it could not communicate"; exit 9')
    proc = discover(smi)
    assert proc.returncode == 0
    assert json.loads(proc.stdout) == {"name": "gpu", "addresses": []}
    assert "nvidia-smi failed" in proc.stderr


def test_gpu_addresses_env_keeps_only_those(tmp_path):
    smi = fake_nvidia_smi(tmp_path, 'printf "0\\n1\\n2\\n3\\n"')
    assert json.loads(discover(smi, **{GPU_SLICE_ENV: "2,3"}).stdout)["addresses"] == ["2", "3"]
    assert json.loads(discover(smi, **{GPU_SLICE_ENV: "7"}).stdout)["addresses"] == []


def test_fake_one_gpu_script():
    proc = subprocess.run([str(FAKE_ONE_GPU)], capture_output=True, text=True, timeout=10)
    assert json.loads(proc.stdout) == {"name": "gpu", "addresses": ["0"]}


def test_local_gpu_settings(tmp_path):
    assert local_gpu_settings({}) == (0, "")
    assert local_gpu_settings({"SPARKDECK_LOCAL_GPUS": "0"}) == (0, "")
    assert local_gpu_settings({"SPARKDECK_LOCAL_GPUS": "2"}) == (2, str(GPU_DISCOVERY_SCRIPT))
    env = {"SPARKDECK_LOCAL_GPUS": "1", "SPARKDECK_LOCAL_GPU_SCRIPT": str(FAKE_ONE_GPU)}
    assert local_gpu_settings(env) == (1, str(FAKE_ONE_GPU))
    for bad in ("two", "-1", "1.5"):
        with pytest.raises(ClusterError, match="SPARKDECK_LOCAL_GPUS"):
            local_gpu_settings({"SPARKDECK_LOCAL_GPUS": bad})
    not_executable = tmp_path / "gpus.sh"
    not_executable.write_text("#!/bin/sh\n")
    for script in (tmp_path / "missing.sh", not_executable):
        with pytest.raises(ClusterError, match="missing or not executable"):
            local_gpu_settings({"SPARKDECK_LOCAL_GPUS": "1", "SPARKDECK_LOCAL_GPU_SCRIPT": str(script)})


def test_each_local_worker_gets_its_own_gpus(tmp_path):
    lc = LocalCluster(tmp_path, workers=2, gpus_per_worker=2, gpu_discovery_script=GPU_DISCOVERY_SCRIPT)
    opts = lc._env(1)["SPARK_WORKER_OPTS"]
    assert "-Dspark.worker.resource.gpu.amount=2" in opts
    assert f"-Dspark.worker.resource.gpu.discoveryScript={GPU_DISCOVERY_SCRIPT}" in opts
    assert [lc._env(i)[GPU_SLICE_ENV] for i in (1, 2)] == ["0,1", "2,3"]
    assert GPU_SLICE_ENV not in lc._env()  # the master
    plain = LocalCluster(tmp_path, workers=2)._env(1)
    assert "resource.gpu" not in plain.get("SPARK_WORKER_OPTS", "") and GPU_SLICE_ENV not in plain


@pytest.mark.django_db
def test_seed_demo_records_the_local_gpus(monkeypatch):
    from webapp.clusters.models import Cluster

    monkeypatch.delenv("SPARKDECK_LOCAL_GPUS", raising=False)
    call_command("seed_demo", stdout=io.StringIO())
    c = Cluster.objects.get(name="local")
    assert (c.gpus_per_worker, c.max_gpus_per_executor, c.gpu_discovery_script) == (0, 0, "")

    monkeypatch.setenv("SPARKDECK_LOCAL_GPUS", "1")
    monkeypatch.setenv("SPARKDECK_LOCAL_GPU_SCRIPT", str(FAKE_ONE_GPU))
    call_command("seed_demo", stdout=io.StringIO())
    c.refresh_from_db()
    assert (c.gpus_per_worker, c.max_gpus_per_executor, c.gpu_discovery_script) == (1, 1, str(FAKE_ONE_GPU))
    c.full_clean()  # a row the admin would accept


def test_tfos_args_hide_gpus_unless_spark_assigned_some():
    import pickle

    from pyspark import cloudpickle

    from workers.jobs.train import TFArgs, assigned_gpus, tf_args

    cpu = tf_args({"run_id": 1}, 0)
    # TFoS checks `'num_gpus' in tf_args`, then reads tf_args.num_gpus: 0 = take no GPU itself.
    assert "num_gpus" in cpu and cpu.num_gpus == 0 and cpu["spec"] == {"run_id": 1}
    gpu = tf_args({"run_id": 1}, 1.0, cores=2)
    assert gpu["cores"] == 2 and cpu["cores"] == 0  # main_fun sizes TF's op threads to the executor
    assert "num_gpus" not in gpu  # Spark's addresses are used as they are
    with pytest.raises(AttributeError):
        gpu.num_gpus  # noqa: B018
    for dumps in (pickle.dumps, cloudpickle.dumps):  # shipped to the executors with the map function
        back = pickle.loads(dumps(cpu))
        assert isinstance(back, TFArgs) and back == cpu and back.num_gpus == 0
    assert assigned_gpus() == []  # no Spark task here
