"""Limits on uploads and the summary of a converted dataset (mirrors meta.json)."""

import json
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


@dataclass
class Scan:
    """What a reader's first pass found: class index per row and the global value range."""

    rows: int
    codes: np.ndarray
    class_names: list[str]
    minimum: float
    maximum: float


@dataclass
class DatasetInfo:
    shape: tuple[int, ...]  # (h, w, c) for layout "image", (steps, features) for "sequence"
    num_classes: int
    class_names: list[str]
    class_counts: list[int]  # per class index, over train + test
    train_rows: int
    test_rows: int
    scale: float  # features = (raw - offset) / scale
    source_format: str  # "npz" | "csv"
    rows: int
    offset: float = 0.0
    test_fraction: float = 0.2
    seed: int = 42
    layout: str = "image"  # "image" | "sequence"

    def to_meta(self) -> dict:
        """The meta.json document: the keys of docs/architecture.md first, then extras."""
        return {
            "shape": list(self.shape),
            "num_classes": self.num_classes,
            "class_names": list(self.class_names),
            "train_rows": self.train_rows,
            "test_rows": self.test_rows,
            "scale": self.scale,
            "split": {"test_fraction": self.test_fraction, "seed": self.seed},
            "layout": self.layout,
            "offset": self.offset,
            "class_counts": list(self.class_counts),
            "rows": self.rows,
            "source_format": self.source_format,
            "version": META_VERSION,
        }

    @classmethod
    def from_meta(cls, meta: dict) -> "DatasetInfo":
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
            test_fraction=meta["split"]["test_fraction"],
            seed=meta["split"]["seed"],
            layout=meta.get("layout", "image"),  # meta.json written before layouts existed: images
        )


def read_info(dataset_dir: Path) -> DatasetInfo:
    """Load ``<dataset_dir>/meta.json`` written by :func:`ingest`."""
    with open(Path(dataset_dir) / "meta.json", encoding="utf-8") as fh:
        return DatasetInfo.from_meta(json.load(fh))
