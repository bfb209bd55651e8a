"""Table datasets: CSV/TSV/Parquet rows as feature vectors, standardized with the training rows' statistics."""

import io
import json
import zipfile

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from PIL import Image
from sklearn.datasets import load_breast_cancer, load_wine

from webapp.datasets.ingest import DatasetError, column_summary, csv_reader, ingest, preview, read_info
from workers.jobs.standardize import Standardizer

LOADERS = {"breast_cancer": load_breast_cancer, "wine": load_wine}


def frame_of(name: str) -> pd.DataFrame:
    return LOADERS[name](as_frame=True).frame.rename(columns={"target": "label"})


def split_of(dest, name):
    table = pq.read_table(dest / name)
    return table.column("row_id").to_numpy(), np.array(table.column("features").to_pylist(), dtype=np.float64)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("name,features", [("breast_cancer", 30), ("wine", 13)])
def test_sklearn_tables(tmp_path, name, features, fmt):
    df = frame_of(name)
    src = tmp_path / f"{name}.{fmt}"
    df.to_csv(src, index=False) if fmt == "csv" else df.to_parquet(src)
    dest = tmp_path / "ds"

    info = ingest(src, None, dest)

    assert (info.layout, info.shape, info.source_format) == ("table", (features,), fmt)
    assert info.columns == [c for c in df.columns if c != "label"]
    raw = df.drop(columns="label").to_numpy(dtype=np.float64)
    train_ids, train = split_of(dest, "train.parquet")
    test_ids, test = split_of(dest, "test.parquet")
    assert (len(train), len(test)) == (info.train_rows, info.test_rows) and len(test) > 0
    # The training split is standardized by its own statistics...
    np.testing.assert_allclose(train.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(train.std(axis=0), 1.0, atol=1e-4)
    np.testing.assert_allclose(info.standardize["mean"], raw[train_ids].mean(axis=0), rtol=1e-9)
    np.testing.assert_allclose(info.standardize["std"], raw[train_ids].std(axis=0), rtol=1e-9)
    # ... and the test split by the same ones (not its own), stored as float32 and not clipped.
    mean, std = raw[train_ids].mean(axis=0), raw[train_ids].std(axis=0)
    np.testing.assert_allclose(test, (raw[test_ids] - mean) / std, rtol=1e-5, atol=1e-5)
    assert not np.allclose(test.mean(axis=0), 0.0, atol=1e-5)
    assert train.min() < 0.0 and train.max() > 1.0
    # The transform the workers will apply to scored rows gives the very stored values.
    again = Standardizer.from_meta(json.loads((dest / "meta.json").read_text())["standardize"]).apply(raw[test_ids])
    np.testing.assert_array_equal(again, test.astype(np.float32))
    # Column statistics of the raw values over every row, for the dataset page.
    assert info.column_stats["min"] == pytest.approx(raw.min(axis=0).tolist())
    assert info.column_stats["max"] == pytest.approx(raw.max(axis=0).tolist())
    assert info.column_stats["mean"] == pytest.approx(raw.mean(axis=0).tolist())
    assert info.column_stats["missing"] == [0] * features
    assert read_info(dest) == info
    rows = preview(dest, n=3)
    assert all(r.features.shape == (features,) for r in rows)


def test_meta_json_of_a_table(tmp_path):
    (tmp_path / "t.csv").write_text("x,const,label\n" + "".join(f"{i},7,{'ab'[i % 2]}\n" for i in range(10)))
    ingest(tmp_path / "t.csv", "csv", tmp_path / "ds", test_fraction=0.2)
    meta = json.loads((tmp_path / "ds" / "meta.json").read_text())
    assert (meta["layout"], meta["shape"], meta["offset"], meta["scale"]) == ("table", [2], 0.0, 1.0)
    assert meta["columns"] == ["x", "const"]
    assert set(meta["standardize"]) == {"mean", "std"} and meta["standardize"]["std"][1] == 1.0
    assert meta["column_stats"] == {
        "min": [0.0, 7.0],
        "max": [9.0, 7.0],
        "mean": [4.5, 7.0],
        "missing": [0, 0],
    }
    _, train = split_of(tmp_path / "ds", "train.parquet")
    assert (train[:, 1] == 0.0).all()  # a constant column becomes 0
    summary, count = column_summary(tmp_path / "ds")
    assert count == 2 and [(c.name, c.min_text, c.max_text, c.mean_text, c.missing) for c in summary] == [
        ("x", "0", "9", "4.5", 0),
        ("const", "7", "7", "7", 0),
    ]


def test_test_rows_never_move_the_statistics(tmp_path):
    """A test row with a huge value changes nothing of the training statistics or the training rows."""
    rows = [(i, i % 3, "ab"[i % 2]) for i in range(40)]
    text = "a,b,label\n" + "".join(f"{a},{b},{c}\n" for a, b, c in rows)
    (tmp_path / "plain.csv").write_text(text)
    plain = ingest(tmp_path / "plain.csv", "csv", tmp_path / "plain")
    test_ids, _ = split_of(tmp_path / "plain", "test.parquet")
    huge = text.splitlines()
    huge[1 + int(test_ids[0])] = f"1e12,0,{rows[int(test_ids[0])][2]}"  # the same split (labels unchanged)
    (tmp_path / "huge.csv").write_text("\n".join(huge) + "\n")
    info = ingest(tmp_path / "huge.csv", "csv", tmp_path / "huge")
    assert np.array_equal(split_of(tmp_path / "huge", "test.parquet")[0], test_ids)
    assert info.standardize == plain.standardize
    assert pq.read_table(tmp_path / "huge" / "train.parquet").equals(
        pq.read_table(tmp_path / "plain" / "train.parquet")
    )
    _, test = split_of(tmp_path / "huge", "test.parquet")
    mean, std = info.standardize["mean"][0], info.standardize["std"][0]
    assert test[0, 0] == pytest.approx((1e12 - mean) / std, rel=1e-6)  # not clipped
    assert info.column_stats["max"][0] == 1e12  # the page shows every row's raw values


def test_small_chunks_give_the_same_table(tmp_path, monkeypatch):
    frame_of("wine").to_csv(tmp_path / "w.csv", index=False)
    big = ingest(tmp_path / "w.csv", "csv", tmp_path / "big")
    monkeypatch.setattr(csv_reader, "CHUNK_VALUES", 14 * 5)  # 16-row chunks (the minimum)
    small = ingest(tmp_path / "w.csv", "csv", tmp_path / "small")
    np.testing.assert_allclose(small.standardize["mean"], big.standardize["mean"], rtol=1e-12)
    np.testing.assert_allclose(small.standardize["std"], big.standardize["std"], rtol=1e-12)
    for name in ("train.parquet", "test.parquet"):
        np.testing.assert_allclose(
            split_of(tmp_path / "small", name)[1], split_of(tmp_path / "big", name)[1], atol=1e-6
        )


def test_headerless_csv_gets_generated_column_names(tmp_path):
    (tmp_path / "h.csv").write_text("".join(f"{i},{i * 2},{i % 2}\n" for i in range(10)))
    info = ingest(tmp_path / "h.csv", "csv", tmp_path / "ds")
    assert (info.layout, info.shape, info.columns) == ("table", (2,), ["f0", "f1"])


def test_list_column_parquet_and_tsv_are_tables(tmp_path):
    pd.DataFrame({"v": [[float(i), float(i % 4)] for i in range(12)], "label": [i % 2 for i in range(12)]}).to_parquet(
        tmp_path / "l.parquet"
    )
    info = ingest(tmp_path / "l.parquet", "parquet", tmp_path / "l")
    assert (info.layout, info.shape, info.columns) == ("table", (2,), ["f0", "f1"])
    (tmp_path / "t.tsv").write_text("a\tb\tlabel\n" + "".join(f"{i}\t{i % 3}\t{i % 2}\n" for i in range(10)))
    assert ingest(tmp_path / "t.tsv", None, tmp_path / "t").layout == "table"


def images_zip(path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for cls in ("a", "b"):
            for i in range(3):
                png = io.BytesIO()
                Image.new("L", (4, 4), 40 * i).save(png, "PNG")
                zf.writestr(f"{cls}/{i}.png", png.getvalue())
    path.write_bytes(buf.getvalue())
    return path


def test_image_shape_or_format_keeps_images(tmp_path):
    (tmp_path / "p.csv").write_text("a,b,c,d,label\n" + "".join(f"{i},1,2,{i},{i % 2}\n" for i in range(10)))
    info = ingest(tmp_path / "p.csv", "csv", tmp_path / "img", image_shape=(2, 2))  # a shape: images
    assert (info.layout, info.shape, info.standardize, info.columns) == ("image", (2, 2, 1), None, None)
    assert "standardize" not in json.loads((tmp_path / "img" / "meta.json").read_text())
    _, x = split_of(tmp_path / "img", "train.parquet")
    assert x.min() >= 0.0 and x.max() <= 1.0  # min-max scaled, as images always were

    with open(tmp_path / "x.npz", "wb") as fh:  # NPZ: images (flat rows too, as before)
        np.savez(fh, x=np.arange(40.0).reshape(10, 4), y=np.arange(10) % 2)
    assert ingest(tmp_path / "x.npz", "npz", tmp_path / "npz").shape == (2, 2, 1)
    assert ingest(tmp_path / "x.npz", "npz", tmp_path / "npz-table", layout="table").shape == (4,)

    assert ingest(images_zip(tmp_path / "i.zip"), "zip", tmp_path / "zip", test_fraction=0.5).layout == "image"


def test_table_refusals(tmp_path):
    with open(tmp_path / "x.npz", "wb") as fh:
        np.savez(fh, x=np.zeros((10, 2, 2)), y=np.arange(10) % 2)
    with pytest.raises(DatasetError, match=r"A table needs flat rows .* each row here has shape \(2, 2\)"):
        ingest(tmp_path / "x.npz", "npz", tmp_path / "ds", layout="table")
    (tmp_path / "p.csv").write_text("a,b,label\n" + "".join(f"{i},1,{i % 2}\n" for i in range(10)))
    with pytest.raises(DatasetError, match="the shape 2x2 does not apply.*choose the image layout"):
        ingest(tmp_path / "p.csv", "csv", tmp_path / "ds", layout="table", image_shape=(2, 2))
    assert ingest(tmp_path / "p.csv", "csv", tmp_path / "ok", layout="table", image_shape=(2,)).shape == (2,)
    with pytest.raises(DatasetError, match="ZIP of images can only become an image dataset"):
        ingest(images_zip(tmp_path / "i.zip"), "zip", tmp_path / "ds", layout="table")
    with pytest.raises(DatasetError, match="Unknown dataset layout 'grid'"):
        ingest(tmp_path / "p.csv", "csv", tmp_path / "ds", layout="grid")
    assert not (tmp_path / "ds").exists()


@pytest.mark.parametrize(
    "content,message",
    [
        ("a,b,label\n1,2,x\n,3,y\n", "Line 3, column 'a' of the CSV: the value is empty"),
        ("a,b,label\n1,2,x\nNA,3,y\n", "Line 3, column 'a' of the CSV: 'NA' is not a number"),
        ("a,b,label\n1,2,x\nnan,3,y\n", "Line 3, column 'a' of the CSV: 'nan' is not a finite number"),
    ],
)
def test_missing_values_are_refused_as_before(tmp_path, content, message):
    """Readers refuse missing values (the user fills or drops them), so a table's "missing" counts are 0."""
    (tmp_path / "m.csv").write_text(content)
    with pytest.raises(DatasetError, match=message):
        ingest(tmp_path / "m.csv", "csv", tmp_path / "ds")
    pd.DataFrame({"a": [1.0, None, 3.0, 4.0], "label": [0, 1, 0, 1]}).to_parquet(tmp_path / "m.parquet")
    with pytest.raises(DatasetError, match="Row 1, column 'a' of the Parquet file is empty|holds NaN"):
        ingest(tmp_path / "m.parquet", "parquet", tmp_path / "ds")
