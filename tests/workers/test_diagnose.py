"""workers/diagnose.py: each rule on log snippets copied from real runs on the loopback cluster (Spark 4.3,
TFoS 2.2), and the healthy counterparts that must give no diagnosis."""
# ruff: noqa: E501 - the log lines are kept verbatim, as long as Spark writes them

from pathlib import Path

import pytest

from workers.diagnose import Asked, Limits, Observation, diagnose, failure_reason, pending_reservations, tf_nodes

APP = "app-20261124142227-0001"

HEALTHY_DRIVER = """\
SPARKDECK_APP_ID=app-20261124141948-0000
SPARKDECK_UI_URL=http://127.0.0.1:4040
[sparkdeck driver +4.5s] training cnn: tensorflow input mode, 2 TF nodes
2026-11-24 14:19:50,127 INFO (MainThread-14146) Reserving TFSparkNodes
2026-11-24 14:19:50,135 INFO (MainThread-14146) listening for reservations at ('127.0.0.1', 37173)
2026-11-24 14:19:50,814 INFO (MainThread-14146) waiting for 2 reservations
2026-11-24 14:19:51,820 INFO (MainThread-14146) waiting for 2 reservations
2026-11-24 14:20:03,835 INFO (MainThread-14146) waiting for 1 reservations
2026-11-24 14:20:04,836 INFO (MainThread-14146) all reservations completed
[sparkdeck driver +18.9s] TF cluster reserved
26/11/24 14:20:22 INFO DAGScheduler: Job 2 finished: collect at jobs.zip/workers/jobs/inference.py:54, took 749.33297 ms
26/11/24 14:20:22 INFO TaskSchedulerImpl: Killing all running tasks in stage 2: Stage finished
26/11/24 14:20:22 INFO StandaloneSchedulerBackend: Shutting down all executors
"""

HEALTHY_EXECUTOR = """\
26/11/24 14:19:54 WARN NativeCodeLoader: Unable to load native-hadoop library for your platform... using builtin-java classes where applicable
E0000 00:00:1795530006.675303   14340 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)
[sparkdeck] fit: 5 epochs x 11 steps, batch 32/replica x 2 replicas
SPARKDECK_STEP executor=1 epoch=5/5 steps=11 seconds=1.21 ms_per_step=110.0
26/11/24 14:20:22 ERROR CoarseGrainedExecutorBackend: RECEIVED SIGNAL TERM
"""


def waiting_log(first: str, last: str, remaining: int = 1) -> str:
    return (
        "2026-11-24 14:23:16,436 INFO (MainThread-19299) Reserving TFSparkNodes\n"
        f"2026-11-24 {first},270 INFO (MainThread-19299) waiting for 2 reservations\n"
        f"2026-11-24 {last},151 INFO (MainThread-19299) waiting for {remaining} reservations\n"
    )


def rest(active: int, removed: dict | None = None) -> list[dict]:
    out = [{"id": "driver", "isActive": True, "totalCores": 0}]
    out += [{"id": str(i), "isActive": True, "totalCores": 1} for i in range(active)]
    for ex_id, reason in (removed or {}).items():
        out.append({"id": ex_id, "isActive": False, "totalCores": 1, "removeReason": reason})
    return out


def master_app(state="RUNNING", cores=2, duration_ms=30000, memory=1024):
    return {
        "id": APP,
        "name": "sparkdeck-run-7",
        "cores": cores,
        "memoryperexecutor": memory,
        "resourcesperexecutor": [],
        "state": state,
        "duration": duration_ms,
    }


WORKERS = [
    {
        "id": f"worker-{i}",
        "host": "127.0.0.1",
        "port": 40000 + i,
        "cores": 1,
        "coresfree": 1,
        "memory": 2048,
        "memoryfree": 2048,
        "resources": {},
        "resourcesfree": {},
        "state": "ALIVE",
    }
    for i in range(2)
]


def obs(**kw) -> Observation:
    kw.setdefault("cluster_size", 2)
    kw.setdefault("asked", Asked(executors=2, cores=1, memory_mb=1024))
    return Observation(**kw)


# --- healthy ---------------------------------------------------------------------------------------


def test_a_healthy_run_gives_no_diagnosis():
    o = obs(
        driver_log=HEALTHY_DRIVER,
        executor_logs={"0": HEALTHY_EXECUTOR, "1": HEALTHY_EXECUTOR},
        executors=rest(2),
        master_app=master_app(),
        workers=WORKERS,
    )
    assert diagnose(o) is None


def test_a_healthy_wait_for_reservations_is_no_diagnosis():
    # 14 s of waiting with both executors registered: what a healthy start looks like on 2 busy cores
    o = obs(driver_log=waiting_log("14:19:50", "14:20:04"), executors=rest(2), master_app=master_app())
    assert diagnose(o) is None


# --- reservations ----------------------------------------------------------------------------------


def test_fewer_executors_than_tf_nodes_is_diagnosed_after_20_s():
    o = obs(
        driver_log=waiting_log("14:23:17", "14:23:40"),
        executors=rest(1),
        master_app=master_app(cores=1),
        asked=Asked(executors=1, cores=1, memory_mb=1024),
        reservation_timeout=600,
    )
    d = diagnose(o)
    assert d.code == "reservations" and not d.fatal
    assert d.title == "Only 1 of 2 executors joined the TF cluster"
    assert "asked Spark for 1 executor" in d.cause and "600 s" in d.cause
    assert "2026-11-24 14:23:40,151 INFO (MainThread-19299) waiting for 1 reservations" in d.evidence
    assert "Spark REST API: 1 executor registered, 2 TF nodes wanted" in d.evidence
    assert "Run 2 executors" in d.advice


def test_reservations_not_yet_after_15_s():
    o = obs(driver_log=waiting_log("14:23:17", "14:23:32"), executors=rest(1), master_app=master_app(cores=1))
    assert diagnose(o) is None


def test_executors_granted_but_not_registered_get_longer():
    # Spark granted both executors (cores=2) but one has not registered yet: a slow JVM start, not a hang
    log = waiting_log("14:23:17", "14:23:47")
    assert diagnose(obs(driver_log=log, executors=rest(1), master_app=master_app(cores=2))) is None
    d = diagnose(obs(driver_log=waiting_log("14:23:17", "14:24:05"), executors=rest(1), master_app=master_app(cores=2)))
    assert d.code == "reservations" and "only 1 executor registered" in d.cause


def test_reservations_without_the_driver_ui_wait_45_s():
    assert diagnose(obs(driver_log=waiting_log("14:23:17", "14:23:50"))) is None
    d = diagnose(obs(driver_log=waiting_log("14:23:17", "14:24:03")))
    assert d.code == "reservations" and d.title == "The TF cluster did not form: 1 of 2 TF nodes reserved"


def test_too_few_executors_asked_needs_no_driver_ui():
    o = obs(driver_log=waiting_log("14:23:17", "14:23:40"), asked=Asked(executors=1, cores=1, memory_mb=1024))
    d = diagnose(o)
    assert d.code == "reservations" and d.title == "Only 1 of 2 executors joined the TF cluster"
    assert not any(line.startswith("Spark REST API") for line in d.evidence)


def test_completed_reservations_end_the_wait():
    log = (
        waiting_log("14:23:17", "14:24:40") + "2026-11-24 14:24:41,000 INFO (MainThread-1) all reservations completed\n"
    )
    assert pending_reservations(log) is None
    assert diagnose(obs(driver_log=log, executors=rest(1))) is None


def test_limits_are_tunable():
    o = obs(driver_log=waiting_log("14:23:17", "14:23:22"), executors=rest(1), master_app=master_app(cores=1))
    assert diagnose(o, Limits(reservations_short=3)).code == "reservations"


# --- no resources ----------------------------------------------------------------------------------

NO_RESOURCES_LINE = (
    "26/11/24 14:24:37 WARN TaskSchedulerImpl: Initial job has not accepted any resources; check your cluster UI "
    "to ensure that workers are registered and have sufficient resources"
)


def test_memory_no_worker_has_is_diagnosed_from_the_master():
    o = obs(
        driver_log=waiting_log("14:24:22", "14:24:34", remaining=2),
        executors=rest(0),
        master_app=master_app(state="WAITING", cores=0, duration_ms=12000, memory=3072),
        workers=WORKERS,
        asked=Asked(executors=2, cores=1, memory_mb=3072),
    )
    d = diagnose(o)
    assert d.code == "no_resources" and not d.fatal
    assert d.title == "No executor could start: no worker has 3072 MB of memory"
    assert "the largest worker has 2048 MB" in d.cause
    assert "executor memory at most 2048 MB" in d.advice
    assert any(line.startswith(f"Spark master: {APP} WAITING, 0 cores granted") for line in d.evidence)
    assert any("2048 MB (2048 MB free)" in line for line in d.evidence)


def test_spark_warning_alone_is_enough():
    d = diagnose(obs(driver_log=NO_RESOURCES_LINE, asked=Asked(executors=2, cores=1, memory_mb=1024, gpus=1)))
    assert d.code == "no_resources"
    assert NO_RESOURCES_LINE in d.evidence
    assert "1 GPU" in d.cause


def test_gpus_no_worker_has():
    o = obs(
        master_app=master_app(state="WAITING", cores=0, duration_ms=20000),
        workers=WORKERS,
        asked=Asked(executors=2, cores=1, memory_mb=1024, gpus=1),
    )
    d = diagnose(o)
    assert d.title == "No executor could start: no worker has 1 GPU"
    assert "no GPUs" in d.advice


def test_busy_cluster_is_told_apart():
    busy = [{**w, "coresfree": 0, "memoryfree": 0} for w in WORKERS]
    d = diagnose(obs(master_app=master_app(state="WAITING", cores=0, duration_ms=20000), workers=busy))
    assert d.title == "No executor could start: the cluster is busy"


def test_no_resources_waits_10_s_and_not_when_executors_run():
    assert diagnose(obs(master_app=master_app(state="WAITING", cores=0, duration_ms=5000), workers=WORKERS)) is None
    running = obs(driver_log=NO_RESOURCES_LINE, executors=rest(2), master_app=master_app(cores=2))
    assert diagnose(running) is None  # a transient warning: the executors came


def test_an_old_warning_is_no_finding_once_the_executors_joined():
    # A training run's tick asks no Spark API (and under load one may not answer): the driver log's
    # own progress says the executors came after the warning.
    done = "2026-11-24 14:24:50,001 INFO (MainThread-19299) all reservations completed"
    assert diagnose(obs(driver_log=f"{NO_RESOURCES_LINE}\n{done}\n")) is None
    assert diagnose(obs(driver_log=f"{done}\n{NO_RESOURCES_LINE}\n")).code == "no_resources"  # a later job waits


# --- feed timeout ----------------------------------------------------------------------------------

FEED_STDERR = """\
26/11/24 15:02:10 ERROR Executor: Exception in task 3.0 in stage 1.0 (TID 5)
org.apache.spark.api.python.PythonException: [PYTHON_EXCEPTION] An exception was thrown from the Python worker: Traceback (most recent call last):
  File "/work/main/.venv/lib/python3.11/site-packages/tensorflowonspark/TFSparkNode.py", line 583, in _train
    raise Exception("Timeout while feeding partition")
Exception: Timeout while feeding partition
"""


def test_feed_timeout():
    d = diagnose(obs(executor_logs={"1": FEED_STDERR}, feed_timeout=120))
    assert d.code == "feed_timeout" and d.fatal
    assert "executor 1: Exception: Timeout while feeding partition" in d.evidence
    assert "executor 1: 26/11/24 15:02:10 ERROR Executor: Exception in task 3.0 in stage 1.0 (TID 5)" in d.evidence
    assert "(120 s)" in d.cause


# --- exceptions ------------------------------------------------------------------------------------

OPTIMIZER_STDERR = """\
[sparkdeck] shard 0/2: 719 of 1437 rows
26/11/24 14:22:09 ERROR Executor: Exception in task 0.0 in stage 0.0 (TID 0)
org.apache.spark.api.python.PythonException: [PYTHON_EXCEPTION] An exception was thrown from the Python worker: Traceback (most recent call last):
  File "/work/main/.venv/lib/python3.11/site-packages/pyspark/python/lib/pyspark.zip/pyspark/worker.py", line 4327, in invoke_udf
    run_process()
  [Previous line repeated 1 more time]
  File "./jobs.zip/workers/jobs/train.py", line 162, in main_fun
    model = templates.build(spec.template, shape, spec.dataset.num_classes, hp, base=spec.base)
            ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "./jobs.zip/workers/jobs/templates.py", line 41, in compile_classifier
    optimizer=optimizer(keras, hp, learning_rate),
              ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "./jobs.zip/workers/jobs/templates.py", line 36, in optimizer
    raise ValueError(f"unknown optimizer {name!r}; use adam, sgd or rmsprop")
ValueError: unknown optimizer 'bogus'; use adam, sgd or rmsprop
 SQLSTATE: 38000
\tat org.apache.spark.api.python.BasePythonRunner$ReaderIterator.handlePythonException(PythonRunner.scala:1097)
26/11/24 14:22:11 ERROR CoarseGrainedExecutorBackend: RECEIVED SIGNAL TERM
"""

KERAS_STDERR = """\
26/11/24 16:01:44 ERROR Executor: Exception in task 1.0 in stage 0.0 (TID 1)
org.apache.spark.api.python.PythonException: [PYTHON_EXCEPTION] An exception was thrown from the Python worker: Traceback (most recent call last):
  File "./jobs.zip/workers/jobs/train.py", line 178, in main_fun
    history = model.fit(dataset, epochs=hp.epochs, steps_per_epoch=steps, callbacks=callbacks, verbose=2)
              ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/work/main/.venv/lib/python3.11/site-packages/tf_keras/src/utils/traceback_utils.py", line 70, in error_handler
    raise e.with_traceback(filtered_tb) from None
  File "/tmp/__autograph_generated_filei3ow8pxq.py", line 15, in tf__train_function
    retval_ = ag__.converted_call(ag__.ld(step_function), (ag__.ld(self), ag__.ld(iterator)), None, fscope)
ValueError: in user code:

    File "/work/main/.venv/lib/python3.11/site-packages/tf_keras/src/engine/training.py", line 1398, in train_function  *
        return step_function(self, iterator)
    File "/work/main/.venv/lib/python3.11/site-packages/tf_keras/src/engine/input_spec.py", line 298, in assert_input_compatibility
        raise ValueError(

    ValueError: Input 0 of layer "cnn" is incompatible with the layer: expected shape=(None, 8, 8, 1), found shape=(None, 64)

 SQLSTATE: 38000
"""


def test_python_exception_in_an_executor():
    d = diagnose(obs(executor_logs={"0": OPTIMIZER_STDERR, "1": HEALTHY_EXECUTOR}))
    assert d.code == "exception" and d.fatal
    assert d.title == "Training failed with ValueError on executor 0"
    assert d.cause.endswith("ValueError: unknown optimizer 'bogus'; use adam, sgd or rmsprop")
    assert d.evidence[0] == "executor 0: 26/11/24 14:22:09 ERROR Executor: Exception in task 0.0 in stage 0.0 (TID 0)"
    assert d.evidence[-1] == "ValueError: unknown optimizer 'bogus'; use adam, sgd or rmsprop"
    # the last frames, where it was raised
    assert '  File "./jobs.zip/workers/jobs/templates.py", line 36, in optimizer' in d.evidence
    assert "hyperparameter" in d.advice


def test_tf_keras_error_shows_the_inner_message():
    d = diagnose(obs(executor_logs={"1": KERAS_STDERR}))
    assert d.code == "exception"
    assert d.title == "Training failed with ValueError on executor 1"
    assert 'Input 0 of layer "cnn" is incompatible with the layer' in d.cause
    assert "tf_keras" in " ".join(d.evidence)


def test_exception_relayed_in_the_driver_log():
    driver = (
        "26/11/24 14:22:10 WARN TaskSetManager: Lost task 0.0 in stage 0.0 (TID 0) (127.0.0.1 executor 0): "
        + OPTIMIZER_STDERR.split("\n", 2)[2].replace("org.apache.spark.api.python.PythonException: ", "", 1)
    )
    d = diagnose(obs(driver_log=driver))
    assert d.code == "exception" and d.title == "Training failed with ValueError on the driver"
    assert d.evidence[0].startswith("the driver: 26/11/24 14:22:10 WARN TaskSetManager: Lost task 0.0")


@pytest.mark.parametrize(
    "text",
    [
        # a traceback printed while nothing failed (a retried call, a warning)
        'Traceback (most recent call last):\n  File "x.py", line 1, in f\n    g()\nConnectionResetError: [Errno 104]\n',
        # printed at interpreter exit
        "Exception ignored in: <function AtomicFunction.__del__ at 0x7f>\nTraceback (most recent call last):\n"
        "  File \"polymorphic_function.py\", line 1, in __del__\nTypeError: 'NoneType' object is not callable\n"
        "26/11/24 14:22:10 WARN TaskSetManager: Lost task 1.0 in stage 2.0 (TID 5): TaskKilled (Stage finished)\n",
        # a Java stack trace is no Python exception
        "26/11/24 14:21:52 ERROR ServerRuntime$Responder: Error while closing the output stream in order to commit "
        "response.\njava.io.UncheckedIOException: org.sparkproject.jetty.io.EofException: Broken pipe\n",
    ],
)
def test_tracebacks_that_failed_nothing_are_no_diagnosis(text):
    assert diagnose(obs(executor_logs={"0": text}, driver_log=text)) is None


def test_resource_exhausted_advice():
    stderr = (
        "26/11/24 16:01:44 ERROR Executor: Exception in task 0.0 in stage 0.0 (TID 0)\n"
        "Traceback (most recent call last):\n"
        '  File "./jobs.zip/workers/jobs/train.py", line 178, in main_fun\n'
        "tensorflow.python.framework.errors_impl.ResourceExhaustedError: OOM when allocating tensor with "
        "shape[4096,1024]\n"
    )
    d = diagnose(obs(executor_logs={"0": stderr}))
    assert d.title == "Training failed with ResourceExhaustedError on executor 0"
    assert "lower batch_size" in d.advice


# --- executors lost --------------------------------------------------------------------------------

KILLED_DRIVER = f"""\
[sparkdeck driver +30.9s] TF cluster reserved
26/11/24 14:22:55 INFO StandaloneAppClient$ClientEndpoint: Executor updated: {APP}/0 is now EXITED (Command exited with code 137)
26/11/24 14:22:55 INFO StandaloneSchedulerBackend: Executor {APP}/0 removed: Command exited with code 137
26/11/24 14:22:55 ERROR TaskSchedulerImpl: Lost executor 0 on 127.0.0.1: Command exited with code 137
26/11/24 14:22:55 WARN TaskSetManager: Lost task 0.0 in stage 0.0 (TID 0) (127.0.0.1 executor 0): ExecutorLostFailure (executor 0 exited caused by one of the running tasks) Reason: Command exited with code 137
26/11/24 14:22:55 ERROR TaskSetManager: Task 0 in stage 0.0 failed 1 times; aborting job
26/11/24 14:22:55 INFO TaskSchedulerImpl: Killing all running tasks in stage 0: Job aborted due to stage failure: Task 0 in stage 0.0 failed 1 times, most recent failure: Lost task 0.0 in stage 0.0 (TID 0) (127.0.0.1 executor 0): ExecutorLostFailure (executor 0 exited caused by one of the running tasks) Reason: Command exited with code 137
Traceback (most recent call last):
  File "/work/main/workers/jobs/driver.py", line 292, in _wait_for_tf_nodes
    raise RunFailed(reason(tf_status["error"]))
RunFailed: An error occurred while calling z:org.apache.spark.api.python.PythonRDD.collectAndServe.
SPARKDECK_ERROR=An error occurred while calling z:org.apache.spark.api.python.PythonRDD.collectAndServe.
"""


def test_killed_executor():
    d = diagnose(obs(driver_log=KILLED_DRIVER))
    assert d.code == "executor_lost" and d.fatal
    assert d.title == "Executor 0 was lost: it was killed"
    assert "exit code 137" in d.cause
    assert (
        "26/11/24 14:22:55 WARN TaskSetManager: Lost task 0.0 in stage 0.0 (TID 0) (127.0.0.1 executor 0): "
        "ExecutorLostFailure (executor 0 exited caused by one of the running tasks) Reason: Command exited with code 137"
    ) in d.evidence
    assert len(d.evidence) == 3  # one line of each kind, not every message that repeats it
    assert "more memory" in d.advice


def test_java_out_of_memory_in_an_executor():
    stderr = (
        "26/11/24 16:10:01 ERROR Executor: Exception in task 0.0 in stage 0.0 (TID 0)\n"
        "java.lang.OutOfMemoryError: Java heap space\n\tat java.base/java.util.Arrays.copyOf(Arrays.java:3537)\n"
    )
    d = diagnose(obs(executor_logs={"1": stderr}))
    assert d.code == "executor_lost"
    assert d.title == "Executor 1 was lost: its JVM ran out of memory"
    assert "executor 1: java.lang.OutOfMemoryError: Java heap space" in d.evidence


def test_removed_executor_from_the_rest_api():
    d = diagnose(obs(executors=rest(1, removed={"1": "Executor heartbeat timed out after 121000 ms"})))
    assert d.code == "executor_lost"
    assert "Spark REST API: executor 1 removed: Executor heartbeat timed out after 121000 ms" in d.evidence
    assert "heartbeats" in d.cause


def test_yarn_memory_kill():
    line = (
        "24/05/01 10:00:00 ERROR YarnScheduler: Lost executor 2 on node7: Container killed by YARN for exceeding "
        "memory limits. 4.5 GB of 4.4 GB physical memory used. Consider boosting spark.executor.memoryOverhead."
    )
    d = diagnose(obs(driver_log=line))
    assert d.title == "Executor 2 was lost: YARN killed it for using more memory than it asked for"
    assert line in d.evidence and "more memory" in d.advice


def test_a_lost_executor_beats_the_exceptions_it_causes():
    d = diagnose(obs(driver_log=KILLED_DRIVER, executor_logs={"1": OPTIMIZER_STDERR}))
    assert d.code == "executor_lost"


# --- driver gone -----------------------------------------------------------------------------------


def test_driver_gone_shows_the_last_driver_lines():
    d = diagnose(
        obs(driver_log=HEALTHY_DRIVER.split("[sparkdeck driver +18.9s]")[0], driver_gone="driver process vanished")
    )
    assert d.code == "driver_gone" and d.fatal
    assert d.title == "The driver process is gone"
    assert "driver process vanished" in d.cause
    assert "2026-11-24 14:20:04,836 INFO (MainThread-14146) all reservations completed" in d.evidence


def test_evidence_is_bounded():
    long_line = "26/11/24 14:22:55 ERROR TaskSchedulerImpl: Lost executor 0 on 127.0.0.1: " + "x" * 5000
    d = diagnose(obs(driver_log=long_line))
    assert all(len(line) <= 300 for line in d.evidence)
    d = diagnose(obs(driver_log="\n".join(["x"] * 5000), driver_gone="driver process vanished"))
    assert len(d.evidence) <= 12


# --- a TF node's Python worker killed (real recordings) ---------------------------------------------

RECORDINGS = Path(__file__).parent / "recordings" / "python_worker_killed"
# folder -> (the executor whose Python worker was killed, the survivor)
KILLED = {
    "exec0_chief": ("0", "1"),
    "exec1_chief": ("1", "0"),
    "exec1_worker": ("1", "0"),
    "exec1_worker_and_children": ("1", "0"),
    "exec1_worker_heartbeats": ("1", "0"),
}


def recording(name: str) -> tuple[str, dict[str, str]]:
    folder = RECORDINGS / name
    logs = {p.parent.name: p.read_text() for p in (folder / "executors").glob("*/stderr")}
    return (folder / "driver.log").read_text(), logs


def assert_names_the_killed_executor(d, victim, survivor):
    assert d.code == "worker_died" and d.fatal
    assert d.title == f"Executor {victim}'s Python worker died: it was killed or crashed"
    assert f"on executor {victim} ended during training" in d.cause
    assert "killed by a signal" in d.cause and "SIGKILL" in d.cause
    assert "hyperparameter" not in d.advice and "resubmit the run" in d.advice
    assert f"executor {survivor}'s" not in (d.title + d.cause).lower()


@pytest.mark.parametrize("name", sorted(KILLED))
def test_killed_python_worker_names_its_executor(name):
    victim, survivor = KILLED[name]
    driver, executors = recording(name)
    d = diagnose(obs(driver_log=driver, executor_logs=executors))
    assert_names_the_killed_executor(d, victim, survivor)
    if name != "exec1_worker_and_children":  # inferred from the survivor's error: it is named as a consequence
        assert f"Executor {survivor} then failed because it could not reach it" in d.cause
        assert "a consequence, not the cause" in d.cause
        assert any(line.startswith(f"executor {survivor}: ") and "UnavailableError" in line for line in d.evidence)
        assert any(line.startswith("TF node ") and line.endswith(f"ran on executor {victim}") for line in d.evidence)
    else:  # Spark saw the worker go
        assert any("Python worker exited unexpectedly (crashed)" in line for line in d.evidence)
    assert any(line.startswith(f"executor {victim}: ") and "[sparkdeck] fit:" in line for line in d.evidence)


@pytest.mark.parametrize("name", sorted(KILLED))
def test_killed_python_worker_from_one_log_alone(name):
    """Before any executor log was copied (the driver's log), or without the driver's (executor logs)."""
    victim, survivor = KILLED[name]
    driver, executors = recording(name)
    assert_names_the_killed_executor(diagnose(obs(driver_log=driver)), victim, survivor)
    assert_names_the_killed_executor(diagnose(obs(executor_logs=executors)), victim, survivor)


@pytest.mark.parametrize("name", sorted(KILLED))
def test_tf_node_table_from_the_driver_and_from_the_executors_agree(name):
    driver, executors = recording(name)
    from_driver, from_executors = tf_nodes(driver, {}), tf_nodes("", executors)
    assert from_driver == from_executors and len(from_driver) == 2
    assert {n.name for n in from_driver.values()} == {"chief:0", "worker:0"}
    assert {n.executor for n in from_driver.values()} == {"0", "1"}


def test_unknown_peer_address_names_no_executor():
    """The survivor's log alone: its error names an address no known TF node has."""
    _driver, executors = recording("exec1_chief")
    d = diagnose(obs(executor_logs={"0": executors["0"]}))
    assert d.code == "worker_died"
    assert d.title == "A TF node's Python worker died: it was killed or crashed"
    assert "(127.0.0.1:43133)" in d.cause and "Executor 0 then failed" in d.cause
    assert "hyperparameter" not in d.advice


def test_a_root_cause_beats_the_peer_errors_it_causes():
    """Executor 1 raised an error of its own: executor 0's collective error, naming executor 1's TF node,
    is its consequence, whatever the executors' ids."""
    _driver, executors = recording("exec1_chief")
    own = executors["1"] + OPTIMIZER_STDERR
    d = diagnose(obs(executor_logs={"0": executors["0"], "1": own}))
    assert d.code == "exception"
    assert d.title == "Training failed with ValueError on executor 1"
    assert "hyperparameter" in d.advice


def test_the_first_task_to_fail_of_its_own_error_wins():
    later = OPTIMIZER_STDERR.replace("26/11/24 14:22:09", "26/11/24 14:22:15")
    d = diagnose(obs(executor_logs={"0": later, "1": OPTIMIZER_STDERR.replace("(TID 0)", "(TID 1)")}))
    assert d.title == "Training failed with ValueError on executor 1"


def test_a_peer_error_without_an_address_is_no_hyperparameter_problem():
    stderr = (
        "26/11/24 16:01:44 ERROR Executor: Exception in task 0.0 in stage 0.0 (TID 0)\n"
        "Traceback (most recent call last):\n"
        '  File "/x/tf_keras/src/engine/training.py", line 1398, in train_function\n'
        "tensorflow.python.framework.errors_impl.CancelledError: Collective ops is aborted by: another "
        "collective op failed\n"
    )
    d = diagnose(obs(executor_logs={"0": stderr}))
    assert d.code == "exception"
    assert d.title == "A TF node stopped answering: executor 0 failed on it with CancelledError"
    assert "hyperparameter" not in d.advice and "consequence" in d.advice


@pytest.mark.parametrize("name", sorted(KILLED))
def test_failure_reason_names_the_killed_executor(name):
    victim, _survivor = KILLED[name]
    driver, _executors = recording(name)
    reason, detail = failure_reason(driver.splitlines(), 1)
    assert reason == f"Executor {victim}'s Python worker died: it was killed or crashed"
    assert detail and "executor" in detail


def test_failure_reason_keeps_the_drivers_own_error():
    lines = ["Traceback (most recent call last):", "ValueError: inner", "SPARKDECK_ERROR=Dataset has 1 class"]
    assert failure_reason(lines, 1)[0] == "Dataset has 1 class"


def test_failure_reason_of_a_killed_executor_jvm():
    """The driver's SPARKDECK_ERROR is py4j's wrapper: the lost executor says more."""
    assert failure_reason(KILLED_DRIVER.splitlines(), 1)[0] == "Executor 0 was lost: it was killed"
