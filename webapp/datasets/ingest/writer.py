"""Write train/test Parquet files in the layout of docs/architecture.md."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROW_GROUP_ROWS = 1024  # readers (TFoS feeders) go through a split one row group at a time

SCHEMA = pa.schema(
    [
        pa.field("row_id", pa.int64()),
        pa.field("label", pa.int64()),
        pa.field("features", pa.list_(pa.float32())),
    ]
)


class SplitWriter:
    """Buffers rows and writes them as row groups of exactly ROW_GROUP_ROWS (the last may be short)."""

    def __init__(self, path):
        self._writer = pq.ParquetWriter(path, SCHEMA)
        self._parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._buffered = 0
        self.rows = 0

    def add(self, row_ids: np.ndarray, labels: np.ndarray, features: np.ndarray) -> None:
        if len(row_ids):
            self._parts.append((row_ids, labels, features))
            self._buffered += len(row_ids)
        if self._buffered >= ROW_GROUP_ROWS:
            self._flush(final=False)

    def _flush(self, final: bool) -> None:
        if not self._parts:
            return
        row_ids, labels, features = (np.concatenate(p) for p in zip(*self._parts, strict=True))
        full = len(row_ids) if final else len(row_ids) - len(row_ids) % ROW_GROUP_ROWS
        for start in range(0, full, ROW_GROUP_ROWS):
            end = min(start + ROW_GROUP_ROWS, full)
            self._write(row_ids[start:end], labels[start:end], features[start:end])
        rest = slice(full, None)
        self._parts = [(row_ids[rest], labels[rest], features[rest])] if full < len(row_ids) else []
        self._buffered = len(row_ids) - full

    def _write(self, row_ids, labels, features) -> None:
        m, d = features.shape
        # int32 offsets are safe: a row group holds ≤ 1024 rows × ≤ 100k features.
        offsets = pa.array(np.arange(0, (m + 1) * d, d, dtype=np.int32))
        values = pa.array(np.ascontiguousarray(features, dtype=np.float32).reshape(-1))
        table = pa.Table.from_arrays(
            [pa.array(row_ids, pa.int64()), pa.array(labels, pa.int64()), pa.ListArray.from_arrays(offsets, values)],
            schema=SCHEMA,
        )
        self._writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
        self.rows += m

    def close(self) -> None:
        self._flush(final=True)
        self._writer.close()

    def abort(self) -> None:
        """Release the file after a failure; the caller deletes it."""
        try:
            self._writer.close()
        except Exception:  # noqa: BLE001 - already failing; the original error matters
            pass
