import json

from pyspark import SparkConf

from tests.jobs.digits import spec_dict
from workers.jobs import driver
from workers.jobs.malloc_env import MALLOC_ENV
from workers.jobs.spec import parse_spec

PY4J_TEXT = (
    (
        "An error occurred while calling o84.foreachPartition.\n"
        ": org.apache.spark.SparkException: Job aborted due to stage failure: Task 1 in stage 0.0 failed 1 times, "
        "most recent failure: Lost task 1.0 in stage 0.0 (TID 1) (127.0.0.1 executor 0): "
        "org.apache.spark.api.python.PythonException: Traceback (most recent call last):\n"
    )
    + """  File "/tmp/spark/python/lib/pyspark.zip/pyspark/worker.py", line 1, in main
  File "/work/main/.venv/lib/python3.11/site-packages/tensorflowonspark/TFSparkNode.py", line 463, in _mapfn
    wrapper_fn(tf_args, ctx)
  File "jobs.zip/workers/jobs/data.py", line 70, in features_to_array
    raise ValueError(
ValueError: /d/train.parquet: a row has 64 feature values but shape [4, 4, 1] needs 16

\tat org.apache.spark.api.python.BasePythonRunner$ReaderIterator.handlePythonException(PythonRunner.scala:1097)
\tat java.base/java.lang.Thread.run(Thread.java:840)
pyspark.errors.exceptions.captured.PythonException: An exception was thrown from the Python worker:
"""
)


def test_reason_is_the_executor_exception():
    assert driver.reason(PY4J_TEXT) == (
        "ValueError: /d/train.parquet: a row has 64 feature values but shape [4, 4, 1] needs 16"
    )


def test_reason_for_plain_and_wrapped_errors():
    assert driver.reason(RuntimeError("boom\nmore")) == "RuntimeError: boom"
    assert driver.reason(driver.RunFailed("the chief did not export x")) == "the chief did not export x"
    nested = "Exception: Exception in worker:\nTraceback (most recent call last):\n  File x\nKeyError: 'features'\n"
    assert driver.reason(nested) == "KeyError: 'features'"
    assert "timeouts.shutdown" in driver.reason(SystemExit(1))
    assert driver.reason("") == "unknown error"


def test_bad_spec_fails_fast_without_spark(tmp_path, capsys):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"app_name": "x"}))
    assert driver.main(["--spec", str(spec)]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith("SPARKDECK_ERROR=SpecError: hyperparameters must be an object")
    assert not any(line.startswith("SPARKDECK_APP_ID=") for line in out)


def test_non_image_shape_is_refused_before_spark_starts(tmp_path, capsys, digits):
    from tests.jobs.digits import spec_dict

    spec = tmp_path / "spec.json"
    raw = spec_dict(digits, tmp_path / "art")
    raw["dataset"]["shape"] = [64]
    spec.write_text(json.dumps(raw))
    assert driver.main(["--spec", str(spec)]) == 1
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("SPARKDECK_ERROR=ValueError: the cnn template needs image data")


def test_defaults_fill_only_what_spark_submit_left_unset(tmp_path):
    dataset = {"train": "/d/train.parquet", "test": "/d/test.parquet", "shape": [8, 8, 1], "num_classes": 10,
               "class_names": None}  # fmt: skip
    spec = parse_spec(spec_dict(dataset, tmp_path / "art", bind_host="127.0.0.1"))
    # As spark-submit hands them over: the cluster's executor env lowered one malloc setting.
    conf = SparkConf(loadDefaults=False).set("spark.executorEnv.MALLOC_TRIM_THRESHOLD_", "1048576")
    driver.apply_defaults(conf, spec)
    assert conf.get("spark.executorEnv.MALLOC_TRIM_THRESHOLD_") == "1048576"
    assert conf.get("spark.executorEnv.MALLOC_TOP_PAD_") == MALLOC_ENV["MALLOC_TOP_PAD_"] == str(256 << 20)
    assert conf.get("spark.executorEnv.MALLOC_MMAP_THRESHOLD_") == MALLOC_ENV["MALLOC_MMAP_THRESHOLD_"]
    assert conf.get("spark.executorEnv.SPARKDECK_BIND_HOST") == "127.0.0.1"
    assert conf.get("spark.task.maxFailures") == "1"
    # TENSORFLOW mode: the executors' JVM only starts Python, so C1 only (jvm_opts.py).
    assert conf.get("spark.executor.extraJavaOptions") == "-XX:TieredStopAtLevel=1"


def test_spark_mode_executors_keep_the_jvm_default_and_a_cluster_keeps_its_own(tmp_path):
    dataset = {"train": "/d/train.parquet", "test": "/d/test.parquet", "shape": [8, 8, 1], "num_classes": 10,
               "class_names": None}  # fmt: skip
    conf = SparkConf(loadDefaults=False)
    driver.apply_defaults(conf, parse_spec(spec_dict(dataset, tmp_path / "art", input_mode="spark")))
    assert conf.get("spark.executor.extraJavaOptions") is None
    conf = SparkConf(loadDefaults=False).set("spark.executor.extraJavaOptions", "-Xss4m")
    driver.apply_defaults(conf, parse_spec(spec_dict(dataset, tmp_path / "art")))
    assert conf.get("spark.executor.extraJavaOptions") == "-Xss4m"
    # The class-data archive the worker passed (workers/jvm_cds.py) applies in both modes; C1 only in one.
    archive = "-XX:SharedArchiveFile=/v/executor.jsa"
    for mode, expected in (("spark", archive), ("tensorflow", f"-XX:TieredStopAtLevel=1 {archive}")):
        conf = SparkConf(loadDefaults=False).set("spark.sparkdeck.executorJavaOptions", archive)
        driver.apply_defaults(conf, parse_spec(spec_dict(dataset, tmp_path / "art", input_mode=mode)))
        assert conf.get("spark.executor.extraJavaOptions") == expected
