"""The TFoS map function ``main_fun(args, ctx)``: runs once on every executor.

TFoS makes executor 0 the ``chief`` and the others ``worker``s and exports TF_CONFIG; we train
with MultiWorkerMirroredStrategy (synchronous all-reduce, so every worker must run the same
number of steps). ``args`` is ``{"spec": <spec dict>}``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time

from workers.jobs import loopback, malloc_env, reservation_poll

# Executors import this module while unpickling the TFoS task, before TFoS's _mapfn asks
# util.get_ip_address() for the address to register: patch it now (no-op unless a bind host is set).
loopback.apply()
reservation_poll.apply()  # and before it waits for the other nodes' reservations

MODEL_FILE = "model.keras"
STATS_FILE = "train_stats.json"


def emit(line: str) -> None:
    """One line to stderr in ONE write: the JVM copies the Python worker's stdout and stderr with
    two threads, so print()'s separate newline could land after Keras's progress line."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def log(msg: str) -> None:
    # TFoS's own log-line time format: one clock for both in the executor log (and the run page's
    # log freshness figure, bench/freshness.py, reads it).
    now = time.time()
    emit(f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(now))},{int(now * 1000) % 1000:03d} [sparkdeck] {msg}")


def model_path(artifact_dir: str) -> str:
    return os.path.join(artifact_dir, "model", MODEL_FILE)


class TFArgs(dict):
    """main_fun's ``args``: a dict TFoS can also read by attribute (it reads ``tf_args.num_gpus``)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def tf_args(spec: dict, task_gpus: float, cores: int = 0) -> TFArgs:
    """The args TFoS hands main_fun. Without Spark GPUs, TFoS would pick a free GPU itself with
    nvidia-smi on a GPU host, behind Spark's back (and a GPU run's): num_gpus=0 stops that.
    ``cores``: the executor's cores (spark.executor.cores), TF's op threads in main_fun."""
    args = TFArgs(spec=spec, cores=int(cores or 0))
    if not task_gpus:
        args["num_gpus"] = 0
    return args


def assigned_gpus() -> list[str]:
    """GPU addresses Spark assigned to this task; [] outside Spark or without GPU scheduling."""
    if "pyspark" not in sys.modules:  # not in a Spark Python worker: nothing was assigned
        return []
    try:
        from pyspark import TaskContext

        task = TaskContext.get()
        resources = (task.resources() if task is not None else None) or {}
        return list(resources["gpu"].addresses) if "gpu" in resources else []
    except Exception:  # a report line must never fail training
        return []


def gpu_line(executor_id, tf) -> str:
    """The one line per executor that shows which GPUs it got and which TensorFlow sees."""
    tf_gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    cuda = os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>") or "''"  # '' = TFoS hid every GPU
    return (
        f"SPARKDECK_GPU executor={executor_id} assigned={assigned_gpus()} CUDA_VISIBLE_DEVICES={cuda} tf_gpus={tf_gpus}"
    )


def step_timer(keras, executor_id, epochs: int):
    """A Callback printing wall time per step for each epoch (epoch 1 includes tracing)."""

    class StepTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.ms_per_step: list[float] = []

        def on_epoch_begin(self, epoch, logs=None):
            self.steps = 0
            self.t0 = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.steps += 1

        def on_epoch_end(self, epoch, logs=None):
            seconds = time.perf_counter() - self.t0
            ms = 1000.0 * seconds / max(1, self.steps)
            self.ms_per_step.append(round(ms, 2))
            emit(
                f"SPARKDECK_STEP executor={executor_id} epoch={epoch + 1}/{epochs} steps={self.steps} "
                f"seconds={seconds:.2f} ms_per_step={ms:.1f} at={time.time():.3f}"
            )

    return StepTimer()


def limit_op_threads(tf, cores: int) -> None:
    """One thread per core Spark gave this executor for TF's ops: by default TF sizes its pool to
    the whole machine, so executors sharing a host each run as many threads as it has cores and
    fight over them (and over the cores of whatever else Spark placed there)."""
    if cores <= 0:
        return
    try:
        tf.config.threading.set_intra_op_parallelism_threads(cores)
        log(f"TF op threads: {cores} (spark.executor.cores)")
    except RuntimeError as e:  # TF's runtime already started in this process: keep its pool
        log(f"TF op threads left as they are: {e}")


def validation_rows(spec, workers: int, path: str | None = None):
    """The training file's (``path``, default the spec's) rows the run holds out for validation (a
    bool mask by position), or None: validation_split 0, or fewer validation rows than workers
    (each needs one to evaluate)."""
    from workers.jobs import data

    fraction = float(spec.hyperparameters.get("validation_split", 0) or 0)
    rows = data.validation_mask(path or spec.dataset.train, spec.dataset.num_classes, fraction, spec.seed)
    if rows is not None and int(rows.sum()) < workers:
        log(f"validation off: {int(rows.sum())} validation rows for {workers} workers")
        return None
    return rows


def main_fun(args, ctx):
    os.environ["TF_USE_LEGACY_KERAS"] = "1"  # before TF loads in this process
    # Spark's GPU addresses are nvidia-smi indices (PCI bus order); CUDA's default order is
    # "fastest first", so without this CUDA_VISIBLE_DEVICES=1 may pick another physical GPU.
    os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    from workers.jobs import data, metrics, prune, tbevents, templates, tfdata_teardown
    from workers.jobs.spec import parse_spec

    spec = parse_spec(args["spec"])
    hp = spec.hyperparameters
    shape = spec.dataset.shape
    import tensorflow as tf
    import tf_keras

    log(f"executor {ctx.executor_id} = {ctx.job_name}:{ctx.task_index}, input_mode={spec.input_mode}")
    log(f"devices: {tf.config.list_physical_devices()}")
    # TFoS has set CUDA_VISIBLE_DEVICES from the task's GPU addresses before calling us.
    emit(gpu_line(ctx.executor_id, tf))
    log(f"TF_CONFIG: {os.environ.get('TF_CONFIG')}")
    log("malloc: " + " ".join(f"{k}={os.environ.get(k, '<unset>')}" for k in sorted(malloc_env.MALLOC_ENV)))

    limit_op_threads(tf, int(args.get("cores") or 0))
    # Must exist before any other TF op: it configures the collective ops for this process.
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    workers = strategy.num_replicas_in_sync
    is_chief = ctx.job_name == "chief"
    tf_keras.utils.set_random_seed(spec.seed)

    batch = data.per_replica_batch(hp.batch_size, workers)
    # The validation rows: carved from the training split, the same on every worker (and in the
    # driver's feed), never trained on; the test split stays untouched until inference.
    val_rows = validation_rows(spec, workers)
    train_rows = None if val_rows is None else ~val_rows
    total_rows = data.num_rows(spec.dataset.train) if train_rows is None else int(train_rows.sum())
    # Identical on every worker whatever its shard size: shards repeat, so none runs dry.
    one_pass = data.steps_per_epoch(total_rows, batch * workers)
    steps = int(hp.get("steps_per_epoch", 0) or 0) or one_pass
    if spec.input_mode == "spark" and steps > one_pass:
        # The feed holds epochs+1 passes: more steps would run a worker dry and hang the all-reduce.
        log(f"steps_per_epoch {steps} capped at {one_pass} (one pass over the fed data)")
        steps = one_pass

    feed = None
    if spec.input_mode == "tensorflow":
        x, y, _ = data.read_arrays(spec.dataset.train, shape, ctx.executor_id, workers, rows=train_rows)
        log(f"shard {ctx.executor_id}/{workers}: {len(x)} of {total_rows} rows")

        def make_ds(_input_ctx):
            return data.shard_dataset(x, y, batch, spec.seed + ctx.executor_id)
    else:
        feed = ctx.get_data_feed(train_mode=True)

        def make_ds(_input_ctx):
            return data.feed_dataset(feed, shape, batch)

    if not tfdata_teardown.disable_device_autotune():
        log("tf.data: per-device autotune left on (this TensorFlow lacks the hook); fit may end late")
    dataset = strategy.distribute_datasets_from_function(make_ds)
    validation = {}
    if val_rows is not None:
        xv, yv, _ = data.read_arrays(spec.dataset.train, shape, ctx.executor_id, workers, rows=val_rows)
        n_val = int(val_rows.sum())
        # Every worker evaluates its shard, in as many steps as the largest shard needs (the
        # evaluation's all-reduce runs in lockstep too): a smaller shard repeats a few rows.
        validation = {
            "validation_data": strategy.distribute_datasets_from_function(
                lambda _input_ctx: data.eval_dataset(xv, yv, batch)
            ),
            "validation_steps": data.steps_per_epoch(n_val, batch * workers),
        }
        log(f"validation: {len(xv)} of {n_val} held-out rows on this worker, {validation['validation_steps']} steps")
    with strategy.scope():
        model = templates.build(spec.template, shape, spec.dataset.num_classes, hp, base=spec.base)
    # Batch-level logs under MWMS default to the SUM over workers (loss/accuracy x N in the
    # metrics) and cost a collective per step; "first" gives this worker's own running values.
    # Epoch-end logs are read from the synchronized metrics either way.
    model.distribute_reduction_method = "first"

    poster = metrics.MetricsPoster(
        spec.metrics.url,
        spec.metrics.token,
        str(ctx.executor_id),
        pending_dir=metrics.pending_dir(spec.artifact_dir),
        close_seconds=spec.metrics.close_seconds,
    )
    timer = step_timer(tf_keras, ctx.executor_id, hp.epochs)
    # The validation metrics are all-reduced, the same on every worker: the chief posts them.
    callbacks = [metrics.make_callback(poster, spec.metrics.every_steps, validation=is_chief), timer]
    pruner = None
    if spec.metrics.prune is not None:
        # On every node, after the metrics callback (the epoch's points are queued first): all nodes
        # get the same decision, so all leave fit() after the same epoch.
        p = spec.metrics.prune
        asker = prune.EpochAsker(p.url, spec.metrics.token, str(ctx.executor_id), wait_seconds=p.wait_seconds)
        pruner = prune.make_callback(asker, p.objective)
        callbacks.append(pruner)
    if is_chief:
        poster.add("steps_per_epoch", steps, 0, 1)  # the run page's step progress and ETA (docs/monitoring.md)
        board = tbevents.safe_callback(
            tf_keras, tf, tbevents.log_dir(spec.artifact_dir), lambda _e: {"epoch_ms_per_step": timer.ms_per_step[-1]}
        )
        if board is not None:  # chief only: the other workers' summaries would be the same numbers
            callbacks.append(board)
    log(f"fit: {hp.epochs} epochs x {steps} steps, batch {batch}/replica x {workers} replicas")
    t0 = time.time()
    history = model.fit(dataset, epochs=hp.epochs, steps_per_epoch=steps, callbacks=callbacks, verbose=2, **validation)
    fit_seconds = time.time() - t0
    log(f"fit done in {fit_seconds:.1f} s; posted {poster.posted} metric points")

    if is_chief:  # before the model: the driver waits for the model, then reads these
        stats = {
            "fit_seconds": round(fit_seconds, 3),
            "steps_per_epoch": steps,
            "epochs": hp.epochs,
            "per_replica_batch": batch,
            "workers": workers,
            "ms_per_step": timer.ms_per_step,  # per epoch, on the chief
            "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
            "epochs_run": len(history.epoch),
            "pruned_at_epoch": pruner.stopped_at if pruner is not None else None,
        }
        _write_json(os.path.join(spec.artifact_dir, STATS_FILE), stats)
    _save(model, spec.artifact_dir, is_chief)
    if feed is not None and not feed.should_stop():
        feed.terminate()  # skip the padding partitions the driver still feeds (see driver.py)


def _save(model, artifact_dir: str, is_chief: bool) -> None:
    # MWMS pattern: every worker saves (saving may run collectives), only the chief's copy is kept.
    if not is_chief:
        tmp = tempfile.mkdtemp(prefix="sparkdeck-worker-model-")
        try:
            model.save(os.path.join(tmp, MODEL_FILE))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return
    dest = model_path(artifact_dir)
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    tmp = os.path.join(os.path.dirname(dest), f".tmp-{os.getpid()}-{MODEL_FILE}")
    model.save(tmp)
    os.replace(tmp, dest)  # the driver waits for this name: it must appear complete
    log(f"chief exported {dest}")


def _write_json(path: str, obj) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2)
    os.replace(tmp, path)
