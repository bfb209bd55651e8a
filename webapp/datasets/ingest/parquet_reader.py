"""Read a Parquet upload in record batches (row group by row group, never the whole table).

The file has a label column (``label_column``, default "label") and its features either as
numeric columns (every other column: integers, floats, booleans or decimals) or as ONE list
column of numbers, the same length in every row (e.g. the ``features`` column of Sparkdeck's
own train.parquet; a ``row_id`` column next to the list column is then ignored). Columns that
pandas wrote for a DataFrame index (``__index_level_0__``, or the index's name) are ignored.
"""

import math
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .errors import DatasetError
from .info import Limits, Scan
from .labels import LabelCollector

CHUNK_VALUES = 4_000_000  # feature values per record batch: 32 MB as float64
MAX_BATCH_ROWS = 65_536
ROW_ID = "row_id"
_PANDAS_INDEX = re.compile(r"__index_level_\d+__")


def _damaged(exc: Exception) -> DatasetError:
    detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
    return DatasetError(
        f"The Parquet file is damaged or cannot be read ({detail}). Save it again (e.g. with "
        "pandas.DataFrame.to_parquet) and re-upload."
    )


def _is_number(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_decimal(t)


def _is_list(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or getattr(pa.types, "is_string_view", bool)(t)


def _numpy_dtype(t: pa.DataType) -> np.dtype:
    if pa.types.is_decimal(t):
        return np.dtype(np.float64)
    return np.dtype(t.to_pandas_dtype())


def _first(mask: np.ndarray) -> int:
    return int(np.argmax(mask))


def _shown(names: list[str]) -> str:
    return ", ".join(repr(n if len(n) <= 20 else n[:20] + "…") for n in names[:8]) + (", …" if len(names) > 8 else "")


class ParquetSource:
    fmt = "parquet"
    array_shape = None  # rows are flat; the shape comes from image_shape or the feature count

    def __init__(self, path, limits: Limits, label_column: str = "label"):
        self.path, self.limits, self.label_column = path, limits, label_column
        try:
            with pq.ParquetFile(path) as pf:
                schema, self.rows = pf.schema_arrow, pf.metadata.num_rows
                self._check_columns(schema)
                self._check_size()
                if self.list_column is not None and self.num_features is None:
                    self.num_features = self._first_list_length(pf)
                    self._check_size()
        except DatasetError:
            raise
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise _damaged(exc) from exc

    def _check_columns(self, schema: pa.Schema) -> None:
        label = self.label_column
        try:
            pandas_index = {c for c in (schema.pandas_metadata or {}).get("index_columns", []) if isinstance(c, str)}
        except (ValueError, AttributeError, TypeError):  # unreadable pandas metadata: no index columns known
            pandas_index = set()
        names = [n for n in schema.names if n == label or not (_PANDAS_INDEX.fullmatch(n) or n in pandas_index)]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise DatasetError(f"The Parquet file has several columns named {dupes[0]!r}; rename all but one.")
        if label not in names:
            raise DatasetError(
                f"The Parquet file has no column named {label!r} (its columns are {_shown(names)}). "
                f"Name the column holding the classes {label!r}, or choose the label column."
            )
        label_type = schema.field(label).type
        if pa.types.is_dictionary(label_type):
            label_type = label_type.value_type
        if not (_is_text(label_type) or _is_number(label_type)) or pa.types.is_decimal(label_type):
            raise DatasetError(
                f"The label column {label!r} has type {label_type}; labels must be class ids (integers) "
                "or class names (text)."
            )
        rest = [n for n in names if n != label]
        lists = [n for n in rest if _is_list(schema.field(n).type)]
        self.list_column = None
        self.feature_names = None  # a list column's values have no names
        if lists:
            others = [n for n in rest if n not in lists and n != ROW_ID]
            if len(lists) > 1 or others:
                extra = lists[1:] + others
                raise DatasetError(
                    f"The Parquet file has a list column {lists[0]!r} and other feature columns "
                    f"({_shown(extra)}). Use either numeric columns (one per feature) or a single list "
                    "column of numbers, next to the label column."
                )
            name = lists[0]
            list_type = schema.field(name).type
            if not _is_number(list_type.value_type):
                nested = " (a list of lists: flatten each row to one list)" if _is_list(list_type.value_type) else ""
                raise DatasetError(
                    f"Column {name!r} of the Parquet file holds lists of {list_type.value_type}{nested}; "
                    "a list column of features must hold numbers."
                )
            self.list_column, self.feature_columns = name, [name]
            self.dtype = _numpy_dtype(list_type.value_type).name
            self.num_features = list_type.list_size if pa.types.is_fixed_size_list(list_type) else None
        else:
            if not rest:
                raise DatasetError(f"The Parquet file has only the {label!r} column; it needs feature columns too.")
            for name in rest:
                t = schema.field(name).type
                if not _is_number(t):
                    raise DatasetError(
                        f"Column {name!r} of the Parquet file has type {t}; all columns except the label "
                        f"{label!r} must hold numbers (or use a single list column of numbers)."
                    )
            self.feature_columns = rest
            self.feature_names = list(rest)
            self.dtype = np.result_type(*(_numpy_dtype(schema.field(n).type) for n in rest)).name
            self.num_features = len(rest)

    def _check_size(self) -> None:
        lim, d = self.limits, self.num_features
        if self.rows == 0:
            raise DatasetError("The Parquet file has no rows.")
        if self.rows > lim.max_rows:
            raise DatasetError(f"The dataset has {self.rows:,} rows; the limit is {lim.max_rows:,}.")
        if d is None:
            return
        if d == 0:
            raise DatasetError(f"The lists in column {self.list_column!r} are empty; they must hold the features.")
        if d > lim.max_features:
            raise DatasetError(f"Each row has {d:,} features; the limit is {lim.max_features:,}.")
        if self.rows * d > lim.max_values:
            raise DatasetError(
                f"The dataset has {self.rows * d:,} values (rows × features); the limit is {lim.max_values:,}."
            )

    def _first_list_length(self, pf: pq.ParquetFile) -> int:
        batch = next(pf.iter_batches(batch_size=1, columns=[self.list_column]))
        column = batch.column(0)
        if column.null_count:
            raise DatasetError(f"Row 0 of column {self.list_column!r} is empty (null); every row needs its features.")
        return len(column[0].values)

    # ---- reading

    def _labels(self, column: pa.Array, start: int) -> np.ndarray:
        name = self.label_column
        if pa.types.is_dictionary(column.type):
            column = column.dictionary_decode()
        if column.null_count:
            row = start + _first(column.is_null().to_numpy(zero_copy_only=False))
            raise DatasetError(
                f"Row {row} of the Parquet file has no label (column {name!r} is null there). Every row needs a label."
            )
        t = column.type
        if _is_text(t):
            values = np.char.strip(np.asarray(column.to_numpy(zero_copy_only=False), dtype=str))
            empty = values == ""
            if empty.any():
                raise DatasetError(
                    f"Row {start + _first(empty)} of the Parquet file has an empty label (column {name!r}). "
                    "Every row needs a label."
                )
            return values
        values = column.to_numpy(zero_copy_only=False)
        if pa.types.is_floating(t):
            bad = ~np.isfinite(values)
            if bad.any():
                raise DatasetError(f"Row {start + _first(bad)} of the Parquet file has a NaN or infinite label.")
            frac = values != np.round(values)
            if frac.any():
                i = _first(frac)
                raise DatasetError(
                    f"Row {start + i} of the Parquet file has the non-integer label {values[i]}. Labels must "
                    "be class ids (integers) or class names (text), not continuous values."
                )
        return values.astype(np.int64)

    def _features(self, batch: pa.RecordBatch, start: int) -> np.ndarray:
        m, d = batch.num_rows, self.num_features
        if self.list_column is not None:
            name, column = self.list_column, batch.column(1)
            if column.null_count:
                row = start + _first(column.is_null().to_numpy(zero_copy_only=False))
                raise DatasetError(f"Row {row} of column {name!r} is empty (null); every row needs its features.")
            lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
            wrong = lengths != d
            if wrong.any():
                i = _first(wrong)
                raise DatasetError(
                    f"Row {start + i} of column {name!r} has {lengths[i]:,} values but row 0 has {d:,}; "
                    "every row needs the same number of values."
                )
            values = column.flatten()
            if values.null_count:
                row = start + _first(values.is_null().to_numpy(zero_copy_only=False)) // d
                raise DatasetError(f"Row {row} of column {name!r} has an empty (null) value; fill or drop it.")
            features = values.to_numpy(zero_copy_only=False).astype(np.float64).reshape(m, d)
            names = None
        else:
            features = np.empty((m, d), dtype=np.float64)
            names = self.feature_columns
            for j, name in enumerate(names):
                column = batch.column(1 + j)
                if column.null_count:
                    row = start + _first(column.is_null().to_numpy(zero_copy_only=False))
                    raise DatasetError(
                        f"Row {row}, column {name!r} of the Parquet file is empty (null). Fill or drop "
                        "missing values before uploading."
                    )
                features[:, j] = column.to_numpy(zero_copy_only=False).astype(np.float64)
        bad = ~np.isfinite(features)
        if bad.any():
            row, col = np.unravel_index(_first(bad), bad.shape)
            what = "NaN (a missing value)" if np.isnan(features[row, col]) else "an infinite value"
            where = f"column {names[col]!r}" if names else f"column {self.list_column!r} (value {col})"
            raise DatasetError(
                f"Row {start + row}, {where} of the Parquet file holds {what}. Fill or drop missing and "
                "infinite values before uploading."
            )
        return features

    def batches_with_labels(self):
        """Yield (labels, features as float64 (rows, num_features)) per record batch, in row order."""
        step = max(1, min(MAX_BATCH_ROWS, CHUNK_VALUES // self.num_features))
        start = 0
        try:
            with pq.ParquetFile(self.path) as pf:
                for batch in pf.iter_batches(batch_size=step, columns=[self.label_column, *self.feature_columns]):
                    yield self._labels(batch.column(0), start), self._features(batch, start)
                    start += batch.num_rows
        except DatasetError:
            raise
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise _damaged(exc) from exc

    def batches(self):
        for _, features in self.batches_with_labels():
            yield features

    def scan(self) -> Scan:
        """Pass 1: validate every row; collect labels and the global min/max."""
        rows, lo, hi = 0, math.inf, -math.inf
        collector = LabelCollector(self.limits.max_classes)
        for labels, features in self.batches_with_labels():
            rows += len(labels)
            collector.add(labels)
            if len(features):
                lo, hi = min(lo, float(features.min())), max(hi, float(features.max()))
        if rows != self.rows:
            raise DatasetError("The Parquet file's row count does not match its metadata; save it again.")
        codes, names = collector.finish()
        return Scan(rows=rows, codes=codes, class_names=names, minimum=lo, maximum=hi, dtype=self.dtype)
