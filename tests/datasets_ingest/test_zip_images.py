"""ingest() of a ZIP of images, one folder per class (webapp/datasets/ingest/zip_images.py)."""

import io
import json
import zipfile

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from webapp.datasets.ingest import DatasetError, Limits, detect_format, ingest, preview, read_info, zip_images


def image_bytes(pixels: np.ndarray, fmt: str = "PNG", **save) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, fmt, **save)
    return buf.getvalue()


def write_zip(path, members: dict) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def read_split(path):
    table = pq.read_table(path)
    features = np.array(table.column("features").to_pylist(), dtype=np.float32)
    return table.column("row_id").to_numpy(), table.column("label").to_numpy(), features


def read_all(dest):
    """(row_ids, labels, features) of train + test, sorted by row_id."""
    parts = [read_split(dest / name) for name in ("train.parquet", "test.parquet")]
    ids, labels, x = (np.concatenate(p) for p in zip(*parts, strict=True))
    order = np.argsort(ids)
    return ids[order], labels[order], x[order]


def gray_images(rng, n: int, h: int = 6, w: int = 5) -> list[np.ndarray]:
    return [rng.integers(0, 256, (h, w), dtype=np.uint8) for _ in range(n)]


def test_grayscale_pngs(tmp_path):
    rng = np.random.default_rng(0)
    images = {f"{c}/{i:02d}.png": img for c in ("dog", "cat") for i, img in enumerate(gray_images(rng, 6))}
    images["dog/00.png"][0, 0], images["cat/03.png"][1, 1] = 0, 255
    write_zip(tmp_path / "pets.zip", {name: image_bytes(img) for name, img in images.items()})

    info = ingest(tmp_path / "pets.zip", "zip", tmp_path / "ds")

    assert info.shape == (6, 5, 1) and info.class_names == ["cat", "dog"] and info.class_counts == [6, 6]
    assert (info.offset, info.scale, info.dtype, info.source_format) == (0.0, 255.0, "uint8", "zip")
    assert (info.train_rows, info.test_rows, info.resized) == (9, 3, 0)
    ids, labels, x = read_all(tmp_path / "ds")
    order = sorted(images)  # rows in (class folder, file name) order
    assert np.array_equal(ids, np.arange(12))
    assert labels.tolist() == [0] * 6 + [1] * 6
    expected = np.stack([images[name].reshape(-1) for name in order]) / 255.0
    np.testing.assert_allclose(x, expected, atol=1e-7)
    meta = json.loads((tmp_path / "ds" / "meta.json").read_text())
    assert meta["source_format"] == "zip" and meta["dtype"] == "uint8" and meta["shape"] == [6, 5, 1]
    assert read_info(tmp_path / "ds") == info
    assert len(preview(tmp_path / "ds", n=3)) == 3


def test_dark_images_are_still_divided_by_255(tmp_path):
    dark = np.full((4, 4), 10, np.uint8)
    write_zip(tmp_path / "d.zip", {f"{c}/{i}.png": image_bytes(dark) for c in "ab" for i in range(2)})
    info = ingest(tmp_path / "d.zip", "zip", tmp_path / "ds")
    assert (info.offset, info.scale) == (0.0, 255.0)
    np.testing.assert_allclose(read_all(tmp_path / "ds")[2], 10 / 255, atol=1e-7)


def test_any_colour_image_makes_all_rgb(tmp_path):
    rng = np.random.default_rng(1)
    gray = rng.integers(0, 256, (4, 4), dtype=np.uint8)
    rgb = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    rgba = np.dstack([rgb, np.full((4, 4), 128, np.uint8)])
    palette = Image.fromarray(rgb).quantize(8)
    buf = io.BytesIO()
    palette.save(buf, "PNG")
    members = {
        "a/gray.png": image_bytes(gray),
        "a/rgb.png": image_bytes(rgb),
        "b/photo.jpg": image_bytes(rgb, "JPEG", quality=95),
        "b/rgba.png": image_bytes(rgba),
        "b/palette.png": buf.getvalue(),
    }
    write_zip(tmp_path / "c.zip", members)

    info = ingest(tmp_path / "c.zip", "zip", tmp_path / "ds", test_fraction=0.4)

    assert info.shape == (4, 4, 3) and info.class_counts == [2, 3]
    _, _, x = read_all(tmp_path / "ds")
    x = x.reshape(5, 4, 4, 3) * 255
    # Rows: a/gray, a/rgb, b/palette, b/photo, b/rgba.
    np.testing.assert_allclose(x[0], np.repeat(gray[:, :, None], 3, axis=2), atol=1e-3)  # gray → 3 equal channels
    np.testing.assert_allclose(x[1], rgb, atol=1e-3)
    np.testing.assert_allclose(x[2], np.asarray(palette.convert("RGB")), atol=1e-3)
    jpeg = np.asarray(Image.open(io.BytesIO(members["b/photo.jpg"])).convert("RGB"))
    np.testing.assert_allclose(x[3], jpeg, atol=1e-3)
    np.testing.assert_allclose(x[4], rgb, atol=1e-3)  # alpha dropped


def test_shape_with_one_channel_makes_colour_images_gray(tmp_path):
    rgb = np.random.default_rng(2).integers(0, 256, (4, 4, 3), dtype=np.uint8)
    write_zip(tmp_path / "c.zip", {f"{c}/{i}.png": image_bytes(rgb) for c in "ab" for i in range(2)})
    info = ingest(tmp_path / "c.zip", "zip", tmp_path / "ds", image_shape=(4, 4, 1))
    assert info.shape == (4, 4, 1)
    expected = np.asarray(Image.fromarray(rgb).convert("L"), dtype=np.float32) / 255
    np.testing.assert_allclose(read_all(tmp_path / "ds")[2][0], expected.reshape(-1), atol=1e-6)


def test_sixteen_bit_grayscale(tmp_path):
    wide = (np.arange(16, dtype=np.uint16).reshape(4, 4) * 4369).astype(np.uint16)  # 0 … 65535
    write_zip(tmp_path / "w.zip", {f"{c}/{i}.png": image_bytes(wide) for c in "ab" for i in range(2)})
    info = ingest(tmp_path / "w.zip", "zip", tmp_path / "ds")
    assert info.shape == (4, 4, 1) and info.dtype == "uint16"
    np.testing.assert_allclose(read_all(tmp_path / "ds")[2][0], wide.reshape(-1) / 65535, atol=1e-6)


def test_resize_to_the_given_size(tmp_path):
    rng = np.random.default_rng(3)
    sizes = [(6, 5), (8, 8), (3, 4), (6, 5)]
    images = {f"{c}/{i}.png": rng.integers(0, 256, sizes[i], dtype=np.uint8) for c in "ab" for i in range(4)}
    write_zip(tmp_path / "r.zip", {name: image_bytes(img) for name, img in images.items()})

    info = ingest(tmp_path / "r.zip", None, tmp_path / "ds", image_size=(4, 3))

    assert info.shape == (4, 3, 1) and info.resized == 8
    _, _, x = read_all(tmp_path / "ds")
    for row, name in enumerate(sorted(images)):
        expected = np.asarray(Image.fromarray(images[name]).resize((3, 4), Image.Resampling.BILINEAR))
        np.testing.assert_allclose(x[row], expected.reshape(-1) / 255, atol=1e-6)
    # The image shape (h, w) the upload form sends for every format does the same for a ZIP.
    assert ingest(tmp_path / "r.zip", "zip", tmp_path / "ds2", image_shape=(4, 3)).shape == (4, 3, 1)


def test_most_common_size_wins_when_few_images_differ(tmp_path):
    rng = np.random.default_rng(4)
    members = {
        f"{c}/{i:02d}.png": image_bytes(rng.integers(0, 256, (8, 8), dtype=np.uint8)) for c in "ab" for i in range(5)
    }
    odd = rng.integers(0, 256, (6, 7), dtype=np.uint8)
    members["b/99.png"] = image_bytes(odd)  # 1 of 11 images: ≤ 10 %
    write_zip(tmp_path / "ok.zip", members)

    info = ingest(tmp_path / "ok.zip", "zip", tmp_path / "ds")

    assert info.shape == (8, 8, 1) and info.resized == 1
    resized = np.asarray(Image.fromarray(odd).resize((8, 8), Image.Resampling.BILINEAR))
    np.testing.assert_allclose(read_all(tmp_path / "ds")[2][10], resized.reshape(-1) / 255, atol=1e-6)
    assert json.loads((tmp_path / "ds" / "meta.json").read_text())["resized"] == 1

    members["a/98.png"] = image_bytes(odd)  # 2 of 12: beyond the rule
    write_zip(tmp_path / "mixed.zip", members)
    with pytest.raises(DatasetError, match=r"mixed image sizes: 10 of its 12 images are 8×8.*choose an image size"):
        ingest(tmp_path / "mixed.zip", "zip", tmp_path / "bad")
    assert not (tmp_path / "bad").exists()
    assert ingest(tmp_path / "mixed.zip", "zip", tmp_path / "sized", image_size=(8, 8)).resized == 2


def test_mixed_sizes_suggest_a_size_within_the_limit(tmp_path):
    from webapp.datasets.ingest.info import Limits

    big, small = np.zeros((20, 20), dtype=np.uint8), np.zeros((8, 8), dtype=np.uint8)
    members = {f"{c}/{i}.png": image_bytes(big if i < 3 else small) for c in "ab" for i in range(5)}
    write_zip(tmp_path / "mixed.zip", members)
    # 20×20 is the common size; with at most 100 values an image, 20x20 is no advice to give
    with pytest.raises(DatasetError, match=r"are 20×20 .*\(e\.g\. 10x10\)") as err:
        ingest(tmp_path / "mixed.zip", "zip", tmp_path / "bad", limits=Limits(max_features=100))
    assert "20x20" not in str(err.value)
    with pytest.raises(DatasetError, match=r"\(e\.g\. 20x20\)"):
        ingest(tmp_path / "mixed.zip", "zip", tmp_path / "bad")


def test_one_top_folder_and_ignored_files(tmp_path):
    rng = np.random.default_rng(5)
    images = {f"{c}/{i}.png": image_bytes(rng.integers(0, 256, (4, 4), dtype=np.uint8)) for c in "xy" for i in range(3)}
    write_zip(tmp_path / "flat.zip", images)
    wrapped = {f"my_dataset/{name}": data for name, data in images.items()}
    wrapped |= {
        "my_dataset/": b"",
        "my_dataset/x/": b"",
        "__MACOSX/my_dataset/x/._0.png": b"\x00\x05\x16\x07",
        "my_dataset/.DS_Store": b"\x00\x00\x00\x01Bud1",
        "my_dataset/y/.hidden.png": b"not an image",
        "my_dataset/y/Thumbs.db": b"\xd0\xcf\x11\xe0",
    }
    write_zip(tmp_path / "wrapped.zip", wrapped)

    a = ingest(tmp_path / "flat.zip", "zip", tmp_path / "a")
    b = ingest(tmp_path / "wrapped.zip", "zip", tmp_path / "b")

    assert a == b and a.class_names == ["x", "y"]
    for name in ("train.parquet", "test.parquet"):
        assert pq.read_table(tmp_path / "a" / name).equals(pq.read_table(tmp_path / "b" / name))


def test_numeric_class_folders_sort_numerically(tmp_path):
    img = image_bytes(np.zeros((2, 2), np.uint8))
    write_zip(tmp_path / "n.zip", {f"{c}/{i}.png": img for c in ("2", "10", "1") for i in range(2)})
    assert ingest(tmp_path / "n.zip", "zip", tmp_path / "ds").class_names == ["1", "2", "10"]


def test_jpeg_exif_orientation_is_applied(tmp_path):
    pixels = np.random.default_rng(6).integers(0, 256, (4, 8, 3), dtype=np.uint8)  # 4 high, 8 wide
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    turned = image_bytes(pixels, "JPEG", exif=exif.tobytes(), quality=95)
    write_zip(tmp_path / "e.zip", {f"{c}/{i}.jpg": turned for c in "ab" for i in range(2)})
    info = ingest(tmp_path / "e.zip", "zip", tmp_path / "ds")
    assert info.shape == (8, 4, 3)


def test_small_chunks_give_same_output(tmp_path, monkeypatch):
    rng = np.random.default_rng(7)
    members = {
        f"{c}/{i:02d}.png": image_bytes(rng.integers(0, 256, (5, 5), dtype=np.uint8)) for c in "abc" for i in range(7)
    }
    write_zip(tmp_path / "s.zip", members)
    ingest(tmp_path / "s.zip", "zip", tmp_path / "big")
    monkeypatch.setattr(zip_images, "CHUNK_IMAGES", 4)
    ingest(tmp_path / "s.zip", "zip", tmp_path / "small")
    for name in ("train.parquet", "test.parquet"):
        assert pq.read_table(tmp_path / "small" / name).equals(pq.read_table(tmp_path / "big" / name))


def test_entry_count_is_checked_before_the_directory_is_parsed(tmp_path, monkeypatch):
    img = image_bytes(np.zeros((2, 2), np.uint8))
    write_zip(tmp_path / "many.zip", {f"{c}/{i}.png": img for c in "ab" for i in range(30)})
    with open(tmp_path / "many.zip", "rb") as fh:
        assert zip_images.count_entries(fh) == 60
    monkeypatch.setattr(zip_images, "EXTRA_ENTRIES", 0)
    monkeypatch.setattr(zipfile.ZipFile, "_RealGetContents", lambda self: pytest.fail("directory parsed"))
    with pytest.raises(DatasetError, match="has 60 entries; the limit is 40 images"):
        ingest(tmp_path / "many.zip", "zip", tmp_path / "ds", limits=Limits(max_images=40, max_classes=10))


def test_format_options(tmp_path):
    assert detect_format("Images.ZIP", b"PK\x03\x04rest") == "zip"
    img = image_bytes(np.zeros((2, 2), np.uint8))
    write_zip(tmp_path / "i.zip", {f"{c}/{i}.png": img for c in "ab" for i in range(2)})
    with pytest.raises(DatasetError, match="image layout"):
        ingest(tmp_path / "i.zip", "zip", tmp_path / "seq", layout="sequence")
    with pytest.raises(DatasetError, match="positive whole numbers"):
        ingest(tmp_path / "i.zip", "zip", tmp_path / "zero", image_size=(0, 4))
    with pytest.raises(DatasetError, match="1 \\(grayscale\\) or 3 \\(RGB\\) channels, not 4"):
        ingest(tmp_path / "i.zip", "zip", tmp_path / "four", image_shape=(2, 2, 4))
    (tmp_path / "d.csv").write_text("a,label\n1,x\n2,x\n3,y\n4,y\n")
    with pytest.raises(DatasetError, match="only to ZIP archives of images"):
        ingest(tmp_path / "d.csv", "csv", tmp_path / "csv", image_size=(2, 2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.csv", "i.zip"]
