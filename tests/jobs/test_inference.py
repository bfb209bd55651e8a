import csv
import os

import numpy as np
import pyarrow.parquet as pq
import pytest

from workers.jobs import inference, templates


def test_write_predictions_single_files(tmp_path):
    rows = [(3, 1, 1, 0.9), (7, 2, 0, 0.55)]
    inference.write_predictions(rows, str(tmp_path / "predictions"))
    # and the analysis the web pages read (tests/jobs/test_analysis.py)
    assert sorted(os.listdir(tmp_path / "predictions")) == [
        "analysis.json",
        "by_class.parquet",
        "predictions.csv",
        "predictions.parquet",
    ]
    table = pq.read_table(tmp_path / "predictions" / "predictions.parquet")
    assert table.column_names == ["row_id", "label", "prediction", "confidence"]
    assert table.column("row_id").to_pylist() == [3, 7]
    with open(tmp_path / "predictions" / "predictions.csv") as f:
        got = list(csv.reader(f))
    assert got == [
        ["row_id", "label", "prediction", "confidence"],
        ["3", "1", "1", "0.900000"],
        ["7", "2", "0", "0.550000"],
    ]


def test_predict_shards_loads_the_model_and_covers_its_shard(tmp_path, digits):
    model = templates.build_cnn(digits["shape"], 10)
    path = str(tmp_path / "model.keras")
    model.save(path)
    out = [list(inference.predict_shards(digits["test"], path, digits["shape"], 2, [k])) for k in (0, 1)]
    assert [len(o) for o in out] == [180, 180]
    rows = out[0] + out[1]
    assert len({r[0] for r in rows}) == 360  # every test row once, by row_id
    for row_id, label, pred, conf, loss in rows:
        assert isinstance(row_id, int) and 0 <= label < 10 and 0 <= pred < 10 and 0.0 < conf <= 1.0
        assert loss >= 0.0
    # The per-row losses average to what Keras's own loss says on the same rows.
    from workers.jobs import data

    x, y, _ = data.read_arrays(digits["test"], digits["shape"])
    model.compile(loss="sparse_categorical_crossentropy")
    keras_loss = model.evaluate(x, y, batch_size=360, verbose=0)
    assert inference.mean_log_loss(np.exp(-np.array([r[4] for r in rows]))) == pytest.approx(keras_loss, rel=1e-4)
    assert list(inference.predict_shards(digits["test"], "/nonexistent.keras", digits["shape"], 400, [399])) == []
    x = np.zeros((1, 8, 8, 1), np.float32)
    assert model.predict(x, verbose=0).shape == (1, 10)


def test_mean_log_loss_clips_like_keras():
    assert inference.mean_log_loss([]) is None
    assert inference.mean_log_loss([1.0, 1.0]) == pytest.approx(1e-7, abs=1e-6)
    assert inference.mean_log_loss([0.0]) == pytest.approx(-np.log(1e-7), rel=1e-6)  # not infinite
    assert inference.mean_log_loss([0.5, 0.25]) == pytest.approx((np.log(2) + np.log(4)) / 2, rel=1e-6)
