"""Distributed inference over the test Parquet with plain Spark ``mapPartitions``.

Not a second TFoS cluster: one started after a TENSORFLOW-mode training cluster in the same
application hung (docs/tfos-on-modern-stack.md). Task i of n reads shard i of the test Parquet
itself (like TENSORFLOW-mode training: no Spark SQL scan or shuffle, which cost ~8 s on a small
set) and loads the exported model once. Results come back to the driver, which writes
single-file predictions.parquet / predictions.csv, then the prediction analysis
(``workers/jobs/analysis.py``: analysis.json and the by-class sorted copy the web pages filter on).
"""

from __future__ import annotations

import csv
import functools
import math
import os
import sys
import time

CSV_COLUMNS = ["row_id", "label", "prediction", "confidence"]
MAX_SHARD_ROWS = 50000  # bounds what one task holds in memory
# predictions.parquet: sorted by row_id, row groups of this many rows, so the web page reads one
# ~2 MB row group per page of the table, whatever the file's size.
ROW_GROUP_ROWS = 65536


def predict_shards(test_path: str, model_file: str, shape, num_shards: int, shard_ids):
    """mapPartitions body: shard ids -> (row_id, label, prediction, confidence, loss) rows, where
    loss is the row's cross-entropy -log p(label), what Keras's loss averages."""
    import numpy as np

    from workers.jobs import data

    model = None
    for shard in shard_ids:
        x, y, ids = data.read_arrays(test_path, shape, shard, num_shards)
        if not len(x):
            continue
        if model is None:  # once per partition, and only when there is something to predict
            os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
            import tf_keras

            model = tf_keras.models.load_model(model_file, compile=False)
        probs = model.predict(x, batch_size=256, verbose=0)
        preds, conf = probs.argmax(axis=1), probs.max(axis=1)
        loss = log_loss(probs[np.arange(len(y)), y])
        yield from zip(ids.tolist(), y.tolist(), preds.tolist(), conf.tolist(), loss.tolist(), strict=True)


# Keras clips probabilities the same way before the log (sparse_categorical_crossentropy).
_EPS = 1e-7


def log_loss(p_label):
    """Per-row cross-entropy -log p(label) from each row's probability of its true label."""
    import numpy as np

    return -np.log(np.clip(np.asarray(p_label, dtype=np.float64), _EPS, 1 - _EPS))


def mean_log_loss(p_label) -> float | None:
    """The mean cross-entropy (what Keras's loss reports) of rows with these true-label probabilities."""
    return _mean(log_loss(p_label).tolist()) if len(p_label) else None


def _mean(values) -> float | None:
    if not values:
        return None
    m = math.fsum(values) / len(values)
    return round(m, 6) if math.isfinite(m) else None


def run_inference(sc, test_path: str, model_file: str, shape, out_dir: str, workers: int, num_classes=None):
    """Predict every test row; write predictions.{parquet,csv} and their analysis; return accuracy,
    loss (mean cross-entropy), row count and the seconds the analysis took."""
    from workers.jobs import data

    rows = data.num_rows(test_path)
    shards = max(1, workers, math.ceil(rows / MAX_SHARD_ROWS))
    fn = functools.partial(predict_shards, test_path, model_file, tuple(shape), shards)
    results = sorted(sc.parallelize(range(shards), shards).mapPartitions(fn).collect())
    if len(results) != rows:
        raise RuntimeError(f"inference returned {len(results)} rows for {rows} test rows")
    test_loss = _mean([r[4] for r in results])
    results = [r[:4] for r in results]
    analysis_seconds = write_predictions(results, out_dir, num_classes)
    correct = sum(1 for _, label, pred, _ in results if label == pred)
    return {
        "test_rows": len(results),
        "test_accuracy": round(correct / len(results), 6) if results else None,
        "test_loss": test_loss,
        "analysis_seconds": analysis_seconds,
    }


def write_predictions(results, out_dir: str, num_classes=None) -> float | None:
    """Write predictions.parquet (sorted by row_id) and predictions.csv from (row_id, label,
    prediction, confidence) rows, then analyse them once (``analysis.write_analysis``).

    Returns the seconds the analysis took, None when it failed: that never fails the run (the web
    app computes a missing analysis on first view); the reason goes to stderr.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from workers.jobs import analysis

    os.makedirs(out_dir, exist_ok=True)
    results = sorted(results) if any(a[0] > b[0] for a, b in zip(results[:-1], results[1:], strict=True)) else results
    cols = list(zip(*results, strict=True)) if results else [[], [], [], []]
    table = pa.table(
        {
            "row_id": pa.array(np.asarray(cols[0], np.int64)),
            "label": pa.array(np.asarray(cols[1], np.int64)),
            "prediction": pa.array(np.asarray(cols[2], np.int64)),
            "confidence": pa.array(np.asarray(cols[3], np.float32)),
        }
    )
    pq.write_table(
        table,
        os.path.join(out_dir, "predictions.parquet"),
        row_group_size=ROW_GROUP_ROWS,
        use_dictionary=["label", "prediction"],
    )
    with open(os.path.join(out_dir, "predictions.csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(CSV_COLUMNS)
        w.writerows((r, lab, p, f"{c:.6f}") for r, lab, p, c in results)
    t0 = time.time()
    try:
        analysis.write_analysis(out_dir, num_classes)
    except Exception as exc:  # noqa: BLE001 - the predictions are written; the analysis can wait
        print(f"WARNING: prediction analysis failed: {exc!r}; the web app computes it on first view", file=sys.stderr)
        return None
    return round(time.time() - t0, 3)
