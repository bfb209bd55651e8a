"""webapp.datasets.ingest: the "sequence" layout (fixed-length series with a label) and its demo data."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import LogisticRegression

from webapp.datasets.ingest import (
    SEQUENCE_CLASSES,
    DatasetError,
    DatasetInfo,
    Limits,
    ingest,
    make_sequences,
    parse_shape,
    preview,
    read_info,
    write_digits_npz,
    write_sequences_csv,
    write_sequences_npz,
)
from webapp.datasets.ingest.preview import SPARK_HEIGHT, SPARK_WIDTH


def read_split(path):
    table = pq.read_table(path)
    features = np.array(table.column("features").to_pylist(), dtype=np.float32)
    return table.column("row_id").to_numpy(), table.column("label").to_numpy(), features


def write_npz(path, **arrays):
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


@pytest.fixture(scope="module")
def seq_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("sequences")
    return {
        "npz": write_sequences_npz(d / "waves.npz"),
        "csv": write_sequences_csv(d / "waves.csv"),
        "npz3": write_sequences_npz(d / "waves3.npz", n=400, steps=20, features=3, seed=5),
        "csv3": write_sequences_csv(d / "waves3.csv", n=400, steps=20, features=3, seed=5),
    }


def test_npz_2d_is_univariate_sequence(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(40, 12)) * 10  # (rows, steps)
    y = np.repeat(["a", "b"], 20)
    write_npz(tmp_path / "s.npz", x=x, y=y)
    info = ingest(tmp_path / "s.npz", "npz", tmp_path / "ds", layout="sequence")

    assert info.layout == "sequence" and info.shape == (12, 1)
    assert (info.train_rows, info.test_rows, info.class_names) == (32, 8, ["a", "b"])
    ids, labels, feats = read_split(tmp_path / "ds" / "train.parquet")
    assert feats.shape == (32, 12)
    # Same global min-max scaling as images.
    assert (info.offset, info.scale) == (pytest.approx(x.min()), pytest.approx(x.max() - x.min()))
    np.testing.assert_allclose(feats, (x[ids] - x.min()) / (x.max() - x.min()), atol=1e-6)
    assert np.array_equal(labels, (y[ids] == "b").astype(np.int64))

    meta = json.loads((tmp_path / "ds" / "meta.json").read_text())
    assert meta["layout"] == "sequence" and meta["shape"] == [12, 1]
    assert meta["split"] == {"mode": "fraction", "test_fraction": 0.2, "seed": 42}
    assert read_info(tmp_path / "ds") == info


def test_npz_3d_keeps_steps_and_features_row_major(tmp_path):
    x = np.arange(10 * 5 * 3, dtype=np.float64).reshape(10, 5, 3)
    write_npz(tmp_path / "s.npz", x=x, y=np.arange(10) % 2)
    info = ingest(tmp_path / "s.npz", "npz", tmp_path / "ds", layout="sequence")
    assert info.shape == (5, 3)
    ids, _, feats = read_split(tmp_path / "ds" / "train.parquet")
    # Flattened row-major steps × features: step 0's three features, then step 1's, ...
    np.testing.assert_allclose(feats, x.reshape(10, 15)[ids] / x.max(), atol=1e-6)
    np.testing.assert_allclose(feats.reshape(-1, 5, 3)[:, :, 1], x[ids][:, :, 1] / x.max(), atol=1e-6)

    # The same array as images is the (5, 3, 1) image it always was.
    image = ingest(tmp_path / "s.npz", "npz", tmp_path / "img")
    assert (image.layout, image.shape) == ("image", (5, 3, 1))
    assert json.loads((tmp_path / "img" / "meta.json").read_text())["layout"] == "image"


def test_csv_columns_become_steps(tmp_path):
    lines = ["a,b,label,c,d,e"] + [f"{i},{i + 1},{'up' if i % 2 else 'down'},{i * 2},0,{-i}" for i in range(10)]
    (tmp_path / "s.csv").write_text("\n".join(lines) + "\n")
    info = ingest(tmp_path / "s.csv", "csv", tmp_path / "ds", layout="sequence")
    assert info.shape == (5, 1) and info.class_names == ["down", "up"]
    assert (info.offset, info.scale) == (-9.0, 27.0)  # global min -9, max 18
    ids, _, feats = read_split(tmp_path / "ds" / "train.parquet")
    raw = np.array([[i, i + 1, i * 2, 0, -i] for i in range(10)], dtype=np.float64)
    np.testing.assert_allclose(feats, (raw[ids] + 9) / 27, atol=1e-6)


def test_csv_with_typed_shape(tmp_path):
    header = ",".join(f"v{i}" for i in range(6)) + ",label"
    rows = [",".join(str(i * 6 + j) for j in range(6)) + f",{i % 3}" for i in range(12)]
    (tmp_path / "s.csv").write_text("\n".join([header, *rows]) + "\n")
    info = ingest(tmp_path / "s.csv", "csv", tmp_path / "ds", layout="sequence", sequence_shape=parse_shape("3x2"))
    assert info.shape == (3, 2)
    assert ingest(tmp_path / "s.csv", "csv", tmp_path / "b", layout="sequence", sequence_shape=(6,)).shape == (6, 1)

    with pytest.raises(DatasetError, match=r"4×2 \(steps × features\) has 8 values per row.*6 values per row"):
        ingest(tmp_path / "s.csv", "csv", tmp_path / "bad", layout="sequence", sequence_shape=parse_shape("4x2"))
    assert not (tmp_path / "bad").exists()
    with pytest.raises(DatasetError, match="steps x features"):
        ingest(tmp_path / "s.csv", "csv", tmp_path / "bad", layout="sequence", sequence_shape=(1, 3, 2))


def test_parse_shape_messages_name_the_layout():
    assert parse_shape("20x3", layout="sequence") == (20, 3)
    assert parse_shape("20 X 3") == (20, 3)
    assert parse_shape("", layout="sequence") is None
    with pytest.raises(DatasetError, match="Sequence shape 'twenty' should look like 20x3"):
        parse_shape("twenty", layout="sequence")
    with pytest.raises(DatasetError, match="Image shape 'big' should look like 28x28"):
        parse_shape("big")


@pytest.mark.parametrize(
    "x,kwargs,fragments",
    [
        (np.zeros((10, 2, 2, 2)), {}, ["(10, 2, 2, 2)", "(rows, steps) or (rows, steps, features)"]),
        (np.zeros((10, 2, 2, 2, 2)), {}, ["(rows, steps) or (rows, steps, features)"]),
        (np.zeros(10), {}, ["(rows, steps) or (rows, steps, features)"]),
        (np.zeros((10, 1)), {}, ["at least 2 time steps", "has 1"]),
        (np.zeros((10, 1, 4)), {}, ["at least 2 time steps"]),
        (np.zeros((10, 6)), {"sequence_shape": (1, 6)}, ["at least 2 time steps"]),
        (np.zeros((10, 6)), {"sequence_shape": (4, 2)}, ["has 8 values per row", "6 values per row"]),
        (np.zeros((10, 6)), {"limits": Limits(max_features=5)}, ["6 features", "limit is 5"]),
    ],
    ids=["4d", "5d", "1d", "one-step", "one-step-3d", "typed-one-step", "typed-mismatch", "too-wide"],
)
def test_bad_sequence_arrays(tmp_path, x, kwargs, fragments):
    write_npz(tmp_path / "s.npz", x=x, y=np.arange(10) % 2)
    with pytest.raises(DatasetError) as err:
        ingest(tmp_path / "s.npz", "npz", tmp_path / "out" / "ds", layout="sequence", **kwargs)
    for fragment in fragments:
        assert fragment in str(err.value)
    assert not (tmp_path / "out" / "ds").exists()
    assert not any((tmp_path / "out").iterdir())  # no temp dir left behind


def test_unknown_layout_and_crossed_shapes(tmp_path):
    write_npz(tmp_path / "s.npz", x=np.zeros((10, 4)), y=np.arange(10) % 2)
    with pytest.raises(DatasetError, match="Unknown dataset layout 'video'"):
        ingest(tmp_path / "s.npz", "npz", tmp_path / "ds", layout="video")
    with pytest.raises(ValueError, match="sequence_shape"):  # a caller bug, not a user error
        ingest(tmp_path / "s.npz", "npz", tmp_path / "ds", layout="sequence", image_shape=(2, 2))
    assert not (tmp_path / "ds").exists()


def test_meta_without_layout_reads_as_image(tmp_path):
    write_digits_npz(tmp_path / "d.npz")
    ingest(tmp_path / "d.npz", "npz", tmp_path / "ds")
    meta = json.loads((tmp_path / "ds" / "meta.json").read_text())
    assert meta["layout"] == "image"
    del meta["layout"]  # meta.json written before layouts existed
    info = DatasetInfo.from_meta(meta)
    assert info.layout == "image" and info.shape == (8, 8, 1)


def test_generators_are_deterministic_and_balanced():
    x, y = make_sequences(n=200, steps=25, seed=3)
    x2, y2 = make_sequences(n=200, steps=25, seed=3)
    assert x.shape == (200, 25, 1) and np.array_equal(x, x2) and np.array_equal(y, y2)
    assert sorted(np.unique(y, return_counts=True)[1].tolist()) == [50] * 4
    assert set(y) == set(SEQUENCE_CLASSES)
    assert not np.array_equal(x, make_sequences(n=200, steps=25, seed=4)[0])
    with pytest.raises(ValueError):
        make_sequences(n=4)


@pytest.mark.parametrize("fmt", ["npz", "csv"])
def test_synthetic_files_ingest_as_sequences(seq_files, tmp_path, fmt):
    info = ingest(seq_files[fmt], fmt, tmp_path / "ds", layout="sequence")
    assert info.shape == (30, 1) and info.layout == "sequence"
    assert (info.train_rows, info.test_rows) == (960, 240)
    assert info.class_names == sorted(SEQUENCE_CLASSES) and info.class_counts == [300] * 4
    _, te_labels, _ = read_split(tmp_path / "ds" / "test.parquet")
    assert np.bincount(te_labels).tolist() == [60] * 4  # stratified 80/20


@pytest.mark.parametrize("suffix,shape", [("", None), ("3", (20, 3))])
def test_synthetic_npz_and_csv_give_identical_files(seq_files, tmp_path, suffix, shape):
    a = ingest(seq_files["npz" + suffix], "npz", tmp_path / "a", layout="sequence")
    b = ingest(seq_files["csv" + suffix], "csv", tmp_path / "b", layout="sequence", sequence_shape=shape)
    assert a.shape == b.shape == (shape or (30, 1))
    assert (a.offset, a.scale) == (b.offset, b.scale)
    for name in ("train.parquet", "test.parquet"):
        assert pq.read_table(tmp_path / "a" / name).equals(pq.read_table(tmp_path / "b" / name))


def _shape_features(x: np.ndarray) -> np.ndarray:
    """Phase-invariant summaries of (rows, steps) sequences: spectrum magnitudes and sorted values."""
    centered = x - x.mean(axis=1, keepdims=True)
    return np.hstack([np.abs(np.fft.rfft(centered, axis=1)), np.sort(centered, axis=1)])


def test_synthetic_classes_are_separable_by_shape_not_by_level(seq_files, tmp_path):
    ingest(seq_files["npz"], "npz", tmp_path / "ds", layout="sequence")
    _, y_tr, x_tr = read_split(tmp_path / "ds" / "train.parquet")
    _, y_te, x_te = read_split(tmp_path / "ds" / "test.parquet")

    # The stored (scaled, split) data: a linear model on the waves' shape is nearly perfect ...
    shape_model = LogisticRegression(max_iter=5000).fit(_shape_features(x_tr), y_tr)
    assert shape_model.score(_shape_features(x_te), y_te) >= 0.9
    # ... while the raw values step by step (random phase) and the row's level say little.
    raw_model = LogisticRegression(max_iter=5000).fit(x_tr, y_tr)
    assert raw_model.score(x_te, y_te) < 0.6
    level_model = LogisticRegression().fit(x_tr.mean(axis=1, keepdims=True), y_tr)
    assert level_model.score(x_te.mean(axis=1, keepdims=True), y_te) < 0.45
    # Noisy: no class is a clean, noise-free wave.
    assert np.abs(np.diff(x_tr, axis=1)).mean() > 0.05


def test_sequence_preview_gives_values_and_polylines(seq_files, tmp_path):
    ingest(seq_files["npz3"], "npz", tmp_path / "ds", layout="sequence")
    rows = preview(tmp_path / "ds", n=4)
    assert len(rows) == 4
    _, _, feats = read_split(tmp_path / "ds" / "train.parquet")
    for row, flat in zip(rows, feats[:4], strict=True):
        assert row.is_sequence and row.features.shape == (20, 3)
        assert row.series == flat.reshape(20, 3).T.tolist()  # one list per feature
        assert len(row.polylines) == 3
        points = [tuple(map(float, p.split(","))) for p in row.polylines[0].split()]
        assert len(points) == 20 and points[0][0] == 0.0 and points[-1][0] == SPARK_WIDTH
        expected_y = SPARK_HEIGHT * (1 - flat.reshape(20, 3)[:, 0])
        np.testing.assert_allclose([p[1] for p in points], expected_y, atol=0.051)
    assert rows[0].head.endswith("…")

    write_digits_npz(tmp_path / "d.npz")
    ingest(tmp_path / "d.npz", "npz", tmp_path / "img")
    image_row = preview(tmp_path / "img", n=1)[0]
    assert not image_row.is_sequence and image_row.polylines == [] and image_row.series == []
