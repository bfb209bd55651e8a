"""The driver's defaults yield to what spark-submit was given (the cluster's own settings), through
a real spark-submit: a SparkConf made before the driver connects to spark-submit's JVM is
Python-only and would override them (it did, until the driver connected first)."""

import json

import pytest

from tests.jobs.submit import spark_submit_local
from workers.jobs import jvm_opts

pytestmark = [pytest.mark.spark]

SCRIPT = """
import json, types
from workers.jobs import driver
spec = types.SimpleNamespace(app_name="conf-check", input_mode="tensorflow", bind_host="127.0.0.1")
sc = driver._spark_context(spec)
conf = sc.getConf()
keys = ["spark.task.maxFailures", "spark.locality.wait", "spark.executor.extraJavaOptions"]
print("CONF=" + json.dumps({k: conf.get(k, None) for k in keys}))
sc.stop()
"""


def effective_conf(tmp_path, *confs: str) -> dict:
    script = tmp_path / "conf_check.py"
    script.write_text(SCRIPT)
    out = spark_submit_local(script, confs=confs, timeout=180)
    line = next((x for x in out.stdout.splitlines() if x.startswith("CONF=")), None)
    assert line, out.stdout[-2000:] + out.stderr[-3000:]
    return json.loads(line[len("CONF=") :])


def test_spark_submit_conf_wins_over_the_drivers_defaults(tmp_path):
    conf = effective_conf(tmp_path, "spark.task.maxFailures=3", "spark.executor.extraJavaOptions=-Xss4m")
    assert conf["spark.task.maxFailures"] == "3"  # the driver's default is 1
    # Spark puts its own module options in front of whatever it was given.
    opts = conf["spark.executor.extraJavaOptions"]
    assert opts.endswith(" -Xss4m") and "TieredStopAtLevel" not in opts  # the cluster's, not ours
    assert conf["spark.locality.wait"] == "0s"  # a default nobody set still applies


def test_sparkdecks_executor_options_join_c1(tmp_path):
    conf = effective_conf(tmp_path, f"{jvm_opts.EXECUTOR_OPTS_CONF}=-XX:SharedArchiveFile=/x/executor.jsa")
    opts = conf["spark.executor.extraJavaOptions"]
    assert opts.endswith(" -XX:TieredStopAtLevel=1 -XX:SharedArchiveFile=/x/executor.jsa")
    assert conf["spark.task.maxFailures"] == "1"
