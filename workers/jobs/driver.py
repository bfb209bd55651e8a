"""spark-submit entry point: ``driver.py --spec /abs/spec.json``.

Trains with a TFoS cluster (one TF node per executor, chief = executor 0), runs inference with
plain Spark, writes ``<artifact_dir>/result.json``. Prints ``SPARKDECK_APP_ID=`` as soon as the
SparkContext exists and ``SPARKDECK_UI_URL=`` once the UI's REST API has answered (announce_ui);
on any failure prints the traceback and a last line ``SPARKDECK_ERROR=<reason>`` and exits
non-zero. Imports nothing outside workers/jobs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request

if __name__ == "__main__" and not __package__:
    # Run as a script: the package comes from --py-files (jobs.zip) or, failing that, this checkout.
    try:
        import workers.jobs  # noqa: F401
    except ImportError:
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from workers.jobs import data, jvm_opts, loopback, malloc_env, templates  # noqa: E402
from workers.jobs.spec import RunSpec, ScoreSpec, load_any  # noqa: E402


class RunFailed(RuntimeError):
    """A failure whose message is already the one-line reason to report."""


def _line(text: str) -> None:
    # One write per line: announce_ui's thread prints too, and print() writes the newline apart.
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def say(key: str, value) -> None:
    _line(f"{key}={value}")


_T0 = time.time()


def log(msg: str) -> None:
    _line(f"[sparkdeck driver +{time.time() - _T0:.1f}s] {msg}")


# Spark's REST API starts Jersey on its first request, which can take many seconds on a busy host
# (docs/monitoring.md); this one request waits for it, however long, up to this.
UI_READY_TIMEOUT = 120.0


def announce_ui(ui_url: str | None, app_id: str, timeout: float = UI_READY_TIMEOUT) -> threading.Thread | None:
    """Print ``SPARKDECK_UI_URL=`` once the UI's REST API has answered one request, from a daemon
    thread: training does not wait. Sparkdeck's pollers (watchdog, executor-log copier, resource
    sampler) find the UI through that line, so they never meet the cold API, give up on it and
    leave Jetty a broken pipe to log. Printed after `timeout` or an error too (the pollers cope
    with a UI that does not answer); at once when the UI is off."""
    if not ui_url:
        say("SPARKDECK_UI_URL", ui_url)
        return None

    def wait() -> None:
        t0 = time.time()
        url = f"{ui_url.rstrip('/')}/api/v1/applications/{app_id}/allexecutors"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # the UI is local: no proxy
        outcome = "answered"
        try:
            with opener.open(url, timeout=timeout) as resp:
                resp.read()
        except urllib.error.HTTPError as exc:  # an answer all the same
            with contextlib.suppress(OSError), exc:
                exc.read()
        except (OSError, ValueError) as exc:
            outcome = f"did not answer ({type(exc).__name__})"
        log(f"Spark UI REST API {outcome} after {time.time() - t0:.1f} s")
        say("SPARKDECK_UI_URL", ui_url)

    thread = threading.Thread(target=wait, name="sparkdeck-ui-ready", daemon=True)
    thread.start()
    return thread


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Sparkdeck TFoS training driver")
    parser.add_argument("--spec", required=True, help="absolute path of the run's spec.json")
    args = parser.parse_args(argv)
    sc = None
    failure = None
    try:
        spec = load_any(args.spec)
        os.environ["TF_USE_LEGACY_KERAS"] = "1"  # Keras 3 breaks TFoS+MWMS; driver too
        if isinstance(spec, RunSpec):
            templates.check(spec.template, spec.dataset.shape)  # refuse before starting anything
            _defer_tfos_tensorflow_import()  # before anything imports tensorflowonspark.TFNode
        loopback.configure_driver(spec.bind_host)
        sc = _spark_context(spec)
        say("SPARKDECK_APP_ID", sc.applicationId)
        announce_ui(sc.uiWebUrl, sc.applicationId)
        log(f"Spark application {sc.applicationId} started")
        result = run_score(sc, spec) if isinstance(spec, ScoreSpec) else run(sc, spec)
        say("SPARKDECK_RESULT", json.dumps(result, sort_keys=True))
    except BaseException as e:  # SystemExit too: TFoS calls sys.exit(1) on node errors/timeouts
        traceback.print_exc(file=sys.stdout)
        failure = reason(e)
    finally:
        if sc is not None:
            _stop(sc)
    if failure is not None:
        say("SPARKDECK_ERROR", failure)  # last, after Spark's own shutdown logging
        return 1
    return 0


def _spark_context(spec: RunSpec | ScoreSpec):
    # A bare SparkContext: a SparkSession costs ~3 s more and only SPARK input mode needs one.
    from pyspark import SparkConf, SparkContext

    # Connect to spark-submit's JVM first: a SparkConf made before that is Python-only, does not
    # see spark-submit's --conf (the cluster's own settings), and what it sets would override them.
    SparkContext._ensure_initialized()
    conf = SparkConf()  # holds what spark-submit was given; never override that
    conf.setAppName(spec.app_name)
    apply_defaults(conf, spec)
    slots = int(conf.get("spark.executor.cores", "1")) // int(conf.get("spark.task.cpus", "1"))
    if slots > 1:
        # Two TF nodes on one executor collide in TFoS ("TFManager already started").
        log(f"WARNING: {slots} task slots per executor; TFoS needs one (spark.task.cpus = spark.executor.cores)")
    return SparkContext.getOrCreate(conf)


def apply_defaults(conf, spec: RunSpec | ScoreSpec) -> None:
    """Sparkdeck's application settings, each only where spark-submit (the cluster's own Spark
    settings and executor env) has not set it."""
    defaults = {
        # A failed TF node must fail the run: a retry cannot rejoin the TF cluster.
        "spark.task.maxFailures": "1",
        "spark.executorEnv.TF_USE_LEGACY_KERAS": "1",
        # SPARK input mode runs TF in a process forked by a reused Python worker.
        "spark.python.worker.reuse": "true",
        # No task here gains from locality; waiting for a "preferred" executor (the one that
        # cached a feed partition) would only stall the lockstep TF workers.
        "spark.locality.wait": "0s",
        # The Python workers' memory (where TensorFlow runs) in the executors' heartbeat metrics,
        # which the run page's Resources charts sample (docs/monitoring.md); reads /proc, Linux only.
        "spark.executor.processTreeMetrics.enabled": "true",
    }
    # TF's step time on CPU: freed tensors stay in the Python worker instead of being faulted
    # back in every step (malloc_env.py); a cluster's own spark.executorEnv.MALLOC_* wins.
    defaults.update(malloc_env.spark_defaults())
    # C1 only in TENSORFLOW mode, where the executors' JVM only starts Python, and the class-data
    # archive the submitting worker passed (jvm_opts.py).
    mode = getattr(spec, "input_mode", "spark")  # a scoring job's executors run Spark SQL: the JVM works
    executor_opts = jvm_opts.executor_java_opts(mode, conf.get(jvm_opts.EXECUTOR_OPTS_CONF, ""))
    if executor_opts:
        defaults["spark.executor.extraJavaOptions"] = executor_opts
    if spec.bind_host:
        defaults["spark.executorEnv.SPARKDECK_BIND_HOST"] = spec.bind_host
    for key, value in defaults.items():
        conf.setIfMissing(key, value)


def run(sc, spec: RunSpec) -> dict:
    from workers.jobs import featurize, inference
    from workers.jobs.train import STATS_FILE, model_path

    os.makedirs(os.path.join(spec.artifact_dir, "model"), exist_ok=True)
    t0 = time.time()
    if templates.mllib_head(spec.template, spec.hyperparameters):
        from workers.jobs import mllib

        out = mllib.mlp_head(spec)
        out["train_seconds"] = round(time.time() - t0, 3)
        log(f"MLlib head trained in {out['train_seconds']:.1f} s ({out['iterations']} iterations)")
    elif spec.template in templates.PIPELINES:
        out = featurize.run(sc, spec, train_and_wait, log)
        out["train_seconds"] = round(time.time() - t0, 3)  # featurizing + the head
        featurize.export_model(sc, spec, out)
    else:
        model_file = model_path(spec.artifact_dir)
        out = train_and_wait(sc, spec, model_file, os.path.join(spec.artifact_dir, STATS_FILE))
        timing = f"fit {out.get('fit_seconds')} s, ms/step per epoch {out.get('ms_per_step')}"
        if out.get("pruned_at_epoch"):
            # A stopped trial gives its executors back now: its test split is never scored.
            log(f"trained in {out['train_seconds']:.1f} s ({timing}); stopped by the sweep's pruner, no inference")
            out["model"] = model_file
            return _finish(sc, spec, t0, out)
        log(f"trained in {out['train_seconds']:.1f} s ({timing}); inference")
        t1 = time.time()
        out.update(
            inference.run_inference(
                sc,
                spec.dataset.test,
                model_file,
                spec.dataset.shape,
                os.path.join(spec.artifact_dir, "predictions"),
                spec.cluster_size,
                num_classes=spec.dataset.num_classes,
            )
        )
        out["inference_seconds"] = round(time.time() - t1, 3)
        out["model"] = model_file
    return _finish(sc, spec, t0, out)


def run_score(sc, spec: ScoreSpec) -> dict:
    """A scoring job: the registered model over the dataset's rows (workers/jobs/score.py), no TFoS."""
    from pyspark.sql import SparkSession

    from workers.jobs import analysis, score

    t0 = time.time()
    out_dir = os.path.join(spec.artifact_dir, "predictions")
    os.makedirs(out_dir, exist_ok=True)
    spark = SparkSession(sc)
    summary = score.score(
        spark,
        list(spec.inputs),
        spec.model,
        spec.shape,
        out_dir,
        class_names=spec.class_names,
        top_k=spec.top_k,
        batch_size=spec.batch_size,
        rescale=spec.rescale,
    )
    scored = time.time() - t0
    log(f"scored {summary['rows']} rows in {scored:.1f} s ({summary['rows'] / max(scored, 1e-9):.0f} rows/s)")
    result = {
        "run_id": spec.run_id,
        "app_id": sc.applicationId,
        "kind": "score",
        "rows": summary["rows"],
        "labelled": summary["labelled"],
        "batch_size": spec.batch_size,
        "top_k": spec.top_k,
        "startup_seconds": round(t0 - _T0, 3),
        "score_seconds": round(scored, 3),
    }
    if summary["labelled"]:
        result.update(test_rows=summary["rows"], test_accuracy=summary["accuracy"])
        try:
            analysis.write_analysis(out_dir, len(spec.class_names) or None)
        except Exception as exc:  # noqa: BLE001 - the predictions are written; the web app analyses on first view
            log(f"WARNING: prediction analysis failed: {exc!r}")
    result["total_seconds"] = round(time.time() - _T0, 3)
    _write_json(os.path.join(spec.artifact_dir, "result.json"), result)
    return result


def _finish(sc, spec: RunSpec, t0: float, out: dict) -> dict:
    result = {
        "run_id": spec.run_id,
        "app_id": sc.applicationId,
        "template": spec.template,
        "input_mode": spec.input_mode,
        "cluster_size": spec.cluster_size,
        "epochs": spec.hyperparameters.epochs,
        "batch_size": spec.hyperparameters.batch_size,
        "startup_seconds": round(t0 - _T0, 3),  # driver start -> SparkContext ready
        **out,
    }
    result["total_seconds"] = round(time.time() - _T0, 3)  # the driver process, before Spark stops
    _write_json(os.path.join(spec.artifact_dir, "result.json"), result)
    return {k: v for k, v in result.items() if k != "history"}


def train_and_wait(sc, spec: RunSpec, model_file: str, stats_file: str) -> dict:
    """Train with a TFoS cluster until the chief has exported ``model_file``; return its stats."""
    for stale in (model_file, stats_file):  # the driver waits for these to appear
        if os.path.exists(stale):
            os.remove(stale)
    t0 = time.time()
    log(f"training {spec.template}: {spec.input_mode} input mode, {spec.cluster_size} TF nodes")
    train(sc, spec)
    _wait_for_file(model_file, spec.timeouts.shutdown)
    stats = _read_json(stats_file)
    return {
        "train_seconds": round(time.time() - t0, 3),  # TF cluster start -> model exported
        "fit_seconds": stats.get("fit_seconds"),
        "steps_per_epoch": stats.get("steps_per_epoch"),
        "ms_per_step": stats.get("ms_per_step"),  # the chief's, per epoch
        "history": stats.get("history", {}),
        "epochs_run": stats.get("epochs_run"),
        "pruned_at_epoch": stats.get("pruned_at_epoch"),
    }


def _defer_tfos_tensorflow_import() -> None:
    """TFoS's TFNode imports tensorflowonspark.compat, which imports TensorFlow (7+ s), yet the
    driver never calls into it: make that one module load lazily, on first attribute use."""
    import importlib.util

    name = "tensorflowonspark.compat"
    if name in sys.modules:
        return
    found = importlib.util.find_spec(name)
    if found is None or found.loader is None:
        return
    found.loader = importlib.util.LazyLoader(found.loader)
    module = importlib.util.module_from_spec(found)
    sys.modules[name] = module
    found.loader.exec_module(module)
    # Bind it on the package too: `from . import compat` then never touches the module (any
    # attribute access, even __spec__ during import, would load TensorFlow).
    import tensorflowonspark

    tensorflowonspark.compat = module


def train(sc, spec: RunSpec) -> None:
    from tensorflowonspark import TFCluster

    from workers.jobs import reservation_poll
    from workers.jobs.train import main_fun, tf_args, validation_rows

    reservation_poll.apply()

    spark_mode = spec.input_mode == "spark"
    mode = TFCluster.InputMode.SPARK if spark_mode else TFCluster.InputMode.TENSORFLOW
    feed = None
    if spark_mode:
        # Read, balance and cache the feed before the TF nodes start: fed from the cache, they
        # do not sit idle (and count it as fit time) while Spark plans and scans Parquet.
        from pyspark import StorageLevel
        from pyspark.sql import SparkSession

        spark = SparkSession.builder.getOrCreate()  # wraps the running context

        held_out = validation_rows(spec, spec.cluster_size)  # the executors evaluate on these instead
        rows = data.num_rows(spec.dataset.train) - (0 if held_out is None else int(held_out.sum()))
        parts = data.feed_partitions(rows, spec.cluster_size)
        feed = data.spark_feed_rdd(spark, spec.dataset.train, parts, exclude_rows=held_out)
        feed = feed.persist(StorageLevel.MEMORY_AND_DISK)
        log(f"feed RDD ready: {feed.count()} rows in {parts} partitions")
    timer = _train_timer(sc, spec.timeouts.train)
    try:
        try:
            cluster = TFCluster.run(
                sc,
                main_fun,
                tf_args(
                    spec.to_dict(),
                    float(sc.getConf().get("spark.task.resource.gpu.amount", "0") or 0),
                    int(sc.getConf().get("spark.executor.cores", "0") or 0),
                ),
                spec.cluster_size,
                num_ps=0,
                tensorboard=False,
                input_mode=mode,
                master_node="chief",
                reservation_timeout=spec.timeouts.reservation,
            )
        except Exception as e:
            if "timed out waiting for reservations" not in str(e):
                raise
            executors = sc._jsc.sc().getExecutorMemoryStatus().size() - 1  # minus the driver
            raise RunFailed(
                f"{spec.cluster_size} TF nodes did not all start within timeouts.reservation "
                f"({spec.timeouts.reservation} s); the application has {executors} executor(s): "
                f"it needs {spec.cluster_size} with one task slot each"
            ) from e
        log("TF cluster reserved")
        if spark_mode:
            # One padding epoch: Spark hands partitions to whichever executor is free, so a
            # worker may get a partition less than its peer. Workers stop after exactly
            # `epochs` epochs of steps and terminate() the feed; the rest is skipped.
            cluster.train(feed, num_epochs=spec.hyperparameters.epochs + 1, feed_timeout=spec.timeouts.feed)
        else:
            _wait_for_tf_nodes(sc, TFCluster.tf_status)
        log("TF nodes done; shutting the TF cluster down")
        _shutdown(sc, cluster, spec.timeouts.shutdown)
    except Exception as e:
        if timer is not None and timer.fired:
            raise RunFailed(f"training exceeded timeouts.train ({spec.timeouts.train} s)") from e
        raise
    finally:
        if timer is not None:
            timer.cancel()
        if feed is not None:
            try:
                feed.unpersist()
            except Exception:  # Spark may already be stopped; the real error is elsewhere
                pass
    if "error" in TFCluster.tf_status:
        raise RunFailed(reason(TFCluster.tf_status["error"]))


def _shutdown(sc, cluster, timeout: int) -> None:
    """What TFCluster.shutdown() does for a cluster without ps/evaluator nodes, once the nodes are
    done (both input modes wait for that before calling this), minus its closing poll: TFoS then
    sleeps 5 s before its first look for active jobs, though none can be left (5 s of every run).
    Stops the nodes' queues with TFoS's own shutdown task, fails on a late error, stops the
    reservation server."""
    from tensorflowonspark import TFCluster, TFSparkNode

    nodes = cluster.cluster_info
    if any(node["job_name"] in ("ps", "evaluator") for node in nodes):  # not what train() starts
        cluster.shutdown(timeout=timeout)
        signal.alarm(0)  # TFoS arms SIGALRM for `timeout` and never disarms it
        return
    workers = sc.parallelize(range(len(nodes)), len(nodes))
    workers.foreachPartition(TFSparkNode.shutdown(nodes, 0, cluster.queues))
    if "error" in TFCluster.tf_status:
        raise RunFailed(reason(TFCluster.tf_status["error"]))
    cluster.server.stop()


def _wait_for_tf_nodes(sc, tf_status: dict) -> None:
    # TENSORFLOW mode: TFoS's shutdown() would wait for training under its SIGALRM timeout, which
    # would then have to cover the whole training. Wait here instead; fail as soon as a node fails.
    tracker = sc.statusTracker()
    while tracker.getActiveJobsIds():
        if "error" in tf_status:
            break
        time.sleep(0.5)
    time.sleep(0.5)  # TFoS's thread records a failed job just after it ends
    if "error" in tf_status:
        raise RunFailed(reason(tf_status["error"]))


def _train_timer(sc, seconds):
    if not seconds:
        return None

    def fire():
        timer.fired = True
        sc.cancelAllJobs()

    timer = threading.Timer(seconds, fire)
    timer.fired = False
    timer.daemon = True
    timer.start()
    return timer


def _wait_for_file(path: str, timeout: float) -> None:
    # SPARK mode: the feed can end while the chief is still exporting the model.
    deadline = time.time() + timeout
    while not os.path.exists(path):
        if time.time() > deadline:
            raise RunFailed(f"the chief did not export {path} within {timeout} s after training")
        time.sleep(0.2)


_PY_EXC = re.compile(r"^\s*((?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*(?:Error|Exception|Exit|Interrupt)):(.*)$")
# Exceptions that only wrap the executor's own (Java side, Py4J, PySpark's re-raise).
_WRAPPERS = ("org.", "java.", "javax.", "scala.", "py4j.", "Py4J", "pyspark.", "PythonException")


def reason(err) -> str:
    """One line saying why: the innermost Python exception of an executor traceback if any."""
    if isinstance(err, SystemExit):  # TFoS's sys.exit(1): node error recorded, or its timeout
        status = getattr(sys.modules.get("tensorflowonspark.TFCluster"), "tf_status", {})
        if "error" in status:
            return reason(status["error"])
        return "TFoS stopped the application (TF nodes did not finish within timeouts.shutdown)"
    if isinstance(err, RunFailed):
        return _one_line(str(err))
    text = err if isinstance(err, str) else f"{type(err).__name__}: {err}"
    found = None
    for line in text.splitlines():
        m = _PY_EXC.match(line)
        if m and m.group(2).strip() and not m.group(1).startswith(_WRAPPERS):
            found = f"{m.group(1).rsplit('.', 1)[-1]}:{m.group(2)}"
    return _one_line(found or text)


def _one_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return re.sub(r"\s+", " ", lines[0] if lines else "unknown error")[:500]


def _stop(sc) -> None:
    try:
        sc.cancelAllJobs()
        sc.stop()
    except Exception as e:
        print(f"warning: stopping Spark failed: {e!r}", file=sys.stderr)


def _read_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _write_json(path: str, obj) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2)
    os.replace(tmp, path)


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # do not hang on TFoS's leftover threads
