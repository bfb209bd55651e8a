"""ingest() of a Parquet upload: numeric feature columns or one list column (parquet_reader.py)."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from webapp.datasets.ingest import DatasetError, detect_format, ingest, parquet_reader, write_digits_npz


def tables(dest):
    return [pq.read_table(dest / name) for name in ("train.parquet", "test.parquet")]


@pytest.fixture(scope="module")
def frame():
    rng = np.random.default_rng(0)
    n = 60
    return pd.DataFrame(
        {
            "width": rng.integers(0, 100, n),
            "height": rng.random(n).astype(np.float32) * 10,
            "species": np.where(np.arange(n) % 3 == 0, "cat", "dog"),
            "weight": rng.normal(size=n),
        }
    )


def test_numeric_columns_give_the_same_dataset_as_csv(tmp_path, frame):
    frame.to_parquet(tmp_path / "pets.parquet", row_group_size=16)  # several row groups
    frame.to_csv(tmp_path / "pets.csv", index=False)

    p = ingest(tmp_path / "pets.parquet", None, tmp_path / "p", label_column="species")
    c = ingest(tmp_path / "pets.csv", None, tmp_path / "c", label_column="species")

    assert p.source_format == "parquet" and p.dtype == "float64"  # int64, float32, float64 columns
    assert (p.layout, p.shape) == ("table", (3,)) and p.class_names == ["cat", "dog"] and p.class_counts == [20, 40]
    assert (p.train_rows, p.test_rows) == (c.train_rows, c.test_rows)
    for key in ("mean", "std"):  # float32 heights in the Parquet, their printed decimals in the CSV
        np.testing.assert_allclose(p.standardize[key], c.standardize[key], rtol=1e-6)
    assert p.columns == c.columns == ["width", "height", "weight"]
    for a, b in zip(tables(tmp_path / "p"), tables(tmp_path / "c"), strict=True):
        assert a.column("row_id").equals(b.column("row_id")) and a.column("label").equals(b.column("label"))
        np.testing.assert_allclose(
            np.array(a.column("features").to_pylist()), np.array(b.column("features").to_pylist()), atol=1e-6
        )


def test_list_column_like_sparkdecks_own_files(tmp_path):
    """A train.parquet of another dataset (row_id, label, features list) can be uploaded as is."""
    write_digits_npz(tmp_path / "digits.npz")
    ingest(tmp_path / "digits.npz", "npz", tmp_path / "digits")
    train = pq.read_table(tmp_path / "digits" / "train.parquet")

    info = ingest(tmp_path / "digits" / "train.parquet", "parquet", tmp_path / "again", image_shape=(8, 8))

    assert info.shape == (8, 8, 1) and info.rows == train.num_rows and info.dtype == "float32"
    assert info.class_names == [str(i) for i in range(10)]
    again = pa.concat_tables(tables(tmp_path / "again")).sort_by("row_id")
    # row_id is ignored (rows are numbered again in file order); values already in [0, 1] stay as they are.
    assert again.column("label").equals(train.column("label"))
    assert again.column("features").equals(train.column("features"))


def test_fixed_size_list_and_integer_labels(tmp_path):
    values = np.arange(40, dtype=np.uint8).reshape(10, 4)
    features = pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), 4)
    pq.write_table(pa.table({"y": pa.array(np.arange(10) % 2, pa.int8()), "pixels": features}), tmp_path / "f.parquet")
    info = ingest(tmp_path / "f.parquet", "parquet", tmp_path / "ds", label_column="y", layout="image")
    assert info.shape == (2, 2, 1) and info.dtype == "uint8" and info.class_names == ["0", "1"]
    assert (info.offset, info.scale) == (0.0, 39.0)


@pytest.mark.parametrize("index", [pd.Index(np.arange(60)[::-1]), pd.Index(np.arange(60) * 2, name="id")])
def test_categorical_labels_and_pandas_index(tmp_path, frame, index):
    df = frame.assign(species=frame["species"].astype("category")).set_axis(index)
    df.to_parquet(tmp_path / "c.parquet")  # the index is stored as a column: __index_level_0__ or "id"
    assert len(pq.read_schema(tmp_path / "c.parquet").names) == 5
    info = ingest(tmp_path / "c.parquet", "parquet", tmp_path / "ds", label_column="species")
    assert info.shape == (3,) and info.class_names == ["cat", "dog"]
    assert info.columns == ["width", "height", "weight"]  # not the index


def test_small_batches_give_same_output(tmp_path, frame, monkeypatch):
    frame.to_parquet(tmp_path / "pets.parquet")
    ingest(tmp_path / "pets.parquet", "parquet", tmp_path / "big", label_column="species")
    monkeypatch.setattr(parquet_reader, "CHUNK_VALUES", 3 * 7)  # 7-row batches
    ingest(tmp_path / "pets.parquet", "parquet", tmp_path / "small", label_column="species")
    for a, b in zip(tables(tmp_path / "big"), tables(tmp_path / "small"), strict=True):
        assert a.equals(b)


def test_missing_label_column_lists_the_columns(tmp_path, frame):
    frame.to_parquet(tmp_path / "pets.parquet")
    with pytest.raises(DatasetError) as err:
        ingest(tmp_path / "pets.parquet", "parquet", tmp_path / "ds")
    assert "no column named 'label' (its columns are 'width', 'height', 'species', 'weight')" in str(err.value)
    assert not (tmp_path / "ds").exists()


LABELS = [0, 1, 0, 1]


@pytest.mark.parametrize(
    "table,message",
    [
        ({"a": [[1.0], [2.0], [3.0], [4.0]], "label": LABELS}, None),  # a plain list column converts
        ({"a": [[[1.0]], [[2.0]], [[3.0]], [[4.0]]], "label": LABELS}, "a list of lists: flatten each row"),
        ({"a": [1.0, 2.0, 3.0, 4.0], "label": [0.0, 1.0, 0.5, 1.0]}, "non-integer label 0.5"),
        ({"a": [[1.0, 2.0], [1.0, None], [2.0, 3.0], [1.0, 2.0]], "label": LABELS}, "Row 1 of column 'a' has an empty"),
        ({"a": [[1.0, 2.0], None, [2.0, 3.0], [1.0, 2.0]], "label": LABELS}, "Row 1 of column 'a' is empty (null)"),
        ({"a": [1.0, 2.0, 3.0, 4.0], "label": ["x", "y", " ", "x"]}, "Row 2 of the Parquet file has an empty label"),
        ({"label": ["x", "y", "x", "y"]}, "only the 'label' column"),
        ({"a": [1.0, 2.0, 3.0, 4.0], "label": [b"x", b"y", b"x", b"y"]}, "labels must be class ids"),
        ({"a": [1, 2, 3, 4], "b": [1, 2, 3, 4], "label": LABELS, "c": [[1], [2], [3], [4]]}, "list column 'c'"),
    ],
)
def test_bad_parquet(tmp_path, table, message):
    pq.write_table(pa.table(table), tmp_path / "bad.parquet")
    if message is None:
        assert ingest(tmp_path / "bad.parquet", "parquet", tmp_path / "ok", test_fraction=0.5).shape == (1,)
        return
    with pytest.raises(DatasetError) as err:
        ingest(tmp_path / "bad.parquet", "parquet", tmp_path / "ds", test_fraction=0.5)
    assert message in str(err.value)
    assert not (tmp_path / "ds").exists()


def test_detect_parquet():
    assert detect_format("data.parquet", b"PAR1\x15\x04") == "parquet"
    assert detect_format("data.PQ", b"PAR1\x15\x04") == "parquet"
    with pytest.raises(DatasetError, match="not a Parquet file"):
        detect_format("data.parquet", b"a,b,label\n")
