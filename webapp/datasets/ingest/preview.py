"""A few rows of a converted dataset for its web page."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from .info import read_info

HEAD_VALUES = 8


@dataclass
class PreviewRow:
    row_id: int
    label: str  # class name
    label_index: int
    features: np.ndarray  # float32, shape (h, w, c), values in [0, 1]

    @property
    def head(self) -> str:
        """The first few values as text, for a table cell."""
        flat = self.features.reshape(-1)
        text = " ".join(f"{v:.2f}" for v in flat[:HEAD_VALUES])
        return text + (" …" if flat.size > HEAD_VALUES else "")


def preview(dest_dir: Path, n: int = 20) -> list[PreviewRow]:
    """The first ``n`` rows of train.parquet, reading only the row groups needed (usually one)."""
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
