"""Dataset thumbnails (webapp/datasets/thumbs.py): PNGs written with Pillow, read back pixel for pixel."""

import base64
import io
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from webapp.datasets import thumbs


@pytest.mark.parametrize("channels,mode", [(1, "L"), (3, "RGB"), (4, "RGBA")])
def test_png_holds_the_row_subsampled_to_the_max_side(channels, mode):
    row = np.random.default_rng(channels).random((130, 70, channels), dtype=np.float32)
    image = Image.open(io.BytesIO(thumbs.png_bytes(row)))
    step = 3  # ceil(130 / 64)
    assert (image.format, image.mode, image.size) == ("PNG", mode, (24, 44))
    expected = np.rint(row[::step, ::step] * 255).astype(np.uint8)
    assert np.array_equal(np.asarray(image).reshape(expected.shape), expected)


def test_values_outside_0_1_are_clipped_and_small_images_kept_whole():
    row = np.array([[[-1.0], [0.5]], [[2.0], [1.0]]], dtype=np.float32)
    image = Image.open(io.BytesIO(thumbs.png_bytes(row)))
    assert image.size == (2, 2) and np.asarray(image).tolist() == [[0, 128], [255, 255]]


def test_samples_grouped_per_class_as_data_uris():
    rows = [
        SimpleNamespace(row_id=i, label=f"c{i % 2}", label_index=i % 2, features=np.zeros((8, 8, 1))) for i in range(20)
    ]
    groups = thumbs.image_samples(rows)
    assert [g["label"] for g in groups] == ["c0", "c1"]
    assert [len(g["images"]) for g in groups] == [thumbs.PER_CLASS] * 2
    src = groups[0]["images"][0]["src"]
    assert src.startswith("data:image/png;base64,")
    assert Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).size == (8, 8)
    # rows that are no pictures (a 1-pixel side, a sequence) get none
    assert (
        thumbs.image_samples([SimpleNamespace(row_id=0, label="a", label_index=0, features=np.zeros((1, 20, 1)))]) == []
    )
