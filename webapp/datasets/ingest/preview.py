"""A few rows of a converted dataset for its web page."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from .info import read_info

HEAD_VALUES = 8
# A sequence row is drawn as SVG polylines in a SPARK_WIDTH × SPARK_HEIGHT box (viewBox units),
# one line per feature, at most SPARK_LINES of them.
SPARK_WIDTH, SPARK_HEIGHT, SPARK_LINES = 160, 40, 3


@dataclass
class PreviewRow:
    row_id: int
    label: str  # class name
    label_index: int
    # float32, shape (h, w, c) for images, (steps, features) for sequences (both in [0, 1]), (features,)
    # for tables (standardized)
    features: np.ndarray

    @property
    def head(self) -> str:
        """The first few values as text, for a table cell."""
        flat = self.features.reshape(-1)
        text = " ".join(f"{v:.2f}" for v in flat[:HEAD_VALUES])
        return text + (" …" if flat.size > HEAD_VALUES else "")

    @property
    def is_sequence(self) -> bool:
        return self.features.ndim == 2

    @property
    def series(self) -> list[list[float]]:
        """Sequences: the values of each feature over the steps (one list per feature); [] for images."""
        return self.features.T.tolist() if self.is_sequence else []

    @property
    def polylines(self) -> list[str]:
        """Sequences: SVG ``points`` attributes, one per feature (the first SPARK_LINES), in a
        SPARK_WIDTH × SPARK_HEIGHT box with 0 at the bottom and 1 at the top; [] for images.

        Values are the stored ones (already scaled to [0, 1] over the whole dataset), so rows are
        drawn on one common scale and can be compared by eye.
        """
        if not self.is_sequence:
            return []
        steps = self.features.shape[0]
        xs = np.linspace(0.0, SPARK_WIDTH, steps) if steps > 1 else np.zeros(1)
        lines = []
        for values in self.features.T[:SPARK_LINES]:
            ys = SPARK_HEIGHT * (1.0 - np.clip(values, 0.0, 1.0))
            lines.append(" ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True)))
        return lines


@dataclass
class ColumnSummary:
    """One feature column of a table dataset: its name and its raw values' statistics over all rows."""

    name: str
    minimum: float | None  # None: the column has no value at all
    maximum: float | None
    mean: float | None
    missing: int

    @staticmethod
    def _text(value) -> str:
        return "—" if value is None else f"{value:.6g}"

    @property
    def min_text(self) -> str:
        return self._text(self.minimum)

    @property
    def max_text(self) -> str:
        return self._text(self.maximum)

    @property
    def mean_text(self) -> str:
        return self._text(self.mean)


def column_summary(dest_dir: Path, limit: int | None = None) -> tuple[list[ColumnSummary], int]:
    """A table dataset's first ``limit`` columns (all when None) with their statistics from meta.json,
    and how many columns it has; ([], 0) for other layouts."""
    info = read_info(dest_dir)
    if info.layout != "table" or not info.columns or not info.column_stats:
        return [], 0
    stats, names = info.column_stats, info.columns[:limit]
    rows = [
        ColumnSummary(name, stats["min"][i], stats["max"][i], stats["mean"][i], stats["missing"][i])
        for i, name in enumerate(names)
    ]
    return rows, len(info.columns)


def preview(dest_dir: Path, n: int = 20) -> list[PreviewRow]:
    """The first ``n`` rows of train.parquet, reading only the row groups needed (usually one).

    Each row's features have the dataset's shape: (h, w, c) for images, (steps, features) for
    sequences, (features,) for tables (see :attr:`PreviewRow.series` and :attr:`PreviewRow.polylines` to draw those).
    """
    info = read_info(dest_dir)
    parquet = pq.ParquetFile(Path(dest_dir) / "train.parquet")
    rows: list[PreviewRow] = []
    for group in range(parquet.num_row_groups):
        if len(rows) >= n:
            break
        table = parquet.read_row_group(group).slice(0, n - len(rows))
        values = table.column("features").combine_chunks().flatten().to_numpy()
        features = values.reshape((len(table), *info.shape))
        for row_id, label, feats in zip(
            table.column("row_id").to_pylist(), table.column("label").to_pylist(), features, strict=True
        ):
            rows.append(PreviewRow(row_id, info.class_names[label], label, feats))
    return rows
