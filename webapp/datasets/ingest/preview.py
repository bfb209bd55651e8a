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
    features: np.ndarray  # float32 in [0, 1], shape (h, w, c) for images, (steps, features) for sequences

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


def preview(dest_dir: Path, n: int = 20) -> list[PreviewRow]:
    """The first ``n`` rows of train.parquet, reading only the row groups needed (usually one).

    Each row's features have the dataset's shape: (h, w, c) for images, (steps, features) for
    sequences (see :attr:`PreviewRow.series` and :attr:`PreviewRow.polylines` to draw those).
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
