"""Transfer learning: featurize images with a pretrained base in a distributed Spark job, then
train a classifier on the features (Deep Learning Pipelines' DeepImageFeaturizer + classifier).

Featurizing is plain Spark ``mapPartitions``: task i of n reads shard i of a split's Parquet
itself, builds the featurizer once, and writes ``features/<split>/part-<i>.parquet`` (same
columns as a dataset: row_id, label, features). The driver merges the parts into
``features/<split>.parquet`` so both heads read ordinary dataset files:

- ``logreg``: Spark MLlib LogisticRegression (multinomial) fitted on the driver's SparkSession.
- ``dense``: a Keras head trained with TFoS exactly like any other template (``dense_head``).
"""

from __future__ import annotations

import dataclasses
import functools
import glob
import json
import math
import os
import shutil
import subprocess
import sys
import time

FEATURE_DIR = "features"
MAX_SHARD_ROWS = 20000


def log(msg: str) -> None:
    print(f"[sparkdeck featurize] {msg}", file=sys.stderr, flush=True)


def featurize_shards(splits, base, shape, input_size, num_shards, shard_ids):
    """mapPartitions body: featurize shard i of every split ({name, path, out_dir}) in a child
    process; yield (split, shard, rows, feature dim).

    TensorFlow must not start in this Python worker: Spark reuses it for the dense head's TFoS
    node, whose MultiWorkerMirroredStrategy must configure TF's collective ops before any other
    TF use in the process ("Collective ops must be configured at program startup").
    """
    shards = list(shard_ids)
    if not shards:
        return
    job = {"splits": splits, "base": base, "shape": list(shape),
           "input_size": input_size, "num_shards": num_shards, "shards": shards}  # fmt: skip
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),  # includes the shipped jobs.zip
        "TF_USE_LEGACY_KERAS": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    argv = [sys.executable, "-m", "workers.jobs.featurize", json.dumps(job)]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True)
    sys.stderr.write(proc.stderr)  # into the executor's stderr log
    sys.stderr.flush()
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        raise RuntimeError(lines[-1] if lines else f"featurizer process exited with {proc.returncode}")
    for line in proc.stdout.splitlines():
        if line.startswith("SHARD "):
            yield tuple(json.loads(line[6:]))


def featurize_in_process(job: dict):
    """The child's work: yield (split, shard, rows, dim) after writing each shard's part file."""
    import numpy as np

    from workers.jobs import bases, data

    shape = tuple(job["shape"])
    base = job["base"]
    model = None
    for split in job["splits"]:
        for shard in job["shards"]:
            x, y, ids = data.read_arrays(split["path"], shape, shard, job["num_shards"])
            dim = 0
            if len(x):
                if model is None:  # only when there is something to featurize
                    model = bases.featurizer(base["kind"], base["path"], base["name"], shape, job["input_size"])
                feats = np.asarray(model.predict(x, batch_size=128, verbose=0), dtype=np.float32)
                dim = int(feats.shape[1])
                _write_part(os.path.join(split["out_dir"], f"part-{shard:05d}.parquet"), ids, y, feats)
            yield split["name"], shard, len(x), dim


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    t0 = time.time()
    for split, shard, rows, dim in featurize_in_process(json.loads(args[0])):
        print("SHARD " + json.dumps([split, shard, rows, dim]), flush=True)
        log(f"{split} shard {shard}: {rows} rows -> {dim} features ({time.time() - t0:.1f} s)")
    return 0


def _write_part(path, ids, labels, feats) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    values = pa.array(feats.reshape(-1), pa.float32())
    offsets = pa.array([i * feats.shape[1] for i in range(len(feats) + 1)], pa.int32())
    table = pa.table(
        {
            "row_id": pa.array(ids, pa.int64()),
            "label": pa.array(labels, pa.int64()),
            "features": pa.ListArray.from_arrays(offsets, values),
        }
    )
    tmp = f"{path}.tmp-{os.getpid()}"
    pq.write_table(table, tmp, row_group_size=1024)
    os.replace(tmp, path)


def featurize_splits(sc, spec, paths: dict, input_size: int) -> dict:
    """Featurize every split ({name: Parquet path}) in one Spark job across the executors (one
    child process, one base model per task); return {name: (merged Parquet path, rows, dim)}."""
    from workers.jobs import data

    rows = {name: data.num_rows(path) for name, path in paths.items()}
    shards = max(1, spec.cluster_size, math.ceil(max(rows.values()) / MAX_SHARD_ROWS))
    splits = []
    for name, path in paths.items():
        part_dir = os.path.join(spec.artifact_dir, FEATURE_DIR, name)
        shutil.rmtree(part_dir, ignore_errors=True)
        os.makedirs(part_dir, exist_ok=True)
        splits.append({"name": name, "path": path, "out_dir": part_dir})
    base = dataclasses.asdict(spec.base)
    fn = functools.partial(featurize_shards, splits, base, tuple(spec.dataset.shape), input_size, shards)
    done = sc.parallelize(range(shards), shards).mapPartitions(fn).collect()
    out = {}
    for split in splits:
        name = split["name"]
        got = sum(n for s, _, n, _ in done if s == name)
        if got != rows[name]:
            raise RuntimeError(f"featurizing {name} returned {got} rows for {rows[name]}")
        dims = {d for s, _, n, d in done if s == name and n}
        if len(dims) != 1:
            raise RuntimeError(f"featurizing {name}: shards disagree on the feature size {sorted(dims)}")
        merged = os.path.join(spec.artifact_dir, FEATURE_DIR, f"{name}.parquet")
        _merge(sorted(glob.glob(os.path.join(split["out_dir"], "part-*.parquet"))), merged)
        shutil.rmtree(split["out_dir"], ignore_errors=True)
        out[name] = (merged, rows[name], dims.pop())
    return out


def _merge(parts, dest) -> None:
    import pyarrow.parquet as pq

    tmp = f"{dest}.tmp-{os.getpid()}"
    writer = None
    try:
        for part in parts:
            table = pq.read_table(part)
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table, row_group_size=1024)
    finally:
        if writer is not None:
            writer.close()
    os.replace(tmp, dest)


def run(sc, spec, train_fn, log_fn=log) -> dict:
    """Featurize, train the chosen head, predict the test split. ``train_fn(sc, spec)`` is the
    driver's TFoS training (dense head). Returns the result fields for result.json."""
    from workers.jobs import bases

    if spec.base is None:
        raise bases.BaseError("the featurizer template needs a base model (spec.base)")
    hp = spec.hyperparameters
    input_size = int(hp.get("input_size", 0) or 0)
    t0 = time.time()
    done = featurize_splits(sc, spec, {"train": spec.dataset.train, "test": spec.dataset.test}, input_size)
    (train_path, train_rows, dim), (test_path, test_rows, _) = done["train"], done["test"]
    featurize_seconds = time.time() - t0
    log_fn(f"featurized {train_rows} + {test_rows} rows into {dim} features in {featurize_seconds:.1f} s")

    head = str(hp.get("head", "logreg"))
    t1 = time.time()
    if head == "logreg":
        out = logreg_head(sc, spec, train_path, test_path)
    elif head == "dense":
        out = dense_head(sc, spec, train_path, test_path, dim, train_fn)
    else:
        raise ValueError(f"unknown head {head!r}; use logreg or dense")
    out.update(
        head=head,
        feature_dim=dim,
        featurize_seconds=round(featurize_seconds, 3),
        head_seconds=round(time.time() - t1, 3),
    )
    return out


def logreg_head(sc, spec, train_path, test_path) -> dict:
    """Spark MLlib multinomial LogisticRegression on the features (the seeds' classifier)."""
    from pyspark.ml.classification import LogisticRegression

    from workers.jobs import mllib

    hp = spec.hyperparameters
    lr = LogisticRegression(
        featuresCol="fv",
        labelCol="label",
        family="multinomial",
        maxIter=int(hp.get("max_iter", 100)),
        regParam=float(hp.get("reg_param", 0.01)),
        elasticNetParam=float(hp.get("elastic_net", 0.0)),
    )
    return mllib.fit_and_score(spec, train_path, test_path, lr, os.path.join(spec.artifact_dir, "model", "logreg"))


def dense_head(sc, spec, train_path, test_path, dim, train_fn) -> dict:
    """A Keras head on the features, trained with TFoS through the driver's normal training."""
    from workers.jobs import inference
    from workers.jobs.train import STATS_FILE, model_path

    head_spec = dataclasses.replace(
        spec,
        template="dense_head",
        base=None,
        dataset=dataclasses.replace(spec.dataset, train=train_path, test=test_path, shape=(dim,)),
    )
    model_file = model_path(spec.artifact_dir)
    stats_file = os.path.join(spec.artifact_dir, STATS_FILE)
    stats = train_fn(sc, head_spec, model_file, stats_file)
    scores = inference.run_inference(
        sc, test_path, model_file, (dim,), os.path.join(spec.artifact_dir, "predictions"), spec.cluster_size
    )
    return {**scores, **stats, "model": model_file}


def export_model(sc, spec, out: dict) -> None:
    """Save what a user downloads, built in one Spark task (the driver never imports TensorFlow):

    - dense head: ``model/model.keras`` = featurizer + head, images in, class probabilities out
      (usable as a base for a later run); the head alone stays as ``model/head.keras``.
    - logreg head: ``model/featurizer.keras`` next to the MLlib model in ``model/logreg/``, both
      zipped into ``model/model.zip``.
    """
    model_dir = os.path.join(spec.artifact_dir, "model")
    base = dataclasses.asdict(spec.base)
    input_size = int(spec.hyperparameters.get("input_size", 0) or 0)
    head = out.get("head")
    fn = functools.partial(_export, base, tuple(spec.dataset.shape), input_size, model_dir, head)
    saved = sc.parallelize([0], 1).map(fn).collect()[0]
    if head == "logreg":
        zip_path = os.path.join(model_dir, "model.zip")
        zip_dir(model_dir, zip_path, exclude={"model.zip"})
        saved = zip_path
    out["model"] = saved


def _export(base, shape, input_size, model_dir, head, _):
    from workers.jobs import bases

    keras = bases._keras()
    feat = bases.featurizer(base["kind"], base["path"], base["name"], shape, input_size)
    if head == "dense":
        head_file = os.path.join(model_dir, "head.keras")
        model_file = os.path.join(model_dir, "model.keras")
        os.replace(model_file, head_file)
        head_model = keras.models.load_model(head_file, compile=False, safe_mode=True)
        inputs = keras.Input(shape=shape, name="image")
        combined = keras.Model(inputs, head_model(feat(inputs)), name="featurizer_dense")
        tmp = os.path.join(model_dir, f".tmp-{os.getpid()}-model.keras")
        combined.save(tmp)
        os.replace(tmp, model_file)
        return model_file
    dest = os.path.join(model_dir, "featurizer.keras")
    feat.save(dest)
    return dest


def zip_dir(src_dir: str, dest: str, exclude=()) -> None:
    import zipfile

    tmp = f"{dest}.tmp-{os.getpid()}"
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for root, _dirs, files in os.walk(src_dir):
            for name in sorted(files):
                full = os.path.join(root, name)
                rel = os.path.relpath(full, src_dir)
                if rel in exclude or name.startswith(".tmp-") or ".tmp-" in name:
                    continue
                zf.write(full, rel)
    os.replace(tmp, dest)


if __name__ == "__main__":
    raise SystemExit(main())
