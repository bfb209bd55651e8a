"""Small PNG thumbnails of image rows for the dataset page (data: URIs; zlib only, no imaging library)."""

import base64
import math
import struct
import zlib

import numpy as np

MAX_SIDE = 64  # larger images are subsampled to at most this many pixels a side
PER_CLASS = 6
MAX_CLASSES = 20
_COLOR_TYPES = {1: 0, 3: 2, 4: 6}  # channels → PNG colour type: grey, RGB, RGBA


def is_image_shape(shape) -> bool:
    """(h, w, c) that reads as a picture: both sides over one pixel, grey/RGB/RGBA."""
    return len(shape) == 3 and shape[0] > 1 and shape[1] > 1 and shape[2] in _COLOR_TYPES


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def png_bytes(features: np.ndarray) -> bytes:
    """An 8-bit PNG of one row: ``features`` (h, w, c) in [0, 1], c in 1, 3, 4."""
    h, w, c = features.shape
    step = max(1, math.ceil(max(h, w) / MAX_SIDE))
    pixels = np.clip(np.rint(features[::step, ::step] * 255.0), 0, 255).astype(np.uint8)
    h, w = pixels.shape[:2]
    raw = b"".join(b"\x00" + row.tobytes() for row in pixels.reshape(h, w * c))
    header = struct.pack(">IIBBBBB", w, h, 8, _COLOR_TYPES[c], 0, 0, 0)
    chunks = _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw, 6)) + _chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


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
