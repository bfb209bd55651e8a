"""Small PNG thumbnails of image rows for the dataset page (data: URIs, written with Pillow)."""

import base64
import io
import math

import numpy as np
from PIL import Image

MAX_SIDE = 64  # larger images are subsampled to at most this many pixels a side
PER_CLASS = 6
MAX_CLASSES = 20
CHANNELS = (1, 3, 4)  # grey, RGB, RGBA: Pillow reads the mode from the array's shape (uint8)


def is_image_shape(shape) -> bool:
    """(h, w, c) that reads as a picture: both sides over one pixel, grey/RGB/RGBA."""
    return len(shape) == 3 and shape[0] > 1 and shape[1] > 1 and shape[2] in CHANNELS


def png_bytes(features: np.ndarray) -> bytes:
    """An 8-bit PNG of one row: ``features`` (h, w, c) in [0, 1], c in 1, 3, 4."""
    h, w, c = features.shape
    step = max(1, math.ceil(max(h, w) / MAX_SIDE))
    pixels = np.clip(np.rint(features[::step, ::step] * 255.0), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels[:, :, 0] if c == 1 else pixels)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def data_uri(features: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(features)).decode("ascii")


def image_samples(samples) -> list[dict]:
    """Per class seen in ``samples`` (PreviewRows), up to PER_CLASS thumbnails; [] when rows are no pictures.

    Returns [{"label": name, "images": [{"row_id": 3, "src": "data:image/png;…"}]}] in class order.
    """
    if not samples or not is_image_shape(samples[0].features.shape):
        return []
    by_class: dict[int, dict] = {}
    for row in samples:
        if row.label_index not in by_class and len(by_class) >= MAX_CLASSES:
            continue
        entry = by_class.setdefault(row.label_index, {"label": row.label, "images": []})
        if len(entry["images"]) < PER_CLASS:
            entry["images"].append({"row_id": row.row_id, "src": data_uri(row.features)})
    return [by_class[k] for k in sorted(by_class)]
