"""Read an NPZ upload (arrays x and y) without unpickling anything and without loading x whole.

np.load would decompress all of x into memory; reading the .npy member of the zip ourselves lets
the limits be checked from the header first and x be streamed in chunks. Nothing here can
unpickle: object dtypes are refused from the header, before any data is read.
"""

import math
import zipfile
import zlib

import numpy as np
from numpy.lib import format as npy

from .errors import DatasetError
from .info import Limits, Scan
from .labels import LabelCollector

CHUNK_VALUES = 4_000_000  # values per chunk of x: 32 MB as float64
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_DAMAGED = (zipfile.BadZipFile, zlib.error, EOFError)


def _damaged(exc: Exception) -> DatasetError:
    return DatasetError(
        f"The NPZ archive is damaged or truncated ({exc}). Save it again with numpy.savez and re-upload."
    )


def _read_header(fh, name: str):
    try:
        version = npy.read_magic(fh)
        if version == (1, 0):
            return npy.read_array_header_1_0(fh)
        if version == (2, 0):
            return npy.read_array_header_2_0(fh)
    except ValueError as exc:
        raise DatasetError(f"Array {name!r} in the NPZ is not a valid .npy array ({exc}).") from exc
    raise DatasetError(f"Array {name!r} uses .npy format version {version}, which is not supported.")


def _check_dtype(name: str, dtype: np.dtype, kinds: str) -> None:
    if dtype.hasobject:
        raise DatasetError(
            f"Array {name!r} holds Python objects (dtype=object), which could only be loaded by "
            f"unpickling, and uploads are never unpickled. Convert it first, e.g. "
            f"{name}.astype('float32') for features or {name}.astype(str) for labels."
        )
    if dtype.kind not in kinds:
        raise DatasetError(
            f"Array {name!r} has dtype {dtype}; it must hold numbers. Convert it first, e.g. {name}.astype('float32')."
        )


def _read_exact(fh, nbytes: int, name: str) -> bytes:
    data = fh.read(nbytes)
    if len(data) != nbytes:
        raise DatasetError(f"Array {name!r} in the NPZ is truncated. Save it again and re-upload.")
    return data


class NpzSource:
    fmt = "npz"

    def __init__(self, path, limits: Limits, x_key: str = "x", y_key: str = "y", layout: str = "image"):
        self.path, self.limits, self.x_key, self.y_key = path, limits, x_key, y_key
        self.layout = layout
        try:
            with zipfile.ZipFile(path) as zf:
                members = {n[: -len(".npy")]: n for n in zf.namelist() if n.endswith(".npy")}
                missing = [k for k in (x_key, y_key) if k not in members]
                if missing:
                    have = ", ".join(repr(k) for k in sorted(members)) or "no arrays at all"
                    hint = ""
                    if not members and any(n.lower().endswith(IMAGE_SUFFIXES) for n in zf.namelist()):
                        hint = " It holds images: to upload a zip of image folders, name it .zip."
                    raise DatasetError(
                        f"The NPZ has no array named {missing[0]!r}; it contains {have}.{hint} Save the "
                        f"features as {x_key!r} and the labels as {y_key!r}: "
                        f"numpy.savez(path, {x_key}=features, {y_key}=labels)."
                    )
                self._x_member = members[x_key]
                with zf.open(self._x_member) as fh:
                    self._x_shape, self._fortran, self._x_dtype = _read_header(fh, x_key)
                self._check_x()
                with zf.open(members[y_key]) as fh:
                    y_shape, y_fortran, y_dtype = _read_header(fh, y_key)
                    self.y = self._read_y(fh, y_shape, y_dtype)
        except DatasetError:
            raise
        except _DAMAGED as exc:
            raise _damaged(exc) from exc

    def _check_x(self) -> None:
        name, shape, lim = self.x_key, self._x_shape, self.limits
        _check_dtype(name, self._x_dtype, "biuf")
        if self.layout == "sequence" and len(shape) not in (2, 3):
            raise DatasetError(
                f"Array {name!r} has shape {shape}; sequence data must be (rows, steps) or (rows, steps, features)."
            )
        if len(shape) not in (2, 3, 4):
            raise DatasetError(
                f"Array {name!r} has shape {shape}; it must be (rows, features), (rows, height, width) "
                "or (rows, height, width, channels)."
            )
        self.rows, self.num_features = shape[0], math.prod(shape[1:])
        self.array_shape = tuple(shape[1:]) if len(shape) > 2 else None
        if self.rows == 0 or self.num_features == 0:
            raise DatasetError(f"Array {name!r} is empty (shape {shape}).")
        if self.rows > lim.max_rows:
            raise DatasetError(f"The dataset has {self.rows:,} rows; the limit is {lim.max_rows:,}.")
        if self.num_features > lim.max_features:
            raise DatasetError(f"Each row has {self.num_features:,} features; the limit is {lim.max_features:,}.")
        if self.rows * self.num_features > lim.max_values:
            raise DatasetError(
                f"The dataset has {self.rows * self.num_features:,} values (rows × features); "
                f"the limit is {lim.max_values:,}."
            )
        if self._fortran and self.rows * self.num_features * self._x_dtype.itemsize > lim.max_bytes:
            raise DatasetError(
                f"Array {name!r} is stored in Fortran order and is too large to convert; save "
                f"numpy.ascontiguousarray({name}) instead."
            )

    def _read_y(self, fh, shape, dtype) -> np.ndarray:
        name = self.y_key
        _check_dtype(name, dtype, "biufUS")
        if len(shape) == 2 and shape[1] == 1:
            shape = (shape[0],)  # a column vector of labels is fine
        if len(shape) != 1:
            raise DatasetError(f"Array {name!r} has shape {shape}; it must hold one label per row.")
        if shape[0] != self.rows:
            raise DatasetError(
                f"Array {self.x_key!r} has {self.rows:,} rows but {name!r} has {shape[0]:,} labels; "
                "they must match one to one."
            )
        if shape[0] * dtype.itemsize > self.limits.max_bytes:
            raise DatasetError(f"Array {name!r} is too large ({dtype} labels).")
        y = np.frombuffer(_read_exact(fh, shape[0] * dtype.itemsize, name), dtype=dtype)
        return self._clean_y(y)

    def _clean_y(self, y: np.ndarray) -> np.ndarray:
        name = self.y_key
        if y.dtype.kind == "f":
            bad = ~np.isfinite(y)
            if bad.any():
                raise DatasetError(f"Array {name!r} has a NaN or infinite label at row {int(np.argmax(bad))}.")
            frac = y != np.round(y)
            if frac.any():
                i = int(np.argmax(frac))
                raise DatasetError(
                    f"Array {name!r} has the non-integer label {y[i]} at row {i}. Labels must be "
                    "class ids (integers) or class names (strings), not continuous values."
                )
            return y.astype(np.int64)
        if y.dtype.kind == "b":
            return y.astype(np.int64)
        if y.dtype.kind in "US":
            try:
                y = np.char.strip(y.astype(str))
            except UnicodeDecodeError as exc:
                raise DatasetError(f"Array {name!r} has labels that are not text ({exc}).") from exc
            empty = y == ""
            if empty.any():
                raise DatasetError(f"Array {name!r} has an empty label at row {int(np.argmax(empty))}.")
        return y

    def batches(self):
        """Yield x as float64 arrays of shape (chunk, features), in row order."""
        d, dtype, name = self.num_features, self._x_dtype, self.x_key
        step = max(1, CHUNK_VALUES // d)
        try:
            with zipfile.ZipFile(self.path) as zf, zf.open(self._x_member) as fh:
                _read_header(fh, name)
                if self._fortran:  # rare (np.save of a transposed array); size-checked in _check_x
                    data = _read_exact(fh, self.rows * d * dtype.itemsize, name)
                    x = np.frombuffer(data, dtype).reshape(self._x_shape[::-1]).T.reshape(self.rows, d)
                    for start in range(0, self.rows, step):
                        yield x[start : start + step].astype(np.float64)
                    return
                for start in range(0, self.rows, step):
                    m = min(step, self.rows - start)
                    data = _read_exact(fh, m * d * dtype.itemsize, name)
                    yield np.frombuffer(data, dtype).reshape(m, d).astype(np.float64)
        except _DAMAGED as exc:
            raise _damaged(exc) from exc

    def scan(self) -> Scan:
        """Pass 1: validate every value and collect labels and the global min/max."""
        lo, hi, start = math.inf, -math.inf, 0
        for chunk in self.batches():
            self.check_values(start, chunk)
            lo, hi = min(lo, float(chunk.min())), max(hi, float(chunk.max()))
            start += len(chunk)
        collector = LabelCollector(self.limits.max_classes)
        collector.add(self.y)
        codes, names = collector.finish()
        return Scan(rows=self.rows, codes=codes, class_names=names, minimum=lo, maximum=hi, dtype=self._x_dtype.name)

    def check_values(self, start: int, chunk: np.ndarray) -> None:
        """Refuse NaN/inf, naming the first offending row."""
        bad = ~np.isfinite(chunk)
        if bad.any():
            row, _ = np.unravel_index(int(np.argmax(bad)), bad.shape)
            what = "NaN (a missing value)" if np.isnan(chunk[row]).any() else "an infinite value"
            raise DatasetError(
                f"Array {self.x_key!r} contains {what} at row {start + row}. Fill or drop missing "
                "and infinite values before uploading."
            )
