"""Prediction analysis, computed once from ``predictions.parquet`` with bounded memory.

Django-free and free of anything outside ``workers/jobs``: the Spark job calls it right after it
writes the predictions (``inference.write_predictions``), the web app calls it for runs finished
before it existed (lazily on first view, and ``manage.py backfill_analysis``). The predictions file
is only ever read a batch at a time (``ParquetFile.iter_batches``), never whole.

It writes two files next to the predictions:

``analysis.json`` (``FORMAT_VERSION``)::

    {"version": 1, "rows": 360, "num_classes": 10, "correct": 351, "accuracy": 0.975,
     "confusion": [[35, 0, ...], ...],              # confusion[true][predicted], counts
     "per_class": [{"class": 0, "support": 36, "predicted": 35, "tp": 35,
                    "precision": 1.0, "recall": 0.9722, "f1": 0.9859}, ...],
     "macro": {"precision": ..., "recall": ..., "f1": ...},      # over classes seen in labels or predictions
     "weighted": {"precision": ..., "recall": ..., "f1": ...},   # weighted by support
     "confidence": {"bins": [0.0, 0.05, ..., 1.0], "correct": [...], "wrong": [...],
                    "mean_correct": 0.97, "mean_wrong": 0.61, "nan": 0},
     "misclassified_top": [{"row_id": 17, "label": 3, "prediction": 8, "confidence": 0.998}, ...],
     "row_groups": [{"rows": 65536, "row_id": [0, 65535]}, ...],  # of predictions.parquet, file order
     "sorted": {"file": "by_class.parquet", "rows": 360, "bytes": 9000,
                "order": ["label", "prediction", "-confidence", "row_id"]},
     "source": {"file": "predictions.parquet", "rows": 360, "bytes": 8000},
     "seconds": 0.02}

``by_class.parquet``: the same four columns sorted by (label, prediction, confidence descending,
row_id). Cell (t, p) of the confusion matrix is the contiguous row range starting at the sum of the
cells before it in row-major order, and within a cell confidence only decreases, so a filter by
true class, predicted class, "misclassified only" and a confidence range maps to row ranges found
from the matrix and a few row groups' confidence column: the web page never scans the file.

Sorting keeps memory bounded too: the analysing pass spills the rows as fixed-size records to a
temporary file; the cells are cut into consecutive chunks of at most ``SORT_CHUNK_ROWS`` rows (a
single larger cell is one chunk), and each chunk is gathered by one pass over the spill file read a
slice at a time, sorted and appended.
"""

from __future__ import annotations

import contextlib
import json
import os
import time

import numpy as np

FORMAT_VERSION = 1
ANALYSIS_FILE = "analysis.json"
PREDICTIONS_FILE = "predictions.parquet"
SORTED_FILE = "by_class.parquet"
COLUMNS = ["row_id", "label", "prediction", "confidence"]
SORTED_ORDER = ["label", "prediction", "-confidence", "row_id"]
BATCH_ROWS = 65536
SORTED_ROW_GROUP_ROWS = 32768
SORT_CHUNK_ROWS = 1 << 20  # rows held at once while writing the sorted copy (~20 MB of records)
# What analyze() spills for write_sorted(): 20 bytes a row, read back without decoding Parquet again.
SPILL_DTYPE = np.dtype([("row_id", "<i8"), ("label", "<i4"), ("prediction", "<i4"), ("confidence", "<f4")])
TOP_MISCLASSIFIED = 64
CONFIDENCE_BINS = 20
MAX_CLASSES = 2048  # the k × k matrix: 32 MB of counts at most


def _schema():
    import pyarrow as pa

    return pa.schema(
        [
            pa.field("row_id", pa.int64()),
            pa.field("label", pa.int64()),
            pa.field("prediction", pa.int64()),
            pa.field("confidence", pa.float32()),
        ]
    )


def _batches(pf, row_groups=None):
    """(row_group index, row_id, label, prediction, confidence) numpy arrays, BATCH_ROWS at a time."""
    groups = range(pf.num_row_groups) if row_groups is None else row_groups
    for rg in groups:
        for batch in pf.iter_batches(batch_size=BATCH_ROWS, row_groups=[rg], columns=COLUMNS, use_threads=False):
            yield (
                rg,
                _ints(batch.column(0)),
                _ints(batch.column(1)),
                _ints(batch.column(2)),
                to_numpy(batch.column(3)).astype(np.float32, copy=False),
            )


def _ints(col) -> np.ndarray:
    if col.null_count:
        raise ValueError("predictions have empty row_id/label/prediction values")
    return to_numpy(col).astype(np.int64, copy=False)


_NUMERIC = {"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "float", "double"}


def to_numpy(column) -> np.ndarray:
    """An Arrow array or table column as numpy; a numeric one without nulls as a zero-copy view of
    its buffer (pyarrow's ``to_numpy`` imports pandas: ~0.4 s the first time in a web process)."""
    import pyarrow as pa

    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    name = str(arr.type)
    if arr.null_count == 0 and name in _NUMERIC:
        dtype = np.dtype({"float": "float32", "double": "float64"}.get(name, name))
        return np.frombuffer(arr.buffers()[1], dtype=dtype, count=len(arr), offset=arr.offset * dtype.itemsize)
    return arr.to_numpy(zero_copy_only=False)


class _Accumulator:
    """Everything analysis.json holds, updated one batch at a time."""

    def __init__(self, num_classes: int, top_n: int):
        self.k = max(1, int(num_classes or 0))
        self.confusion = np.zeros((self.k, self.k), np.int64)
        self.top_n = top_n
        self.top = (np.zeros(0, np.int64),) * 3 + (np.zeros(0, np.float32),)
        self.edges = np.linspace(0.0, 1.0, CONFIDENCE_BINS + 1)
        self.hist = {"correct": np.zeros(CONFIDENCE_BINS, np.int64), "wrong": np.zeros(CONFIDENCE_BINS, np.int64)}
        self.conf_sum = {"correct": 0.0, "wrong": 0.0}
        self.nan = 0
        self.row_groups: list[dict] = []

    def _grow(self, k: int) -> None:
        if k > MAX_CLASSES:
            raise ValueError(f"predictions hold class index {k - 1}; at most {MAX_CLASSES} classes are analysed")
        if k > self.k:
            grown = np.zeros((k, k), np.int64)
            grown[: self.k, : self.k] = self.confusion
            self.confusion, self.k = grown, k

    def add(self, rg, row_id, label, pred, conf) -> None:
        if not len(label):
            return
        if min(label.min(), pred.min()) < 0:
            raise ValueError("predictions hold a negative class index")
        self._grow(int(max(label.max(), pred.max())) + 1)
        k = self.k
        self.confusion += np.bincount(label * k + pred, minlength=k * k).reshape(k, k)
        while len(self.row_groups) <= rg:
            self.row_groups.append({"rows": 0, "row_id": None})
        entry = self.row_groups[rg]
        entry["rows"] += len(row_id)
        lo, hi = int(row_id.min()), int(row_id.max())
        entry["row_id"] = (
            [lo, hi] if entry["row_id"] is None else [min(entry["row_id"][0], lo), max(entry["row_id"][1], hi)]
        )

        wrong = label != pred
        finite = ~np.isnan(conf)
        self.nan += int((~finite).sum())
        for name, mask in (("correct", ~wrong & finite), ("wrong", wrong & finite)):
            values = conf[mask]
            self.conf_sum[name] += float(values.sum(dtype=np.float64))
            self.hist[name] += np.histogram(np.clip(values, 0.0, 1.0), bins=self.edges)[0]
        if wrong.any():
            self._keep_top(row_id[wrong], label[wrong], pred[wrong], conf[wrong])

    def _keep_top(self, row_id, label, pred, conf) -> None:
        ids = np.concatenate([self.top[0], row_id])
        labels = np.concatenate([self.top[1], label])
        preds = np.concatenate([self.top[2], pred])
        confs = np.concatenate([self.top[3], conf])
        if len(ids) > 4 * self.top_n:  # cheap pre-cut (ties at the threshold stay) before the exact order
            key = np.nan_to_num(confs, nan=-np.inf)
            keep = key >= np.partition(key, len(key) - self.top_n)[len(key) - self.top_n]
            ids, labels, preds, confs = ids[keep], labels[keep], preds[keep], confs[keep]
        order = np.lexsort((ids, -np.nan_to_num(confs, nan=-np.inf)))[: self.top_n]
        self.top = (ids[order], labels[order], preds[order], confs[order])

    def result(self) -> dict:
        cm = self.confusion
        rows = int(cm.sum())
        tp = np.diag(cm)
        support = cm.sum(axis=1)
        predicted = cm.sum(axis=0)
        precision = np.divide(tp, predicted, out=np.zeros(self.k), where=predicted > 0)
        recall = np.divide(tp, support, out=np.zeros(self.k), where=support > 0)
        denom = precision + recall
        f1 = np.divide(2 * precision * recall, denom, out=np.zeros(self.k), where=denom > 0)
        seen = (support > 0) | (predicted > 0)  # sklearn's default labels: those in y_true or y_pred
        weights = support / support.sum() if support.sum() else np.zeros(self.k)
        correct_n, wrong_n = int(tp.sum()), rows - int(tp.sum())
        finite_correct = int(self.hist["correct"].sum())
        finite_wrong = int(self.hist["wrong"].sum())
        return {
            "version": FORMAT_VERSION,
            "rows": rows,
            "num_classes": self.k,
            "correct": correct_n,
            "wrong": wrong_n,
            "accuracy": round(correct_n / rows, 6) if rows else None,
            "confusion": cm.tolist(),
            "per_class": [
                {
                    "class": c,
                    "support": int(support[c]),
                    "predicted": int(predicted[c]),
                    "tp": int(tp[c]),
                    "precision": round(float(precision[c]), 6),
                    "recall": round(float(recall[c]), 6),
                    "f1": round(float(f1[c]), 6),
                }
                for c in range(self.k)
            ],
            "macro": {
                name: round(float(v[seen].mean()), 6) if seen.any() else None
                for name, v in (("precision", precision), ("recall", recall), ("f1", f1))
            },
            "weighted": {
                name: round(float((v * weights).sum()), 6) if rows else None
                for name, v in (("precision", precision), ("recall", recall), ("f1", f1))
            },
            "confidence": {
                "bins": [round(float(e), 4) for e in self.edges],
                "correct": self.hist["correct"].tolist(),
                "wrong": self.hist["wrong"].tolist(),
                "mean_correct": round(self.conf_sum["correct"] / finite_correct, 6) if finite_correct else None,
                "mean_wrong": round(self.conf_sum["wrong"] / finite_wrong, 6) if finite_wrong else None,
                "nan": self.nan,
            },
            "misclassified_top": [
                {"row_id": int(i), "label": int(t), "prediction": int(p), "confidence": _num(c)}
                for i, t, p, c in zip(*self.top, strict=True)
            ],
            "row_groups": self.row_groups,
        }


def _num(value) -> float | None:
    value = float(value)
    return None if value != value else round(value, 6)


def analyze(predictions: str, num_classes: int | None = None, top_n: int = TOP_MISCLASSIFIED, spill=None) -> dict:
    """Stream ``predictions`` once and return the analysis (without ``sorted``/``source``).

    With ``spill`` (a binary file), every row is also appended to it as a ``SPILL_DTYPE`` record,
    for :func:`write_sorted` to read back without decoding the Parquet file again.
    """
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(predictions)
    _check_columns(pf, predictions)
    acc = _Accumulator(num_classes or 0, top_n)
    for batch in _batches(pf):
        acc.add(*batch)
        if spill is not None:
            _, row_id, label, pred, conf = batch
            rec = np.empty(len(row_id), SPILL_DTYPE)
            rec["row_id"], rec["label"], rec["prediction"], rec["confidence"] = row_id, label, pred, conf
            rec.tofile(spill)
    acc.row_groups += [{"rows": 0, "row_id": None}] * (pf.num_row_groups - len(acc.row_groups))
    return acc.result()


def _check_columns(pf, path) -> None:
    missing = set(COLUMNS) - set(pf.schema_arrow.names)
    if missing:
        raise ValueError(f"{path}: missing column(s) {sorted(missing)}; expected {COLUMNS}")


def _chunks(confusion, chunk_rows: int):
    """Consecutive (first key, end key) ranges of cells (key = label * k + prediction) holding at most
    ``chunk_rows`` rows each (a larger single cell is a chunk of its own); empty ranges left out."""
    flat = np.asarray(confusion, np.int64).ravel()
    cum = np.concatenate([[0], np.cumsum(flat)])
    start = 0
    while start < len(flat):
        end = int(np.searchsorted(cum, cum[start] + chunk_rows, side="right")) - 1
        end = min(len(flat), max(end, start + 1))
        if cum[end] > cum[start]:
            yield start, end, int(cum[end] - cum[start])
        start = end


def _sort_order(rec: np.ndarray, k: int) -> np.ndarray:
    """Indices ordering SPILL_DTYPE records by (label, prediction, confidence desc, row_id), NaN last."""
    bits = rec["confidence"].view(np.int32).astype(np.int64)
    ascending = np.where(bits < 0, ~bits & 0xFFFFFFFF, bits | 0x80000000)  # float order as unsigned ints
    descending = np.where(np.isnan(rec["confidence"]), 0xFFFFFFFF, 0xFFFFFFFF - ascending)
    key = rec["label"].astype(np.int64) * k + rec["prediction"]
    return np.lexsort((rec["row_id"], (key << 32) | descending))


def write_sorted(spill_path: str, dest: str, confusion, chunk_rows: int = SORT_CHUNK_ROWS) -> int:
    """Write ``dest``: the rows of ``spill_path`` (``SPILL_DTYPE`` records, as :func:`analyze` spills
    them) sorted by (label, prediction, confidence desc, row_id).

    ``confusion`` (k × k counts) tells how many rows each cell has, so the cells are cut into chunks
    of at most ``chunk_rows`` rows; one pass over the spill file (read a slice at a time) sends each
    record to its chunk's file, then each chunk is read, sorted and appended. Returns the rows written.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    k = len(confusion)
    chunks = list(_chunks(confusion, chunk_rows))
    parts = [spill_path] if len(chunks) <= 1 else [f"{spill_path}.{i}" for i in range(len(chunks))]
    schema = _schema()
    written = 0
    tmp = f"{dest}.tmp-{os.getpid()}"
    try:
        if len(parts) > 1:
            _partition(spill_path, parts, np.array([lo for lo, _, _ in chunks]), k)
        with pq.ParquetWriter(tmp, schema, use_dictionary=["label", "prediction"]) as writer:
            for part in parts:
                rec = np.fromfile(part, SPILL_DTYPE)
                order = _sort_order(rec, k)
                arrays = [
                    rec[name][order].astype(field.type.to_pandas_dtype())
                    for name, field in zip(COLUMNS, schema, strict=True)
                ]
                writer.write_table(pa.Table.from_arrays(arrays, schema=schema), row_group_size=SORTED_ROW_GROUP_ROWS)
                written += len(rec)
                del rec, order, arrays
                if part != spill_path:
                    os.unlink(part)
        os.replace(tmp, dest)
    finally:
        for path in [tmp] + (parts if len(parts) > 1 else []):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
    return written


def _partition(spill_path: str, parts: list[str], firsts: np.ndarray, k: int) -> None:
    """Append each record of ``spill_path`` to ``parts[i]``, i = the chunk whose first key ≤ its key."""
    files = [open(p, "wb") for p in parts]  # noqa: SIM115 - closed below, all together
    try:
        with open(spill_path, "rb") as f:
            while len(rec := np.fromfile(f, SPILL_DTYPE, count=BATCH_ROWS * 4)):
                key = rec["label"].astype(np.int64) * k + rec["prediction"]
                idx = np.searchsorted(firsts, key, side="right") - 1
                order = np.argsort(idx, kind="stable")
                rec, idx = rec[order], idx[order]
                cuts = np.searchsorted(idx, np.arange(len(parts) + 1))
                for i, (a, b) in enumerate(zip(cuts[:-1], cuts[1:], strict=True)):
                    if b > a:
                        rec[a:b].tofile(files[i])
    finally:
        for fh in files:
            fh.close()


def write_analysis(pred_dir: str, num_classes: int | None = None, chunk_rows: int = SORT_CHUNK_ROWS) -> dict:
    """Analyse ``<pred_dir>/predictions.parquet``; write the sorted copy and analysis.json (atomically)."""
    t0 = time.time()
    pred_dir = str(pred_dir)
    src = os.path.join(pred_dir, PREDICTIONS_FILE)
    size = os.path.getsize(src)
    sorted_path = os.path.join(pred_dir, SORTED_FILE)
    spill_path = os.path.join(pred_dir, f".spill-{os.getpid()}.bin")
    try:
        with open(spill_path, "wb") as spill:
            data = analyze(src, num_classes, spill=spill)
        rows = write_sorted(spill_path, sorted_path, data["confusion"], chunk_rows)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(spill_path)
    data["sorted"] = {"file": SORTED_FILE, "rows": rows, "bytes": os.path.getsize(sorted_path), "order": SORTED_ORDER}
    data["source"] = {"file": PREDICTIONS_FILE, "rows": data["rows"], "bytes": size}
    data["seconds"] = round(time.time() - t0, 3)
    _write_json(os.path.join(pred_dir, ANALYSIS_FILE), data)
    return data


def _write_json(path: str, data: dict) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, separators=(",", ":"))
    os.replace(tmp, path)


def read_analysis(pred_dir: str) -> dict | None:
    """The stored analysis if it describes the predictions file now there (rows and size), else None."""
    pred_dir = str(pred_dir)
    try:
        with open(os.path.join(pred_dir, ANALYSIS_FILE), encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if is_current(pred_dir, data) else None


def is_current(pred_dir: str, data) -> bool:
    try:
        source, sorted_ = data["source"], data["sorted"]
        return (
            data.get("version") == FORMAT_VERSION
            and os.path.getsize(os.path.join(pred_dir, PREDICTIONS_FILE)) == source["bytes"]
            and os.path.getsize(os.path.join(pred_dir, SORTED_FILE)) == sorted_["bytes"]
        )
    except (OSError, KeyError, TypeError):
        return False


def ensure_analysis(pred_dir: str, num_classes: int | None = None) -> dict | None:
    """The current analysis, computing and storing it first when missing or stale; None without
    predictions. Concurrent callers wait on a lock file instead of computing twice."""
    import fcntl

    pred_dir = str(pred_dir)
    if not os.path.exists(os.path.join(pred_dir, PREDICTIONS_FILE)):
        return None
    data = read_analysis(pred_dir)
    if data is not None:
        return data
    with open(os.path.join(pred_dir, ".analysis.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return read_analysis(pred_dir) or write_analysis(pred_dir, num_classes)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
