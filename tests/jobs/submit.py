"""spark-submit in local mode on loopback, for the tests that run a driver script the way a
cluster would (the venv's Python on both sides, the repo on PYTHONPATH)."""

import os
import subprocess
import sys
from pathlib import Path

from workers.localcluster import spark_home

REPO = Path(__file__).resolve().parents[2]
DRIVER = REPO / "workers" / "jobs" / "driver.py"


def spark_submit_local(script, *args, master="local[1]", confs=(), timeout=300) -> subprocess.CompletedProcess:
    argv = [str(spark_home() / "bin" / "spark-submit"), "--master", master]
    argv += ["--conf", "spark.driver.host=127.0.0.1", "--conf", "spark.driver.bindAddress=127.0.0.1"]
    argv += ["--conf", "spark.ui.enabled=false"]
    for conf in confs:
        argv += ["--conf", conf]
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    env.update(PYTHONPATH=str(REPO), SPARK_HOME=str(spark_home()))
    return subprocess.run([*argv, str(script), *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip
