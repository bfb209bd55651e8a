"""Read a CSV upload in chunks: pandas' C parser does the work, the csv module explains errors.

Parsing with pandas is several times faster than the csv module, but its errors carry no
reliable line numbers. So any anomaly in a chunk (a parse error, an empty label, a NaN) stops
the fast path and :meth:`CsvSource.diagnose` re-reads the file with the csv module to name the
exact line and column.
"""

import collections
import csv
import math

import numpy as np
import pandas as pd

from .errors import DatasetError
from .info import Limits, Scan
from .labels import LabelCollector

CHUNK_VALUES = 4_000_000  # cells per pandas chunk


def _blank(row: list[str]) -> bool:
    # pandas (skip_blank_lines) skips empty and whitespace-only lines; do the same.
    return len(row) <= 1 and not "".join(row).strip()


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _cell_problem(cell: str) -> str | None:
    text = cell.strip()
    if not text:
        return "the value is empty"
    try:
        value = float(text)
    except ValueError:
        return f"{_short(cell)!r} is not a number"
    if not math.isfinite(value):
        return f"{_short(cell)!r} is not a finite number"
    return None


class CsvSource:
    fmt = "csv"
    array_shape = None  # CSV rows are flat; the shape comes from image_shape or the column count

    def __init__(self, path, limits: Limits, label_column: str = "label"):
        self.path, self.limits, self.label_column = path, limits, label_column
        self.header = [name.strip() for name in self._read_header()]
        self._check_header()
        self.label_pos = self.header.index(label_column)
        self.num_features = len(self.header) - 1

    def _read_header(self) -> list[str]:
        with open(self.path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            try:
                for row in reader:
                    if not _blank(row):
                        return row
            except UnicodeDecodeError:
                raise self._not_utf8() from None
            except csv.Error as exc:
                raise DatasetError(f"Line {reader.line_num} of the CSV cannot be parsed ({exc}).") from exc
        raise DatasetError("The CSV file has no header row. Its first line must name the columns.")

    def _check_header(self) -> None:
        names, label, lim = self.header, self.label_column, self.limits
        if label not in names:
            hint = ""
            if len(names) == 1 and (";" in names[0] or "\t" in names[0]):
                sep = "';'" if ";" in names[0] else "tab"
                hint = f" The file seems to use {sep} as separator; save it comma-separated."
            elif all(_cell_problem(n) is None for n in names):
                hint = " The first line looks like data: add a header row naming the columns."
            shown = ", ".join(repr(_short(n, 20)) for n in names[:8]) + (", …" if len(names) > 8 else "")
            raise DatasetError(
                f"The CSV has no column named {label!r} (its columns are {shown}).{hint} "
                f"Name the column holding the classes {label!r}, or choose the label column."
            )
        if names.count(label) > 1:
            raise DatasetError(f"The CSV has {names.count(label)} columns named {label!r}; rename all but one.")
        if "" in names:
            raise DatasetError(
                f"Column {names.index('') + 1} of the CSV header has no name (often a trailing comma). "
                "Give every column a name or remove the empty column."
            )
        if len(names) < 2:
            raise DatasetError(f"The CSV has only the {label!r} column; it needs feature columns too.")
        if len(names) - 1 > lim.max_features:
            raise DatasetError(f"The CSV has {len(names) - 1:,} feature columns; the limit is {lim.max_features:,}.")

    def _not_utf8(self) -> DatasetError:
        with open(self.path, "rb") as fh:
            for number, raw in enumerate(fh, 1):
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    return DatasetError(
                        f"Line {number} of the CSV is not valid UTF-8 text (byte 0x{raw[exc.start]:02x}). "
                        "Save the file as UTF-8 (in Excel: 'CSV UTF-8') and upload it again."
                    )
        return DatasetError("The CSV is not valid UTF-8 text. Save it as UTF-8 and upload it again.")

    def diagnose(self) -> DatasetError | None:
        """Find the first bad line with the (slow, exact) csv module; None if all lines look fine."""
        ncols, label = len(self.header), self.label_column
        with open(self.path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            seen_header = False
            try:
                for row in reader:
                    if _blank(row):
                        continue
                    if not seen_header:
                        seen_header = True
                        continue
                    line = reader.line_num
                    if len(row) != ncols:
                        return DatasetError(
                            f"Line {line} of the CSV has {len(row)} values but the header has {ncols} "
                            "columns. Every row needs one value per column."
                        )
                    if not row[self.label_pos].strip():
                        return DatasetError(
                            f"Line {line} of the CSV has an empty label (column {label!r}). Every row needs a label."
                        )
                    for j, cell in enumerate(row):
                        problem = j != self.label_pos and _cell_problem(cell)
                        if problem:
                            return DatasetError(
                                f"Line {line}, column {self.header[j]!r} of the CSV: {problem}. "
                                "All columns except the label must hold numbers."
                            )
            except UnicodeDecodeError:
                return self._not_utf8()
            except csv.Error as exc:
                return DatasetError(f"Line {reader.line_num} of the CSV cannot be parsed ({exc}).")
        return None

    def _fail(self, exc: Exception | None = None):
        problem = self.diagnose()
        if problem is None:
            detail = f" ({exc})" if exc else ""
            problem = DatasetError(f"The CSV could not be read{detail}. Check that it is a comma-separated file.")
        raise problem from exc

    def batches_with_labels(self):
        """Yield (labels as str array, features as float64 array) per chunk, in row order."""
        names = [f"c{i}" for i in range(len(self.header))]  # positional: header names may repeat
        label_name = names[self.label_pos]
        dtypes = collections.defaultdict(lambda: np.float64, {label_name: str})
        step = max(16, min(8192, CHUNK_VALUES // len(names)))
        try:
            with pd.read_csv(
                self.path,
                header=0,
                names=names,
                dtype=dtypes,
                keep_default_na=False,  # "NA" or "" must be errors, not silently NaN
                chunksize=step,
                encoding="utf-8",
                engine="c",
            ) as chunks:
                for frame in chunks:
                    labels = frame.pop(label_name).str.strip().to_numpy(dtype=object)
                    features = frame.to_numpy(dtype=np.float64)
                    if (labels == "").any() or not np.isfinite(features).all():
                        self._fail()
                    yield labels, features
        except DatasetError:
            raise
        except (ValueError, csv.Error) as exc:  # includes pandas ParserError, UnicodeDecodeError
            self._fail(exc)

    def batches(self):
        for _, features in self.batches_with_labels():
            yield features

    def scan(self) -> Scan:
        """Pass 1: validate every line; collect labels and the global min/max."""
        lim, rows = self.limits, 0
        lo, hi = math.inf, -math.inf
        collector = LabelCollector(lim.max_classes)
        for labels, features in self.batches_with_labels():
            rows += len(labels)
            if rows > lim.max_rows:
                raise DatasetError(f"The CSV has more than {lim.max_rows:,} rows, the limit.")
            if rows * self.num_features > lim.max_values:
                raise DatasetError(f"The CSV has more than {lim.max_values:,} values (rows × features), the limit.")
            collector.add(labels)
            if len(features):
                lo, hi = min(lo, float(features.min())), max(hi, float(features.max()))
        if rows == 0:
            raise DatasetError("The CSV has a header but no data rows.")
        codes, names = collector.finish()
        return Scan(rows=rows, codes=codes, class_names=names, minimum=lo, maximum=hi)
