"""ingest(..., test_src=...): a test split uploaded as its own file instead of a fraction of the rows."""

import io
import json
import zipfile

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from webapp.datasets.ingest import DatasetError, ingest, read_info


def write_csv(path, rows, header=("a", "b", "label")):
    path.write_text(",".join(header) + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    return path


def write_npz(path, **arrays):
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    return path


def read_split(path):
    table = pq.read_table(path)
    return (
        table.column("row_id").to_numpy(),
        table.column("label").to_numpy(),
        np.array(table.column("features").to_pylist(), dtype=np.float32),
    )


TRAIN = [(i, 10 - i % 10, ("x", "y", "z")[i % 3]) for i in range(30)]
TEST = [(i, 20, ("z", "x")[i % 2]) for i in range(7)]  # a value above the training range; no 'y'


def test_uploaded_test_file(tmp_path):
    train = write_csv(tmp_path / "train.csv", TRAIN)
    test = write_csv(tmp_path / "test.csv", TEST)

    info = ingest(train, "csv", tmp_path / "ds", test_src=test)

    assert (info.train_rows, info.test_rows, info.rows) == (30, 7, 37)
    assert info.class_names == ["x", "y", "z"] and info.class_counts == [10 + 3, 10, 10 + 4]
    assert (info.split_mode, info.test_source_format, info.test_fraction, info.seed) == ("uploaded", "csv", None, None)
    # A table: standardized with the training file's statistics alone (the test file's 20s left out).
    assert (info.layout, info.shape, info.offset, info.scale) == ("table", (2,), 0.0, 1.0)
    a, b = np.arange(30.0), 10.0 - np.arange(30) % 10
    mean, std = np.array([a.mean(), b.mean()]), np.array([a.std(), b.std()])
    np.testing.assert_allclose(info.standardize["mean"], mean)
    np.testing.assert_allclose(info.standardize["std"], std)
    assert info.column_stats["max"] == [29.0, 20.0]  # the raw values of both files, for the page
    meta = json.loads((tmp_path / "ds" / "meta.json").read_text())
    assert meta["split"] == {"mode": "uploaded", "test_source_format": "csv"}
    assert read_info(tmp_path / "ds") == info

    ids, labels, x = read_split(tmp_path / "ds" / "train.parquet")
    assert np.array_equal(ids, np.arange(30))  # every training row, in file order
    assert labels.tolist() == [i % 3 for i in range(30)]
    ids, labels, x = read_split(tmp_path / "ds" / "test.parquet")
    assert np.array_equal(ids, np.arange(7))  # row ids count the test file's rows
    assert labels.tolist() == [2, 0] * 3 + [2]  # in the training file's class indices
    np.testing.assert_allclose(x, (np.array([(i, 20) for i in range(7)]) - mean) / std, atol=1e-6)

    # Asked for as images: min-max scaled with the range of both files together.
    info = ingest(train, "csv", tmp_path / "img", test_src=test, layout="image")
    assert (info.shape, info.offset, info.scale, info.standardize) == ((1, 2, 1), 0.0, 29.0, None)
    _, _, x = read_split(tmp_path / "img" / "test.parquet")
    np.testing.assert_allclose(x, np.array([(i, 20) for i in range(7)]) / 29.0, atol=1e-6)


def test_test_file_of_another_format(tmp_path):
    train = write_csv(tmp_path / "train.csv", TRAIN)
    x = np.array([(i, 5) for i in range(4)], dtype=np.float32)
    test = write_npz(tmp_path / "test.npz", x=x, y=np.array(["x", "y", "x", "y"]))
    info = ingest(train, None, tmp_path / "ds", test_src=test)
    assert info.test_source_format == "npz" and info.test_rows == 4 and info.dtype == "int64"


def test_classes_need_only_one_training_row(tmp_path):
    write_csv(tmp_path / "train.csv", [(1, 2, "x"), (3, 4, "y"), (5, 6, "y")])
    write_csv(tmp_path / "test.csv", [(1, 2, "y")])
    info = ingest(tmp_path / "train.csv", "csv", tmp_path / "ds", test_src=tmp_path / "test.csv", test_fmt="csv")
    assert info.class_counts == [1, 3]
    with pytest.raises(DatasetError, match="at least 2 classes"):
        write_csv(tmp_path / "one.csv", [(1, 2, "x"), (3, 4, "x")])
        ingest(tmp_path / "one.csv", "csv", tmp_path / "one", test_src=tmp_path / "test.csv")


def test_mismatches_are_refused(tmp_path):
    train = write_csv(tmp_path / "train.csv", TRAIN)
    write_csv(tmp_path / "extra.csv", [(1, 2, "x"), (1, 2, "w"), (1, 2, "v")])
    write_csv(tmp_path / "wide.csv", [(1, 2, 3, "x")], header=("a", "b", "c", "label"))
    write_csv(tmp_path / "nolabel.csv", [(1, 2, "x")], header=("a", "b", "kind"))
    cases = [
        ("extra.csv", "The test file has class(es) 'v', 'w' that the training file does not have"),
        ("wide.csv", "The test file's rows have 3 features but the training file's have 2; they must match"),
        ("nolabel.csv", "In the test file: The CSV has no column named 'label'"),
        ("missing.csv", "The dataset could not be read or written (No such file or directory)"),
        ("test.xlsx", "In the test file: Unsupported file type (.xlsx)"),
    ]
    (tmp_path / "test.xlsx").write_bytes(b"PK\x03\x04")
    for name, message in cases:
        with pytest.raises(DatasetError) as err:
            ingest(train, "csv", tmp_path / "ds", test_src=tmp_path / name)
        assert message in str(err.value)
        assert not (tmp_path / "ds").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary directory left


def test_image_zips_share_channels(tmp_path):
    def write(path, mode):
        rng = np.random.default_rng(len(mode))
        shape = (4, 4, 3) if mode == "RGB" else (4, 4)
        with zipfile.ZipFile(path, "w") as zf:
            for c in "ab":
                for i in range(2):
                    buf = io.BytesIO()
                    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(buf, "PNG")
                    zf.writestr(f"{c}/{i}.png", buf.getvalue())
        return path

    gray, rgb = write(tmp_path / "gray.zip", "L"), write(tmp_path / "rgb.zip", "RGB")
    info = ingest(gray, "zip", tmp_path / "ds", test_src=rgb)  # a colour test set makes both RGB
    assert info.shape == (4, 4, 3) and (info.train_rows, info.test_rows) == (4, 4)
    _, _, x = read_split(tmp_path / "ds" / "train.parquet")
    x = x.reshape(-1, 4, 4, 3)
    assert np.array_equal(x[..., 0], x[..., 2])  # gray images: three equal channels

    big = tmp_path / "big.zip"
    with zipfile.ZipFile(big, "w") as zf:
        for c in "ab":
            buf = io.BytesIO()
            Image.fromarray(np.zeros((6, 6), np.uint8)).save(buf, "PNG")
            zf.writestr(f"{c}/0.png", buf.getvalue())
    with pytest.raises(DatasetError, match="shape 6×6×1 but the training file's have 4×4×1.*image size"):
        ingest(gray, "zip", tmp_path / "bad", test_src=big)
    assert ingest(gray, "zip", tmp_path / "sized", test_src=big, image_size=(5, 5)).shape == (5, 5, 1)


def test_test_fmt_needs_test_src(tmp_path):
    train = write_csv(tmp_path / "train.csv", TRAIN)
    with pytest.raises(ValueError, match="test_fmt"):
        ingest(train, "csv", tmp_path / "ds", test_fmt="csv")
