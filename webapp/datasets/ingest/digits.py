"""The scikit-learn digits data (1797 8×8 images, values 0..16, classes 0..9) as demo uploads."""

import csv
from pathlib import Path

import numpy as np


def _load():
    from sklearn.datasets import load_digits  # heavy import; only the demo seeding needs it

    digits = load_digits()
    return digits.images.astype(np.float32), digits.target.astype(np.int64)


def write_digits_npz(path: Path, classes=None) -> Path:
    """Write x (1797, 8, 8) float32 and y (1797,) int64 to ``path``; ``classes`` keeps only those
    digits (e.g. 0–4 to pretrain a transfer-learning base, 5–9 to transfer to)."""
    x, y = _load()
    if classes is not None:
        keep = np.isin(y, list(classes))
        x, y = x[keep], y[keep]
    with open(path, "wb") as fh:  # a file object, so numpy does not append ".npz" to the name
        np.savez_compressed(fh, x=x, y=y)
    return Path(path)


def write_digits_csv(path: Path) -> Path:
    """Write columns p0..p63 (row-major pixels, integers 0..16) and label."""
    x, y = _load()
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow([f"p{i}" for i in range(64)] + ["label"])
        for image, label in zip(x.reshape(len(x), -1).astype(np.int64), y, strict=True):
            writer.writerow([*image.tolist(), int(label)])
    return Path(path)
