"""Limits on uploads and the summary of a converted dataset (mirrors meta.json)."""

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

META_VERSION = 1


@dataclass(frozen=True)
class Limits:
    max_rows: int = 1_000_000
    max_features: int = 100_000
    max_classes: int = 1000
    max_bytes: int = 1 << 30  # size of the uploaded file, and of any array inside an NPZ
    # rows × features: bounds the Parquet output, which a small compressed NPZ could blow up.
    max_values: int = 250_000_000
    # ZIP archives of images (zip_images.py):
    max_images: int = 100_000  # image files in the archive (its entries are bounded from this too)
    max_pixels: int = 4096 * 4096  # width × height of one image, checked from its header before decoding
    max_member_bytes: int = 64 << 20  # uncompressed size of one file in the archive
    max_unzipped_bytes: int = 4 << 30  # uncompressed size of all the images together
    max_zip_ratio: int = 100  # uncompressed / compressed size of one member above which it is a zip bomb

    @property
    def max_side(self) -> int:
        """The longer side of one image: that of the largest square (a 20000×1 strip is no picture)."""
        return math.isqrt(self.max_pixels)


@dataclass
class Scan:
    """What a reader's first pass found: class index per row and the global value range."""

    rows: int
    codes: np.ndarray
    class_names: list[str]
    minimum: float
    maximum: float
    dtype: str = "float64"  # of the source's feature values, as NumPy names it ("uint8", "float32", …)


@dataclass
class DatasetInfo:
    shape: tuple[int, ...]  # (h, w, c) for layout "image", (steps, features) for "sequence", (features,) for "table"
    num_classes: int
    class_names: list[str]
    class_counts: list[int]  # per class index, over train + test
    train_rows: int
    test_rows: int
    scale: float  # features = (raw - offset) / scale (images, sequences; 1 for tables: see standardize)
    source_format: str  # "npz" | "csv" | "tsv" | "parquet" | "zip"
    rows: int
    offset: float = 0.0
    test_fraction: float | None = 0.2  # None when the test split was uploaded as its own file
    seed: int | None = 42  # None when the test split was uploaded as its own file
    layout: str = "image"  # "image" | "sequence" | "table"
    dtype: str = ""  # of the source's feature values ("uint8", "float32", …); "" in older meta.json
    split_mode: str = "fraction"  # "fraction" (split off by test_fraction/seed) | "uploaded" (a test file)
    test_source_format: str = ""  # format of the uploaded test file (split_mode "uploaded")
    resized: int = 0  # ZIP of images: how many images were resized to ``shape``
    # Tables only (None otherwise): the feature columns' names (the header's, or f0, f1, …); the
    # training rows' per-feature {"mean": [...], "std": [...]} that features = (raw - mean) / std
    # uses (workers.jobs.standardize); and the raw values' {"min", "max", "mean", "missing"} per
    # column over all rows, train and test, for the dataset page.
    columns: list[str] | None = None
    standardize: dict | None = None
    column_stats: dict | None = None

    def split_meta(self) -> dict:
        if self.split_mode == "uploaded":
            return {"mode": "uploaded", "test_source_format": self.test_source_format}
        return {"mode": "fraction", "test_fraction": self.test_fraction, "seed": self.seed}

    def to_meta(self) -> dict:
        """The meta.json document: the keys of docs/architecture.md first, then extras."""
        meta = {
            "shape": list(self.shape),
            "num_classes": self.num_classes,
            "class_names": list(self.class_names),
            "train_rows": self.train_rows,
            "test_rows": self.test_rows,
            "scale": self.scale,
            "split": self.split_meta(),
            "layout": self.layout,
            "offset": self.offset,
            "class_counts": list(self.class_counts),
            "rows": self.rows,
            "source_format": self.source_format,
            "dtype": self.dtype,
            "resized": self.resized,
            "version": META_VERSION,
        }
        if self.layout == "table":
            meta.update(columns=list(self.columns), standardize=self.standardize, column_stats=self.column_stats)
        return meta

    @classmethod
    def from_meta(cls, meta: dict) -> "DatasetInfo":
        split = meta["split"]
        return cls(
            shape=tuple(meta["shape"]),
            num_classes=meta["num_classes"],
            class_names=list(meta["class_names"]),
            class_counts=list(meta.get("class_counts", [])),
            train_rows=meta["train_rows"],
            test_rows=meta["test_rows"],
            scale=meta["scale"],
            source_format=meta.get("source_format", ""),
            rows=meta.get("rows", meta["train_rows"] + meta["test_rows"]),
            offset=meta.get("offset", 0.0),
            test_fraction=split.get("test_fraction"),
            seed=split.get("seed"),
            layout=meta.get("layout", "image"),  # meta.json written before layouts existed: images
            dtype=meta.get("dtype", ""),
            split_mode=split.get("mode", "fraction"),  # meta.json written before uploaded test splits
            test_source_format=split.get("test_source_format", ""),
            resized=meta.get("resized", 0),
            columns=meta.get("columns"),
            standardize=meta.get("standardize"),
            column_stats=meta.get("column_stats"),
        )


def read_info(dataset_dir: Path) -> DatasetInfo:
    """Load ``<dataset_dir>/meta.json`` written by :func:`ingest`."""
    with open(Path(dataset_dir) / "meta.json", encoding="utf-8") as fh:
        return DatasetInfo.from_meta(json.load(fh))


def human_bytes(n: int) -> str:
    """A byte count for messages: "512 bytes", "12 KB", "3.4 MB", "4 GB" (1 KB = 1024 bytes)."""
    if n < 1024:
        return f"{n:,} bytes"
    for unit in ("KB", "MB", "GB", "TB"):
        n /= 1024
        if n < 1024 or unit == "TB":
            return f"{n:,.0f} {unit}" if n >= 10 or n == int(n) else f"{n:.1f} {unit}"
    raise AssertionError("unreachable")
