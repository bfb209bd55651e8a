"""workers/jobs/analysis.py: the prediction analysis against sklearn, the sorted copy, bounded passes."""

import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from workers.jobs import analysis, inference


def synthetic(n=5000, k=7, seed=0, nan_every=0):
    """Predictions with class-dependent accuracy, skewed classes and ties in confidence."""
    rng = np.random.default_rng(seed)
    label = rng.choice(k, size=n, p=np.arange(1, k + 1) / np.arange(1, k + 1).sum())
    wrong = rng.random(n) < 0.1 + 0.05 * label
    pred = np.where(wrong, (label + rng.integers(1, k, n)) % k, label)
    conf = np.round(rng.random(n), 2).astype(np.float32)  # two decimals: plenty of ties
    if nan_every:
        conf[::nan_every] = np.nan
    row_id = np.arange(n, dtype=np.int64) * 3 + 5
    return row_id, label.astype(np.int64), pred.astype(np.int64), conf


def write(path, row_id, label, pred, conf, row_group_size=1000):
    os.makedirs(path, exist_ok=True)
    table = pa.table({"row_id": row_id, "label": label, "prediction": pred, "confidence": pa.array(conf, pa.float32())})
    pq.write_table(table, os.path.join(path, "predictions.parquet"), row_group_size=row_group_size)


@pytest.fixture
def small_batches(monkeypatch):
    """Several batches, row groups and sort chunks even on a few thousand rows."""
    monkeypatch.setattr(analysis, "BATCH_ROWS", 300)
    monkeypatch.setattr(analysis, "SORTED_ROW_GROUP_ROWS", 250)


def test_numbers_match_sklearn(tmp_path, small_batches):
    row_id, label, pred, conf = synthetic(k=7)
    write(tmp_path, row_id, label, pred, conf)
    data = analysis.write_analysis(str(tmp_path), num_classes=8, chunk_rows=900)  # class 7 never occurs

    assert data["num_classes"] == 8 and data["rows"] == len(label)
    assert np.array_equal(np.array(data["confusion"]), confusion_matrix(label, pred, labels=range(8)))
    assert data["accuracy"] == pytest.approx(accuracy_score(label, pred), abs=1e-6)
    p, r, f, s = precision_recall_fscore_support(label, pred, labels=range(8), zero_division=0)
    for c, row in enumerate(data["per_class"]):
        assert row["precision"] == pytest.approx(p[c], abs=1e-6)
        assert row["recall"] == pytest.approx(r[c], abs=1e-6)
        assert row["f1"] == pytest.approx(f[c], abs=1e-6)
        assert row["support"] == s[c]
    for avg in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(label, pred, average=avg, zero_division=0)
        assert data[avg] == pytest.approx({"precision": p, "recall": r, "f1": f}, abs=1e-6)
    hist = data["confidence"]
    assert sum(hist["correct"]) == data["correct"] and sum(hist["wrong"]) == data["wrong"]
    assert data["row_groups"][0] == {"rows": 1000, "row_id": [5, 999 * 3 + 5]}
    assert sum(g["rows"] for g in data["row_groups"]) == len(label)

    stored = json.loads((tmp_path / "analysis.json").read_text())
    assert stored == json.loads(json.dumps(data))
    assert analysis.read_analysis(str(tmp_path)) == stored


def test_top_misclassified_are_the_most_confident_mistakes(tmp_path, small_batches):
    row_id, label, pred, conf = synthetic()
    write(tmp_path, row_id, label, pred, conf)
    data = analysis.write_analysis(str(tmp_path))
    wrong = np.nonzero(label != pred)[0]
    order = wrong[np.lexsort((row_id[wrong], -conf[wrong]))][: analysis.TOP_MISCLASSIFIED]
    assert [m["row_id"] for m in data["misclassified_top"]] == row_id[order].tolist()
    first = data["misclassified_top"][0]
    i = int(np.nonzero(row_id == first["row_id"])[0][0])
    assert (first["label"], first["prediction"]) == (label[i], pred[i]) and first["label"] != first["prediction"]


@pytest.mark.parametrize("chunk_rows", [10**9, 700, 1])
def test_sorted_copy_orders_cells_and_confidence(tmp_path, small_batches, chunk_rows):
    row_id, label, pred, conf = synthetic(n=3000, k=5, nan_every=97)
    perm = np.random.default_rng(1).permutation(len(row_id))  # a file not sorted by row_id
    write(tmp_path, row_id[perm], label[perm], pred[perm], conf[perm], row_group_size=400)
    data = analysis.write_analysis(str(tmp_path), chunk_rows=chunk_rows)
    table = pq.read_table(tmp_path / analysis.SORTED_FILE)
    assert pq.ParquetFile(tmp_path / analysis.SORTED_FILE).metadata.row_group(0).num_rows <= 250
    assert table.schema == analysis._schema()
    key = np.nan_to_num(conf, nan=-np.inf)
    expected = np.lexsort((row_id, -key, pred, label))
    assert table.column("row_id").to_pylist() == row_id[expected].tolist()
    assert table.column("prediction").to_pylist() == pred[expected].tolist()
    # every cell is the range its confusion-matrix offset says
    cm = np.array(data["confusion"]).ravel()
    starts = np.concatenate([[0], np.cumsum(cm)[:-1]])
    labels = table.column("label").to_numpy()
    t, p = 3, 1
    cell = slice(starts[t * 5 + p], starts[t * 5 + p] + cm[t * 5 + p])
    assert set(labels[cell]) == {t} and set(table.column("prediction").to_numpy()[cell]) == {p}
    assert data["confidence"]["nan"] == int(np.isnan(conf).sum()) > 0
    assert data["sorted"]["rows"] == len(row_id)
    assert not [f for f in os.listdir(tmp_path) if "spill" in f or "tmp" in f]  # temp files removed


def test_empty_predictions(tmp_path):
    write(tmp_path, np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
    data = analysis.write_analysis(str(tmp_path), num_classes=3)
    assert data["rows"] == 0 and data["accuracy"] is None and data["confusion"] == [[0] * 3] * 3
    assert pq.read_table(tmp_path / analysis.SORTED_FILE).num_rows == 0


def test_stale_analysis_is_recomputed(tmp_path):
    row_id, label, pred, conf = synthetic(n=200)
    write(tmp_path, row_id, label, pred, conf)
    first = analysis.ensure_analysis(str(tmp_path))
    assert analysis.ensure_analysis(str(tmp_path)) == json.loads(json.dumps(first))  # read back, not recomputed
    write(tmp_path, row_id[:150], label[:150], pred[:150], conf[:150])  # predictions rewritten
    assert analysis.read_analysis(str(tmp_path)) is None
    assert analysis.ensure_analysis(str(tmp_path))["rows"] == 150
    assert analysis.ensure_analysis(str(tmp_path / "nothing-here")) is None


def test_bad_predictions_are_refused(tmp_path):
    write(tmp_path, np.arange(3), np.array([0, -1, 2]), np.array([0, 1, 2]), np.ones(3, np.float32))
    with pytest.raises(ValueError, match="negative"):
        analysis.analyze(str(tmp_path / "predictions.parquet"))
    write(tmp_path, np.arange(2), np.array([0, analysis.MAX_CLASSES]), np.array([0, 1]), np.ones(2, np.float32))
    with pytest.raises(ValueError, match="classes"):
        analysis.analyze(str(tmp_path / "predictions.parquet"))
    pq.write_table(pa.table({"row_id": [1], "label": [0]}), tmp_path / "predictions.parquet")
    with pytest.raises(ValueError, match="missing column"):
        analysis.analyze(str(tmp_path / "predictions.parquet"))


def test_write_predictions_writes_the_analysis(tmp_path):
    rows = [(7, 2, 0, 0.55), (3, 1, 1, 0.9), (9, 0, 0, 0.7)]  # not sorted: the writer sorts by row_id
    seconds = inference.write_predictions(rows, str(tmp_path), num_classes=3)
    assert seconds is not None
    assert pq.read_table(tmp_path / "predictions.parquet").column("row_id").to_pylist() == [3, 7, 9]
    data = analysis.read_analysis(str(tmp_path))
    assert data["confusion"] == [[1, 0, 0], [0, 1, 0], [1, 0, 0]]
    assert data["misclassified_top"] == [{"row_id": 7, "label": 2, "prediction": 0, "confidence": 0.55}]


def test_a_failing_analysis_does_not_fail_the_predictions(tmp_path, monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(analysis, "write_analysis", broken)
    assert inference.write_predictions([(1, 0, 0, 0.9)], str(tmp_path)) is None
    assert (tmp_path / "predictions.parquet").exists() and (tmp_path / "predictions.csv").exists()
    assert "prediction analysis failed" in capsys.readouterr().err


def test_to_numpy_views_numeric_columns_without_copying():
    arr = pa.array([1.5, 2.5, 3.5], pa.float32()).slice(1)
    out = analysis.to_numpy(arr)
    assert out.dtype == np.float32 and out.tolist() == [2.5, 3.5]
    assert analysis.to_numpy(pa.chunked_array([[1, 2], [3]])).tolist() == [1, 2, 3]
    assert np.isnan(analysis.to_numpy(pa.array([1.0, None]))[1])
