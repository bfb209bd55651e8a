"""webapp.datasets.ingest: conversion to the dataset layout of docs/architecture.md (no Django)."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.datasets import load_digits

from webapp.datasets.ingest import (
    DatasetError,
    Limits,
    csv_reader,
    detect_format,
    ingest,
    npz_reader,
    parse_shape,
    preview,
    read_info,
    write_digits_csv,
    write_digits_npz,
)


@pytest.fixture(scope="module")
def digits_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("digits")
    return {"npz": write_digits_npz(d / "digits.npz"), "csv": write_digits_csv(d / "digits.csv")}


@pytest.fixture(scope="module")
def digits():
    return load_digits()


def read_split(path):
    table = pq.read_table(path)
    features = np.array(table.column("features").to_pylist(), dtype=np.float32)
    return table.column("row_id").to_numpy(), table.column("label").to_numpy(), features


def write_npz(path, **arrays):
    with open(path, "wb") as fh:  # np.savez(path) would append ".npz" to odd names
        np.savez(fh, **arrays)


@pytest.mark.parametrize("fmt", ["npz", "csv"])
def test_digits_convert(digits_files, digits, tmp_path, fmt):
    dest = tmp_path / "ds"
    info = ingest(digits_files[fmt], fmt, dest, layout="image")  # a CSV too: its 64 columns as 8×8

    # Stratified 80/20 of 1797 rows: ceil(0.2 × 1797) = 360 test rows (as sklearn's train_test_split).
    assert (info.train_rows, info.test_rows, info.rows) == (1437, 360, 1797)
    assert info.shape == (8, 8, 1) and info.num_classes == 10
    assert info.class_names == [str(i) for i in range(10)]
    assert info.class_counts == np.bincount(digits.target).tolist()
    assert (info.scale, info.offset, info.source_format) == (16.0, 0.0, fmt)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]  # no temp dir left behind
    assert sorted(p.name for p in dest.iterdir()) == ["meta.json", "test.parquet", "train.parquet"]

    tr_ids, tr_labels, tr_x = read_split(dest / "train.parquet")
    te_ids, te_labels, te_x = read_split(dest / "test.parquet")
    assert (len(tr_ids), len(te_ids)) == (1437, 360)
    ids = np.concatenate([tr_ids, te_ids])
    assert np.array_equal(np.sort(ids), np.arange(1797))
    labels, x = np.concatenate([tr_labels, te_labels]), np.concatenate([tr_x, te_x])
    assert np.array_equal(labels, digits.target[ids])
    assert x.shape == (1797, 64) and x.min() == 0.0 and x.max() == 1.0
    np.testing.assert_allclose(x, digits.data[ids] / 16.0, rtol=0, atol=1e-7)
    for rid in (0, 1, 100, 1796):
        assert labels[ids == rid][0] == digits.target[rid]
    # Stratified: each class's test share is within one row of 20 %.
    test_counts = np.bincount(te_labels, minlength=10)
    assert np.all(np.abs(test_counts - 0.2 * np.bincount(digits.target)) < 1)

    meta = json.loads((dest / "meta.json").read_text())
    assert meta["shape"] == [8, 8, 1] and meta["num_classes"] == 10
    assert meta["class_names"] == info.class_names
    assert (meta["train_rows"], meta["test_rows"], meta["scale"]) == (1437, 360, 16.0)
    assert meta["split"] == {"mode": "fraction", "test_fraction": 0.2, "seed": 42}
    # The source's values: float32 images in the NPZ, whole numbers in the CSV's text.
    assert meta["dtype"] == info.dtype == {"npz": "float32", "csv": "int64"}[fmt]
    assert read_info(dest) == info

    parquet = pq.ParquetFile(dest / "train.parquet")
    assert parquet.schema_arrow.field("row_id").type == pa.int64()
    assert parquet.schema_arrow.field("label").type == pa.int64()
    assert parquet.schema_arrow.field("features").type.value_type == pa.float32()
    groups = [parquet.metadata.row_group(i).num_rows for i in range(parquet.num_row_groups)]
    assert groups == [1024, 413]

    again = ingest(digits_files[fmt], fmt, tmp_path / "again", layout="image")
    assert again == info
    assert np.array_equal(read_split(tmp_path / "again" / "test.parquet")[0], te_ids)


def test_npz_and_csv_give_identical_files(digits_files, tmp_path):
    ingest(digits_files["npz"], "npz", tmp_path / "a")
    ingest(digits_files["csv"], "csv", tmp_path / "b", layout="image")
    for name in ("train.parquet", "test.parquet"):
        assert pq.read_table(tmp_path / "a" / name).equals(pq.read_table(tmp_path / "b" / name))


def test_seed_changes_split_but_not_counts(digits_files, tmp_path):
    a = ingest(digits_files["npz"], "npz", tmp_path / "a")
    b = ingest(digits_files["npz"], "npz", tmp_path / "b", seed=7)
    assert (a.train_rows, a.test_rows) == (b.train_rows, b.test_rows)
    ids_a = read_split(tmp_path / "a" / "test.parquet")[0]
    ids_b = read_split(tmp_path / "b" / "test.parquet")[0]
    assert not np.array_equal(ids_a, ids_b)
    assert read_info(tmp_path / "b").seed == 7


def test_small_chunks_give_same_output(digits_files, tmp_path, monkeypatch):
    ingest(digits_files["csv"], "csv", tmp_path / "big", layout="image")
    monkeypatch.setattr(csv_reader, "CHUNK_VALUES", 64 * 10)  # → 16-row pandas chunks
    monkeypatch.setattr(npz_reader, "CHUNK_VALUES", 64 * 7)
    ingest(digits_files["csv"], "csv", tmp_path / "csv", layout="image")
    ingest(digits_files["npz"], "npz", tmp_path / "npz")
    for name in ("train.parquet", "test.parquet"):
        expected = pq.read_table(tmp_path / "big" / name)
        assert pq.read_table(tmp_path / "csv" / name).equals(expected)
        assert pq.read_table(tmp_path / "npz" / name).equals(expected)


def test_csv_string_labels_shape_and_minmax_scaling(tmp_path):
    rows = ["a,b,species,c,d"] + [f"{i - 5},{i % 3},{'dog' if i % 2 else 'cat'},0,{i}" for i in range(20)]
    src = tmp_path / "pets.csv"
    src.write_text("\n".join(rows) + "\n\n")  # trailing blank line is fine
    info = ingest(src, "csv", tmp_path / "ds", label_column="species", image_shape=(2, 2))
    assert info.class_names == ["cat", "dog"] and info.class_counts == [10, 10]
    assert info.shape == (2, 2, 1)
    assert (info.offset, info.scale) == (-5.0, 24.0)  # global min -5, max 19
    _, labels, x = read_split(tmp_path / "ds" / "train.parquet")
    assert x.min() >= 0 and x.max() <= 1 and set(labels) == {0, 1}


def test_int_labels_sort_numerically_and_shapes(tmp_path):
    src = tmp_path / "v.csv"
    src.write_text("f0,f1,f2,label\n" + "".join(f"{i},1,2,{(10, 9, 2)[i % 3]}\n" for i in range(12)))
    info = ingest(src, "csv", tmp_path / "ds")
    assert info.class_names == ["2", "9", "10"] and (info.layout, info.shape) == ("table", (3,))
    info = ingest(src, "csv", tmp_path / "as-image", layout="image")  # images asked for, no shape
    assert (info.layout, info.shape) == ("image", (1, 3, 1))  # 3 is no square

    rng = np.random.default_rng(0)
    y = np.repeat(["b", "a"], 6)
    write_npz(tmp_path / "sq.npz", x=rng.random((12, 9)), y=y)
    info = ingest(tmp_path / "sq.npz", "npz", tmp_path / "sq")
    assert info.shape == (3, 3, 1) and info.class_names == ["a", "b"]

    x = np.arange(12 * 2 * 3 * 3).reshape(12, 2, 3, 3)
    write_npz(tmp_path / "rgb.npz", x=x, y=np.arange(12) % 2)
    info = ingest(tmp_path / "rgb.npz", "npz", tmp_path / "rgb")
    assert info.shape == (2, 3, 3)
    ids, _, feats = read_split(tmp_path / "rgb" / "train.parquet")
    expected = (x.reshape(12, -1)[ids] - x.min()) / (x.max() - x.min())  # row-major H×W×C
    np.testing.assert_allclose(feats, expected, atol=1e-6)


def test_fortran_order_npz(tmp_path):
    x = np.asfortranarray(np.arange(40, dtype=np.float64).reshape(10, 4))
    write_npz(tmp_path / "f.npz", x=x, y=np.arange(10) % 2)
    ingest(tmp_path / "f.npz", "npz", tmp_path / "ds", image_shape=(4, 1))
    ids, _, feats = read_split(tmp_path / "ds" / "train.parquet")
    np.testing.assert_allclose(feats, x[ids] / 39.0, atol=1e-6)


def test_preview(digits_files, digits, tmp_path):
    ingest(digits_files["npz"], "npz", tmp_path / "ds")
    rows = preview(tmp_path / "ds", n=5)
    assert len(rows) == 5 and all(r.features.shape == (8, 8, 1) for r in rows)
    for r in rows:
        assert r.label == str(digits.target[r.row_id]) and r.label_index == digits.target[r.row_id]
        np.testing.assert_allclose(r.features[:, :, 0], digits.images[r.row_id] / 16, atol=1e-7)
    assert rows[0].head.count(" ") == 8 and rows[0].head.endswith("…")
    assert len(preview(tmp_path / "ds", n=5000)) == 1437


def test_detect_format():
    assert detect_format("Digits.NPZ", b"PK\x03\x04rest") == "npz"
    assert detect_format("x.csv", "a,label\n1,ü\n".encode()) == "csv"
    with pytest.raises(DatasetError, match="Unsupported file type"):
        detect_format("x.xlsx", b"PK\x03\x04")
    with pytest.raises(DatasetError, match="zip archive"):
        detect_format("x.csv", b"PK\x03\x04")


def test_parse_shape():
    assert parse_shape("28x28") == (28, 28)
    assert parse_shape(" 32, 32, 3 ") == (32, 32, 3)
    assert parse_shape("") is None
    with pytest.raises(DatasetError):
        parse_shape("big")


def test_existing_dest_is_a_caller_bug(digits_files, tmp_path):
    (tmp_path / "ds").mkdir()
    with pytest.raises(FileExistsError):
        ingest(digits_files["npz"], "npz", tmp_path / "ds")


def _csv(text: str):
    return lambda p: p.write_bytes(text.encode() if isinstance(text, str) else text)


def _npz(**arrays):
    return lambda p: write_npz(p, **arrays)


_X = np.arange(40, dtype=np.float32).reshape(10, 4)
_Y = np.arange(10) % 2
_NAN = _X.copy()
_NAN[3, 1] = np.nan
_INF = _X.copy()
_INF[6, 0] = np.inf
_WIDE = ",".join(f"p{i}" for i in range(10_001)) + ",label\n" + ",".join(["1"] * 10_002) + "\n"

BAD = [
    # id, file name, builder, fmt, ingest kwargs, message fragments
    ("empty", "d.csv", _csv(""), "csv", {}, ["empty"]),
    ("npz-not-zip", "d.npz", _csv("just some text"), "npz", {}, ["not an NPZ archive"]),
    ("csv-binary", "d.csv", _csv(bytes(range(256)) * 8), "csv", {}, ["binary data"]),
    ("npz-object", "d.npz", _npz(x=np.array([[1, "a"]] * 10, dtype=object), y=_Y), "npz", {}, ["dtype=object"]),
    ("npz-missing-y", "d.npz", _npz(x=_X, labels=_Y), "npz", {}, ["no array named 'y'", "'labels', 'x'"]),
    ("npz-length", "d.npz", _npz(x=_X, y=_Y[:9]), "npz", {}, ["'x' has 10 rows but 'y' has 9 labels"]),
    ("npz-nan", "d.npz", _npz(x=_NAN, y=_Y), "npz", {}, ["NaN", "row 3"]),
    ("npz-inf", "d.npz", _npz(x=_INF, y=_Y), "npz", {}, ["infinite", "row 6"]),
    ("npz-strings", "d.npz", _npz(x=_X.astype(str), y=_Y), "npz", {}, ["must hold numbers"]),
    ("npz-empty", "d.npz", _npz(x=np.zeros((0, 4)), y=np.zeros(0)), "npz", {}, ["empty"]),
    ("single-class", "d.npz", _npz(x=_X, y=np.zeros(10)), "npz", {}, ["at least 2 classes"]),
    ("one-row-class", "d.npz", _npz(x=_X, y=np.array([0] * 5 + [1] * 4 + [2])), "npz", {}, ["'2'", "only 1 row"]),
    (
        "too-many-classes",
        "d.npz",
        _npz(x=_X, y=np.arange(10)),
        "npz",
        {"limits": Limits(max_classes=5)},
        ["more than 5"],
    ),
    ("too-many-rows", "d.npz", _npz(x=_X, y=_Y), "npz", {"limits": Limits(max_rows=5)}, ["10 rows", "limit is 5"]),
    ("bad-shape", "d.npz", _npz(x=_X, y=_Y), "npz", {"image_shape": (3, 3)}, ["3×3×1 has 9 values"]),
    (
        "csv-ragged",
        "d.csv",
        _csv("a,b,label\n1,2,0\n3,4,1\n5,1\n6,7,0\n"),
        "csv",
        {},
        ["Line 4", "2 values", "3 columns"],
    ),
    (
        "csv-non-numeric",
        "d.csv",
        _csv("a,b,label\n1,2,0\n3,abc,1\n"),
        "csv",
        {},
        ["Line 3, column 'b'", "'abc' is not a number"],
    ),
    ("csv-empty-cell", "d.csv", _csv("a,b,label\n1,2,0\n3,,1\n"), "csv", {}, ["Line 3, column 'b'", "empty"]),
    ("csv-nan", "d.csv", _csv("a,b,label\n1,2,0\n3,4,1\nnan,1,1\n"), "csv", {}, ["Line 4, column 'a'", "not a finite"]),
    ("csv-no-label-column", "d.csv", _csv("a,b,class\n1,2,0\n3,4,1\n"), "csv", {}, ["no column named 'label'"]),
    # All numbers on the first line: no header, the label is the last column (here 1 row per class).
    ("csv-no-header", "d.csv", _csv("1,2,0\n3,4,1\n"), "csv", {}, ["class(es) '0', '1'", "only 1 row"]),
    ("csv-label-looks-like-data", "d.csv", _csv("1,2,cat\n3,4,dog\n"), "csv", {}, ["first line looks like data"]),
    ("csv-semicolons", "d.csv", _csv("a;b;label\n1;2;0\n"), "csv", {}, ["';' as separator"]),
    ("csv-empty-label", "d.csv", _csv("a,b,label\n1,2,0\n3,4,1\n3,4,\n"), "csv", {}, ["Line 4", "empty label"]),
    ("csv-not-utf8", "d.csv", _csv(b"a,b,label\n1,2,cat\n3,4,caf\xe9\n"), "csv", {}, ["Line 3", "UTF-8"]),
    ("csv-header-only", "d.csv", _csv("a,b,label\n"), "csv", {}, ["no data rows"]),
    ("csv-too-wide", "d.csv", _csv(_WIDE), "csv", {"limits": Limits(max_features=10_000)}, ["10,001 feature columns"]),
    ("csv-one-row-class", "d.csv", _csv("a,label\n1,x\n2,x\n3,y\n"), "csv", {}, ["'y'", "only 1 row"]),
    ("bad-fraction", "d.csv", _csv("a,label\n1,x\n2,x\n3,y\n4,y\n"), "csv", {"test_fraction": 1.5}, ["test fraction"]),
]


@pytest.mark.parametrize("case,filename,builder,fmt,kwargs,fragments", BAD, ids=[case[0] for case in BAD])
def test_bad_inputs(tmp_path, case, filename, builder, fmt, kwargs, fragments):
    src = tmp_path / "upload" / filename
    src.parent.mkdir()
    builder(src)
    dest = tmp_path / "out" / "ds"
    with pytest.raises(DatasetError) as err:
        ingest(src, fmt, dest, **kwargs)
    for fragment in fragments:
        assert fragment in str(err.value)
    assert "Traceback" not in str(err.value)
    assert not dest.exists()
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_bad_value_late_in_a_big_csv_names_its_line(tmp_path, monkeypatch):
    monkeypatch.setattr(csv_reader, "CHUNK_VALUES", 100)  # many chunks before the bad one
    lines = ["a,b,label"] + [f"{i},{i},{i % 2}" for i in range(500)]
    lines[420] = "1,oops,0"
    src = tmp_path / "big.csv"
    src.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=r"Line 421, column 'b'.*'oops'"):
        ingest(src, "csv", tmp_path / "ds")
    assert not (tmp_path / "ds").exists()


def test_split_keeps_every_class_in_both_sets():
    from webapp.datasets.ingest.split import stratified_split

    labels = np.array([0, 0, 1, 1] + [2] * 50)
    is_test = stratified_split(labels, 3, 0.2, seed=1)
    assert is_test.sum() == 11  # ceil(0.2 × 54)
    assert np.bincount(labels[is_test], minlength=3).tolist() == [1, 1, 9]
    assert np.array_equal(is_test, stratified_split(labels, 3, 0.2, seed=1))
