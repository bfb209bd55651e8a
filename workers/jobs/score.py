"""Batch scoring: a registered Keras model applied to a dataset's Parquet on the cluster.

A plain Spark job, not TFoS: pyspark's ``predict_batch_udf`` feeds the features column to the model
in numpy batches, and loads the model once per Python worker (it caches what ``make_predict_fn``
returned). Spark writes the scored rows in parallel as part files; the driver then streams them,
in row-id order, into the single predictions.parquet / predictions.csv the web pages read (the
same layout as a training run's predictions, plus the class name and the top-k classes).
"""

from __future__ import annotations

import csv
import glob
import os
import shutil

import numpy as np

from workers.jobs.inference import ROW_GROUP_ROWS

DEFAULT_TOP_K = 3
DEFAULT_BATCH_SIZE = 1024
PARTS_DIR = "predictions.parts"


def affine(rescale: dict | None):
    """(scale, shift) that turn a dataset's standardized features into the model's: the dataset was
    standardized with its own statistics (``from``), the model trained on another's (``to``)."""
    if not rescale:
        return None
    src, dst = rescale["from"], rescale["to"]
    mean_f, std_f = np.asarray(src["mean"], np.float64), np.asarray(src["std"], np.float64)
    mean_t, std_t = np.asarray(dst["mean"], np.float64), np.asarray(dst["std"], np.float64)
    if not (mean_f.shape == std_f.shape == mean_t.shape == std_t.shape):
        raise ValueError("the dataset's and the model's standardization have different feature counts")
    return (std_f / std_t).astype(np.float32), ((mean_f - mean_t) / std_t).astype(np.float32)


def make_predict_fn(model_path: str, top_k: int, rescale: dict | None = None):
    """What predict_batch_udf calls once per Python worker: load the model (safe mode) and return
    the batch function, numpy features [n, *shape] -> the output struct's columns."""

    def make():
        os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
        from workers.jobs import modelfile

        model = modelfile.load_safe(model_path)
        transform = affine(rescale)

        def predict(x: np.ndarray) -> dict:
            x = x.astype(np.float32, copy=False)
            if transform is not None:
                x = x * transform[0] + transform[1]
            probs = np.asarray(model(x, training=False), dtype=np.float32)
            k = min(top_k, probs.shape[1])
            top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
            top_probs = np.take_along_axis(probs, top, axis=1)
            return {
                "prediction": top[:, 0].astype(np.int64),
                "confidence": top_probs[:, 0],
                "top_classes": top.astype(np.int64),
                "top_probs": top_probs,
            }

        return predict

    return make


def output_type():
    from pyspark.sql.types import ArrayType, FloatType, LongType, StructField, StructType

    return StructType(
        [
            StructField("prediction", LongType()),
            StructField("confidence", FloatType()),
            StructField("top_classes", ArrayType(LongType())),
            StructField("top_probs", ArrayType(FloatType())),
        ]
    )


def score(
    spark,
    dataset_path: str | list,
    model_path: str,
    shape,
    out_dir: str,
    *,
    class_names=None,
    top_k: int = DEFAULT_TOP_K,
    batch_size: int = DEFAULT_BATCH_SIZE,
    rescale: dict | None = None,
    partitions: int | None = None,
) -> dict:
    """Score every row of the dataset (one Parquet file, or several scored as one: a dataset's
    train and test files); write predictions.{parquet,csv}; return the row count and whether the
    dataset had labels (then also the accuracy)."""
    from pyspark.ml.functions import predict_batch_udf
    from pyspark.sql import functions as F

    udf = predict_batch_udf(
        make_predict_fn(model_path, top_k, rescale),
        return_type=output_type(),
        batch_size=batch_size,
        input_tensor_shapes=[list(shape)],
    )
    paths = [dataset_path] if isinstance(dataset_path, str) else list(dataset_path)
    df = spark.read.parquet(*paths)
    labelled = "label" in df.columns
    if partitions:
        df = df.repartition(partitions)
    keep = [F.col("row_id")] + ([F.col("label")] if labelled else [])
    scored = df.select(*keep, udf(F.col("features")).alias("p")).select(*keep, "p.*")
    parts = os.path.join(out_dir, PARTS_DIR)
    shutil.rmtree(parts, ignore_errors=True)
    scored.sortWithinPartitions("row_id").write.parquet(parts)
    try:
        summary = merge_parts(parts, out_dir, class_names, labelled)
    finally:
        shutil.rmtree(parts, ignore_errors=True)
    return summary


def merge_parts(parts_dir: str, out_dir: str, class_names, labelled: bool) -> dict:
    """Stream Spark's part files into one predictions.parquet sorted by row id (a k-way merge of the
    parts, each sorted, one row group of each in memory) and the CSV beside it."""
    import heapq

    import pyarrow as pa
    import pyarrow.parquet as pq

    files = sorted(glob.glob(os.path.join(parts_dir, "part-*.parquet")))
    names = list(class_names or [])
    rows = correct = 0
    k = None
    writer = None
    with open(os.path.join(out_dir, "predictions.csv"), "w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        batch: list[tuple] = []

        def flush():
            nonlocal writer
            if not batch:
                return
            cols = list(zip(*batch, strict=True))
            arrays = {"row_id": pa.array(np.asarray(cols[0], np.int64))}
            if labelled:
                arrays["label"] = pa.array(np.asarray(cols[1], np.int64))
            i = 2 if labelled else 1
            arrays["prediction"] = pa.array(np.asarray(cols[i], np.int64))
            arrays["class_name"] = pa.array([_name(names, p) for p in cols[i]], pa.string())
            arrays["confidence"] = pa.array(np.asarray(cols[i + 1], np.float32))
            arrays["top_classes"] = pa.array(list(cols[i + 2]), pa.list_(pa.int64()))
            arrays["top_probs"] = pa.array(list(cols[i + 3]), pa.list_(pa.float32()))
            table = pa.table(arrays)
            if writer is None:
                writer = pq.ParquetWriter(os.path.join(out_dir, "predictions.parquet"), table.schema)
            writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
            batch.clear()

        for row in heapq.merge(*(_rows(f) for f in files)):
            if k is None:
                k = len(row[-2])
                head = ["row_id", *(["label"] if labelled else []), "prediction", "class_name", "confidence"]
                out.writerow(head + [f"top{j}_{what}" for j in range(1, k + 1) for what in ("class", "prob")])
            pred = row[2] if labelled else row[1]
            if labelled and row[1] == pred:
                correct += 1
            rows += 1
            tops = [v for pair in zip(row[-2], row[-1], strict=True) for v in (_name(names, pair[0]), f"{pair[1]:.6f}")]
            out.writerow([*row[: len(row) - 3], _name(names, pred), f"{row[-3]:.6f}", *tops])
            batch.append(row)
            if len(batch) >= ROW_GROUP_ROWS:
                flush()
        flush()
    if writer is not None:
        writer.close()
    result = {"rows": rows, "labelled": labelled}
    if labelled:
        result["accuracy"] = round(correct / rows, 6) if rows else None
    return result


def _name(names: list, index: int) -> str:
    return str(names[index]) if 0 <= index < len(names) else str(index)


def _rows(path: str):
    """The rows of one part file as tuples, a row group at a time."""
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    for rg in range(pf.num_row_groups):
        cols = pf.read_row_group(rg).to_pydict()
        yield from zip(*cols.values(), strict=True)
