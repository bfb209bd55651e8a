"""ingest(): validate an upload and convert it to the dataset directory, all or nothing."""

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .csv_reader import CsvSource
from .detect import FORMATS, HEAD_BYTES, check_content, detect_format
from .errors import DatasetError
from .info import DatasetInfo, Limits
from .labels import check_classes
from .npz_reader import NpzSource
from .shapes import check_layout, resolve_sequence_shape, resolve_shape
from .split import stratified_split
from .writer import SplitWriter

log = logging.getLogger(__name__)
DEFAULT_LIMITS = Limits()


def _scale(lo: float, hi: float) -> tuple[float, float]:
    """(offset, scale) with features = (raw - offset) / scale in [0, 1].

    Data already in [0, 1] is kept as is; anything else is min-max scaled with the global range
    (so 0..255 pixels are divided by 255 when the darkest pixel is 0).
    """
    if lo >= 0.0 and hi <= 1.0:
        return 0.0, 1.0
    return lo, (hi - lo) or 1.0


def _open_source(src: Path, fmt: str, limits: Limits, label_column: str, x_key: str, y_key: str, layout: str):
    size = src.stat().st_size
    if size == 0:
        raise DatasetError("The file is empty. Upload an .npz archive or a .csv file with data in it.")
    if size > limits.max_bytes:
        raise DatasetError(f"The file is {size / 2**20:,.0f} MB; the limit is {limits.max_bytes / 2**20:,.0f} MB.")
    with open(src, "rb") as fh:
        check_content(fmt, fh.read(HEAD_BYTES))
    if fmt == "npz":
        return NpzSource(src, limits, x_key=x_key, y_key=y_key, layout=layout)
    return CsvSource(src, limits, label_column=label_column)


def _convert(source, tmp: Path, fmt: str, layout: str, user_shape, test_fraction: float, seed: int) -> DatasetInfo:
    if layout == "sequence":
        shape = resolve_sequence_shape(source.num_features, source.array_shape, user_shape)
    else:
        shape = resolve_shape(source.num_features, source.array_shape, user_shape)
    scan = source.scan()  # pass 1: validates everything before a byte of output is written
    counts = check_classes(scan.codes, scan.class_names)
    is_test = stratified_split(scan.codes, len(scan.class_names), test_fraction, seed)
    offset, scale = _scale(scan.minimum, scan.maximum)

    writers = {False: SplitWriter(tmp / "train.parquet"), True: SplitWriter(tmp / "test.parquet")}
    try:
        start = 0
        for chunk in source.batches():  # pass 2: scale and route each row to its split
            end = start + len(chunk)
            row_ids = np.arange(start, end, dtype=np.int64)
            features = np.clip((chunk - offset) / scale, 0.0, 1.0).astype(np.float32)
            for test, writer in writers.items():
                mask = is_test[start:end] == test
                writer.add(row_ids[mask], scan.codes[start:end][mask], features[mask])
            start = end
        if start != scan.rows:
            raise DatasetError("The file changed while it was being converted; upload it again.")
        for writer in writers.values():
            writer.close()
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise

    info = DatasetInfo(
        shape=shape,
        num_classes=len(scan.class_names),
        class_names=scan.class_names,
        class_counts=counts,
        train_rows=writers[False].rows,
        test_rows=writers[True].rows,
        scale=float(scale),
        source_format=fmt,
        rows=scan.rows,
        offset=float(offset),
        test_fraction=float(test_fraction),
        seed=seed,
        layout=layout,
    )
    with open(tmp / "meta.json", "w", encoding="utf-8") as fh:
        json.dump(info.to_meta(), fh, indent=2)
    return info


def ingest(
    src: Path,
    fmt: str | None,
    dest_dir: Path,
    *,
    label_column: str = "label",
    image_shape: tuple | None = None,
    test_fraction: float = 0.2,
    seed: int = 42,
    limits: Limits = DEFAULT_LIMITS,
    x_key: str = "x",
    y_key: str = "y",
    layout: str = "image",
    sequence_shape: tuple | None = None,
) -> DatasetInfo:
    """Validate ``src`` and write train.parquet, test.parquet and meta.json into ``dest_dir``.

    ``fmt`` is "npz" or "csv" (from :func:`detect_format`; None detects it from ``src``'s name).
    ``layout`` "image" (the default) records an (h, w, c) shape, ``image_shape`` overriding the
    inferred one; "sequence" records (steps, features): an NPZ ``x`` of (n, steps) or CSV feature
    columns give (steps, 1), an ``x`` of (n, steps, features) gives (steps, features), and
    ``sequence_shape`` ((steps, features) or (steps,)) overrides it.
    Output is built in a temporary directory next to ``dest_dir`` and renamed into place only on
    success. On any failure ``dest_dir`` does not exist afterwards and DatasetError is raised.
    ``dest_dir`` must not exist beforehand (FileExistsError: a caller bug, not a user error).
    """
    src, dest_dir = Path(src), Path(dest_dir)
    if dest_dir.exists():
        raise FileExistsError(f"{dest_dir} already exists; ingest() creates it")
    if fmt is None:
        with open(src, "rb") as fh:
            fmt = detect_format(src.name, fh.read(HEAD_BYTES))
    if fmt not in FORMATS:
        raise DatasetError(f"Unsupported dataset format {fmt!r}; use one of: .npz, .csv.")
    if not 0.0 < test_fraction < 1.0:
        raise DatasetError(f"The test fraction must be between 0 and 1 (exclusive), not {test_fraction}.")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise DatasetError(f"The split seed must be a non-negative integer, not {seed!r}.")
    check_layout(layout)
    user_shape, other = (sequence_shape, image_shape) if layout == "sequence" else (image_shape, sequence_shape)
    if other is not None:  # a caller bug, not a user error
        raise ValueError(f"layout {layout!r} takes {layout}_shape, not the other layout's shape")

    tmp = None
    try:
        dest_dir.parent.mkdir(parents=True, exist_ok=True)
        # Same parent as dest_dir, so the final rename is atomic (same filesystem).
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest_dir.name}.", suffix=".tmp", dir=dest_dir.parent))
        source = _open_source(src, fmt, limits, label_column, x_key, y_key, layout)
        info = _convert(source, tmp, fmt, layout, user_shape, test_fraction, seed)
        # mkdtemp makes the directory 0700; Spark executors may run as another user and read it.
        os.chmod(tmp, 0o755)
        os.rename(tmp, dest_dir)
        return info
    except DatasetError:
        raise
    except MemoryError as exc:
        raise DatasetError("The dataset is too large to convert with the memory available.") from exc
    except OSError as exc:
        log.exception("dataset conversion I/O error for %s", src)
        raise DatasetError(f"The dataset could not be read or written ({exc.strerror or exc}).") from exc
    except Exception as exc:
        log.exception("unexpected dataset conversion error for %s", src)
        raise DatasetError(
            f"The file could not be converted ({type(exc).__name__}); it may be malformed. "
            "Check the format described on the upload page."
        ) from exc
    finally:
        if tmp is not None and tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
