"""Batch scoring (workers/jobs/score.py) on a local Spark session through pyspark's predict_batch_udf:
every row scored once, predictions equal to the model's own, sorted by row id, top-k and class names,
an unlabelled dataset, and the standardization of another dataset mapped onto the model's."""

import csv
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.jobs.submit import DRIVER, spark_submit_local
from workers.jobs import data, score

pytestmark = [pytest.mark.spark]


@pytest.fixture(scope="module")
def spark():
    import os

    from pyspark.sql import SparkSession

    # In-process pyspark takes the workers' Python from the environment only (spark-submit reads the conf).
    os.environ["PYSPARK_PYTHON"] = sys.executable

    session = (
        SparkSession.builder.master("local[2]")
        .appName("sparkdeck-test-score")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .getOrCreate()
    )
    yield session
    session.stop()
    # py4j logs its connections' close from __del__ at exit, after pytest closed the log stream.
    import logging

    logging.getLogger("py4j").setLevel(logging.WARNING)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory, digits):
    import tf_keras

    x, y, _ = data.read_arrays(digits["train"], digits["shape"])
    tf_keras.utils.set_random_seed(1)
    model = tf_keras.Sequential(
        [
            tf_keras.layers.Input(shape=tuple(digits["shape"])),
            tf_keras.layers.Flatten(),
            tf_keras.layers.Dense(32, activation="relu"),
            tf_keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=3, batch_size=64, verbose=0)
    path = tmp_path_factory.mktemp("model") / "model.keras"
    model.save(path)
    return str(path)


def expected(model_path, x):
    from workers.jobs import modelfile

    return np.asarray(modelfile.load_safe(model_path).predict(x, verbose=0))


def test_every_row_is_scored_once_in_row_id_order_as_the_model_predicts(spark, digits, model_path, tmp_path):
    names = [f"digit {i}" for i in range(10)]
    summary = score.score(
        spark, digits["test"], model_path, digits["shape"], str(tmp_path), class_names=names, batch_size=50,
        partitions=3,
    )  # fmt: skip
    x, y, ids = data.read_arrays(digits["test"], digits["shape"])
    probs = expected(model_path, x)
    assert summary["rows"] == len(ids) == 360 and summary["labelled"]
    table = pq.read_table(tmp_path / "predictions.parquet")
    assert table.column_names == [
        "row_id", "label", "prediction", "class_name", "confidence", "top_classes", "top_probs",
    ]  # fmt: skip
    got = table.to_pydict()
    assert got["row_id"] == sorted(ids.tolist())  # sorted, each row once
    order = np.argsort(ids)
    assert got["label"] == y[order].tolist()
    assert got["prediction"] == probs.argmax(axis=1)[order].tolist()
    np.testing.assert_allclose(got["confidence"], probs.max(axis=1)[order], rtol=1e-4, atol=1e-5)
    assert got["class_name"][:3] == [names[p] for p in got["prediction"][:3]]
    top = np.asarray(got["top_classes"])
    assert top.shape == (360, 3) and (top[:, 0] == np.asarray(got["prediction"])).all()
    tp = np.asarray(got["top_probs"])
    assert (np.diff(tp, axis=1) <= 0).all()  # best first
    assert summary["accuracy"] == pytest.approx(float(np.mean(probs.argmax(axis=1) == y)), abs=1e-6)
    with open(tmp_path / "predictions.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["row_id", "label", "prediction", "class_name", "confidence",
                       "top1_class", "top1_prob", "top2_class", "top2_prob", "top3_class", "top3_prob"]  # fmt: skip
    assert len(rows) == 361 and rows[1][3] == got["class_name"][0] and rows[1][5] == got["class_name"][0]
    assert not (tmp_path / score.PARTS_DIR).exists()  # Spark's part files are gone once merged


def test_an_unlabelled_dataset_is_scored_without_a_label_column(spark, digits, model_path, tmp_path):
    table = pq.read_table(digits["test"]).drop(["label"])
    path = tmp_path / "unlabelled.parquet"
    pq.write_table(table, path)
    summary = score.score(spark, str(path), model_path, digits["shape"], str(tmp_path / "out"), top_k=20)
    assert summary == {"rows": 360, "labelled": False}
    got = pq.read_table(tmp_path / "out" / "predictions.parquet")
    assert "label" not in got.column_names
    assert len(got.column("top_classes")[0].as_py()) == 10  # top-k is at most the class count
    assert got.column("class_name")[0].as_py() == str(got.column("prediction")[0].as_py())  # no names: the index


def test_another_datasets_standardization_is_mapped_onto_the_models():
    rng = np.random.default_rng(0)
    raw = rng.normal(5, 3, size=(50, 4))
    mine = {"mean": raw.mean(0).tolist(), "std": raw.std(0).tolist()}
    model = {"mean": [1.0, 2.0, 3.0, 4.0], "std": [2.0, 2.0, 0.5, 1.0]}
    scale, shift = score.affine({"from": mine, "to": model})
    as_stored = (raw - raw.mean(0)) / raw.std(0)  # how the new dataset's Parquet holds them
    np.testing.assert_allclose(as_stored * scale + shift, (raw - model["mean"]) / model["std"], atol=1e-5)  # float32
    with pytest.raises(ValueError, match="different feature counts"):
        score.affine({"from": mine, "to": {"mean": [0.0], "std": [1.0]}})
    assert score.affine(None) is None


def test_merging_keeps_row_id_order_across_parts(tmp_path):
    parts = tmp_path / "parts"
    parts.mkdir()
    for i, ids in enumerate(([1, 4, 9], [0, 2, 3, 7], [5])):
        n = len(ids)
        pq.write_table(
            pa.table(
                {
                    "row_id": pa.array(ids, pa.int64()),
                    "prediction": pa.array([r % 2 for r in ids], pa.int64()),
                    "confidence": pa.array([0.9] * n, pa.float32()),
                    "top_classes": pa.array([[r % 2, 1 - r % 2] for r in ids], pa.list_(pa.int64())),
                    "top_probs": pa.array([[0.9, 0.1]] * n, pa.list_(pa.float32())),
                }
            ),
            parts / f"part-{i:05d}.parquet",
        )
    summary = score.merge_parts(str(parts), str(tmp_path), ["even", "odd"], labelled=False)
    got = pq.read_table(tmp_path / "predictions.parquet").to_pydict()
    assert summary == {"rows": 8, "labelled": False}
    assert got["row_id"] == [0, 1, 2, 3, 4, 5, 7, 9]
    assert got["class_name"] == ["even", "odd", "even", "odd", "even", "odd", "odd", "odd"]


def test_the_driver_runs_a_scoring_spec_as_a_plain_spark_job(digits, model_path, tmp_path):
    import json

    spec = {
        "kind": "score",
        "run_id": 7,
        "app_name": "sparkdeck-test-score",
        "inputs": [digits["train"], digits["test"]],  # a whole dataset: both of its files
        "shape": digits["shape"],
        "model": model_path,
        "artifact_dir": str(tmp_path / "art"),
        "class_names": digits["class_names"],
        "top_k": 2,
        "batch_size": 128,
    }
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    out = spark_submit_local(DRIVER, "--spec", path, master="local[2]")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "SPARKDECK_RESULT" in out.stdout and "TFCluster" not in out.stdout + out.stderr  # no TFoS
    result = json.loads((tmp_path / "art" / "result.json").read_text())
    assert (result["kind"], result["rows"], result["labelled"], result["top_k"]) == ("score", 1797, True, 2)
    pred = tmp_path / "art" / "predictions"
    table = pq.read_table(pred / "predictions.parquet")
    assert table.column("row_id").to_pylist() == list(range(1797))  # every digit once, in order
    x = np.concatenate([data.read_arrays(digits[s], digits["shape"])[0] for s in ("train", "test")])
    ids = np.concatenate([data.read_arrays(digits[s], digits["shape"])[2] for s in ("train", "test")])
    want = expected(model_path, x).argmax(axis=1)[np.argsort(ids)]
    assert table.column("prediction").to_pylist() == want.tolist()
    analysis = json.loads((pred / "analysis.json").read_text())
    assert analysis["rows"] == 1797 and result["test_accuracy"] > 0.5


@pytest.mark.parametrize(
    "change, words",
    [
        ({"kind": "train"}, "kind"),
        ({"inputs": []}, "inputs"),
        ({"inputs": ["relative.parquet"]}, "inputs[0]"),
        ({"shape": [8, 0]}, "shape"),
        ({"top_k": 0}, "top_k"),
        ({"batch_size": 10**6}, "batch_size"),
        ({"rescale": {"from": {"mean": []}}}, "rescale"),
        ({"model": ""}, "model"),
        ({"class_names": "0,1"}, "class_names"),
    ],
)
def test_a_bad_scoring_spec_is_refused_naming_its_field(change, words):
    from workers.jobs.spec import SpecError, parse_score_spec

    good = {"kind": "score", "app_name": "a", "inputs": ["/d/t.parquet"], "shape": [8, 8, 1], "model": "/m.keras",
            "artifact_dir": "/art"}  # fmt: skip
    assert parse_score_spec(good).top_k == 3
    with pytest.raises(SpecError, match=words.replace("[", r"\[")):
        parse_score_spec({**good, **change})
