"""The MLP template's MLlib head through the real driver (spark-submit, local mode): fit on the training
rows less the validation split, validation and test scores, predictions, a downloadable model."""

import json
import zipfile

import pytest

from tests.jobs.digits import spec_dict
from tests.jobs.submit import DRIVER, spark_submit_local

pytestmark = [pytest.mark.spark]


def test_mlp_mllib_head_trains_validates_and_scores(tmp_path, digits, sink):
    spec = spec_dict(
        digits,
        tmp_path / "art",
        template="mlp",
        hyperparameters={"head": "mllib", "layers": 1, "units": 32, "max_iter": 30, "validation_split": 0.1},
        metrics={"url": sink.url, "token": "tok"},
        cluster_size=1,
    )
    spec["dataset"]["shape"] = [64]  # the digits' 64 pixels as table columns
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    out = spark_submit_local(DRIVER, "--spec", path)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    result = json.loads((tmp_path / "art" / "result.json").read_text())
    assert result["template"] == "mlp" and result["test_rows"] == 360
    assert result["test_accuracy"] >= 0.9, result["test_accuracy"]
    assert 0 < result["test_loss"] < 1.0 and result["val_accuracy"] >= 0.85
    # MLlib's objective history also holds the starting point: one more value than iterations.
    assert 1 < result["iterations"] <= 30 and len(result["history"]["loss"]) in (
        result["iterations"],
        result["iterations"] + 1,
    )
    names = zipfile.ZipFile(result["model"]).namelist()
    assert result["model"].endswith("model.zip") and any(n.startswith("mllib_mlp/") for n in names)
    points = sink.points("driver")
    val = [p for p in points if p["name"] in ("val_loss", "val_accuracy")]
    assert len(val) == 2 and {p["epoch"] for p in val} == {1}
    assert (tmp_path / "art" / "predictions" / "predictions.parquet").is_file()
