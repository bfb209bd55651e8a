"""Read a CSV or TSV upload in chunks: pandas' C parser does the work, the csv module explains errors.

Parsing with pandas is several times faster than the csv module, but its errors carry no
reliable line numbers. So any anomaly in a chunk (a parse error, an empty label, a NaN) stops
the fast path and :meth:`CsvSource.diagnose` re-reads the file with the csv module to name the
exact line and column.

Separator: a tab for format "tsv" (a .tsv file), and for a "csv" whose first line has tabs but no
comma; a comma otherwise.

Header: the first non-blank line names the columns, unless every value in it is a number. Then
the file has no header, its columns are called c0, c1, …, and the label is the LAST column, or the
column whose number (0 = the first, -1 = the last) is given as ``label_column``. With a header,
``label_column`` is a column name, or a column number when no column has that name.
"""

import collections
import csv
import math
import re

import numpy as np
import pandas as pd

from .errors import DatasetError
from .info import Limits, Scan
from .labels import LabelCollector

CHUNK_VALUES = 4_000_000  # cells per pandas chunk
_INT = re.compile(r"[+-]?\d+")


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


def _column_number(text: str, ncols: int) -> int | None:
    """``text`` as a column index (0 = first, -1 = last) if it is an integer in range, else None."""
    text = (text or "").strip()
    if not _INT.fullmatch(text):
        return None
    pos = int(text)
    if -ncols <= pos < ncols:
        return pos % ncols
    return None


class CsvSource:
    fmt = "csv"
    array_shape = None  # CSV rows are flat; the shape comes from image_shape or the column count

    def __init__(self, path, limits: Limits, label_column: str = "label", fmt: str = "csv"):
        self.path, self.limits, self.label_column, self.fmt = path, limits, label_column, fmt
        self.delimiter = "\t" if fmt == "tsv" else ","
        self.kind = fmt.upper()  # "CSV" | "TSV", for messages
        first = [name.strip() for name in self._read_first_row()]
        self.has_header = not all(_cell_problem(cell) is None for cell in first)
        if self.has_header:
            self.header = first
            self.label_pos = self._check_header()
        else:
            self.header = [f"c{i}" for i in range(len(first))]
            self.label_pos = self._headerless_label()
        self.label_name = self.header[self.label_pos]
        self.num_features = len(self.header) - 1
        # The feature columns' names for a table's meta.json; a headerless file has none (None).
        self.feature_names = [n for j, n in enumerate(self.header) if j != self.label_pos] if self.has_header else None
        if self.num_features > limits.max_features:
            raise DatasetError(
                f"The {self.kind} has {self.num_features:,} feature columns; the limit is {limits.max_features:,}."
            )

    def _reader(self, fh):
        return csv.reader(fh, delimiter=self.delimiter)

    def _read_first_row(self) -> list[str]:
        with open(self.path, newline="", encoding="utf-8-sig") as fh:
            try:
                if self.fmt == "csv":
                    # A tab-separated file uploaded as .csv: tabs but no comma in the first line.
                    for line in fh:
                        if line.strip():
                            if "\t" in line and "," not in line:
                                self.delimiter = "\t"
                            break
                    fh.seek(0)
                reader = self._reader(fh)
                for row in reader:
                    if not _blank(row):
                        return row
            except UnicodeDecodeError:
                raise self._not_utf8() from None
            except csv.Error as exc:
                raise DatasetError(f"Line {reader.line_num} of the {self.kind} cannot be parsed ({exc}).") from exc
        raise DatasetError(f"The {self.kind} file has no rows at all, only blank lines.")

    def _headerless_label(self) -> int:
        label, ncols = self.label_column, len(self.header)
        if ncols < 2:
            raise DatasetError(f"The {self.kind} has a single column; it needs feature columns and a label column.")
        if label in ("", "label"):  # the default: no header, so the label is the last column
            return ncols - 1
        pos = _column_number(label, ncols)
        if pos is None:
            raise DatasetError(
                f"The first line of the {self.kind} is all numbers, so the file has no header and its "
                f"{ncols} columns have no names: there is no column {label!r}. Leave the label column as "
                f"'label' to use the last column, give its number (0 = the first column, -1 = the last), "
                "or add a header row naming the columns."
            )
        return pos

    def _check_header(self) -> int:
        names, label, kind = self.header, self.label_column, self.kind
        if label not in names:
            pos = _column_number(label, len(names))
            if pos is not None and len(names) >= 2:
                return pos
            hint = ""
            if len(names) == 1 and ";" in names[0]:
                hint = " The file seems to use ';' as separator; save it comma-separated."
            elif len(names) == 1 and "," in names[0] and self.delimiter == "\t":
                hint = " The file seems to use ',' as separator; name it .csv."
            elif len(names) > 2 and sum(_cell_problem(n) is not None for n in names) == 1:
                hint = (
                    " The first line looks like data: add a header row naming the columns (a file without "
                    "a header is recognised only when its first line is all numbers, labels included)."
                )
            shown = ", ".join(repr(_short(n, 20)) for n in names[:8]) + (", …" if len(names) > 8 else "")
            raise DatasetError(
                f"The {kind} has no column named {label!r} (its columns are {shown}).{hint} "
                f"Name the column holding the classes {label!r}, or choose the label column."
            )
        if names.count(label) > 1:
            raise DatasetError(f"The {kind} has {names.count(label)} columns named {label!r}; rename all but one.")
        if "" in names:
            raise DatasetError(
                f"Column {names.index('') + 1} of the {kind} header has no name (often a trailing separator). "
                "Give every column a name or remove the empty column."
            )
        if len(names) < 2:
            raise DatasetError(f"The {kind} has only the {label!r} column; it needs feature columns too.")
        return names.index(label)

    def _not_utf8(self) -> DatasetError:
        with open(self.path, "rb") as fh:
            for number, raw in enumerate(fh, 1):
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    return DatasetError(
                        f"Line {number} of the {self.kind} is not valid UTF-8 text (byte 0x{raw[exc.start]:02x}). "
                        "Save the file as UTF-8 (in Excel: 'CSV UTF-8') and upload it again."
                    )
        return DatasetError(f"The {self.kind} is not valid UTF-8 text. Save it as UTF-8 and upload it again.")

    def diagnose(self) -> DatasetError | None:
        """Find the first bad line with the (slow, exact) csv module; None if all lines look fine."""
        ncols, label, kind = len(self.header), self.label_name, self.kind
        with open(self.path, newline="", encoding="utf-8-sig") as fh:
            reader = self._reader(fh)
            seen_header = not self.has_header
            try:
                for row in reader:
                    if _blank(row):
                        continue
                    if not seen_header:
                        seen_header = True
                        continue
                    line = reader.line_num
                    if len(row) != ncols:
                        has = "the header has" if self.has_header else "the first line has"
                        return DatasetError(
                            f"Line {line} of the {kind} has {len(row)} values but {has} {ncols} "
                            "columns. Every row needs one value per column."
                        )
                    if not row[self.label_pos].strip():
                        return DatasetError(
                            f"Line {line} of the {kind} has an empty label (column {label!r}). Every row needs a label."
                        )
                    for j, cell in enumerate(row):
                        problem = j != self.label_pos and _cell_problem(cell)
                        if problem:
                            return DatasetError(
                                f"Line {line}, column {self.header[j]!r} of the {kind}: {problem}. "
                                "All columns except the label must hold numbers."
                            )
            except UnicodeDecodeError:
                return self._not_utf8()
            except csv.Error as exc:
                return DatasetError(f"Line {reader.line_num} of the {kind} cannot be parsed ({exc}).")
        return None

    def _fail(self, exc: Exception | None = None):
        problem = self.diagnose()
        if problem is None:
            detail = f" ({exc})" if exc else ""
            sep = "tab" if self.delimiter == "\t" else "comma"
            problem = DatasetError(
                f"The {self.kind} could not be read{detail}. Check that it is a {sep}-separated file."
            )
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
                sep=self.delimiter,
                header=0 if self.has_header else None,
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
        lim, rows, kind = self.limits, 0, self.kind
        lo, hi = math.inf, -math.inf
        integral = True
        collector = LabelCollector(lim.max_classes)
        for labels, features in self.batches_with_labels():
            rows += len(labels)
            if rows > lim.max_rows:
                raise DatasetError(f"The {kind} has more than {lim.max_rows:,} rows, the limit.")
            if rows * self.num_features > lim.max_values:
                raise DatasetError(f"The {kind} has more than {lim.max_values:,} values (rows × features), the limit.")
            collector.add(labels)
            if len(features):
                lo, hi = min(lo, float(features.min())), max(hi, float(features.max()))
                integral = integral and bool((features == np.round(features)).all())
        if rows == 0:
            raise DatasetError(f"The {kind} has a header but no data rows.")
        codes, names = collector.finish()
        # Text has no dtype; say what the numbers are: all whole numbers, or not.
        dtype = "int64" if integral else "float64"
        return Scan(rows=rows, codes=codes, class_names=names, minimum=lo, maximum=hi, dtype=dtype)
