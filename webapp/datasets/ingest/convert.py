"""ingest(): validate an upload and convert it to the dataset directory, all or nothing."""

import contextlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from workers.jobs.standardize import ColumnStats, Standardizer

from .csv_reader import CsvSource
from .detect import FORMATS, HEAD_BYTES, SUPPORTED, check_content, detect_format
from .errors import DatasetError
from .info import DatasetInfo, Limits, Scan, human_bytes
from .labels import check_classes
from .npz_reader import NpzSource
from .parquet_reader import ParquetSource
from .shapes import check_layout, resolve_layout, resolve_sequence_shape, resolve_shape, resolve_table_shape
from .split import stratified_split
from .writer import SplitWriter
from .zip_images import ZipImageSource, check_size

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


def _open_source(src: Path, fmt: str, limits: Limits, options: dict):
    size = src.stat().st_size
    if size == 0:
        raise DatasetError("The file is empty (0 bytes). Upload a file with data in it.")
    if size > limits.max_bytes:
        raise DatasetError(f"The file is {human_bytes(size)}; the limit is {human_bytes(limits.max_bytes)}.")
    with open(src, "rb") as fh:
        check_content(fmt, fh.read(HEAD_BYTES))
    if fmt == "npz":
        return NpzSource(src, limits, x_key=options["x_key"], y_key=options["y_key"], layout=options["layout"])
    if fmt == "parquet":
        return ParquetSource(src, limits, label_column=options["label_column"])
    if fmt == "zip":
        if options["layout"] != "image":
            raise DatasetError(
                "A ZIP of images can only become an image dataset; choose the automatic or image layout."
            )
        return ZipImageSource(src, limits, image_size=options["image_size"], channels=options["channels"])
    return CsvSource(src, limits, label_column=options["label_column"], fmt=fmt)


@contextlib.contextmanager
def _test_file():
    """Say which file a problem is in, when a test file was uploaded next to the training file."""
    try:
        yield
    except DatasetError as exc:
        raise DatasetError(f"In the test file: {exc}") from exc


def _resolve(source, layout: str, user_shape) -> tuple[int, ...]:
    if getattr(source, "owns_shape", False):  # ZIP of images: the user's shape already chose the size
        user_shape = None
    if layout == "sequence":
        return resolve_sequence_shape(source.num_features, source.array_shape, user_shape)
    if layout == "table":
        return resolve_table_shape(source.num_features, source.array_shape, user_shape)
    return resolve_shape(source.num_features, source.array_shape, user_shape)


def _x(shape) -> str:
    return "×".join(map(str, shape))


def _test_codes(scan: Scan, test_scan: Scan) -> np.ndarray:
    """The test file's class indices in the training file's classes."""
    index = {name: i for i, name in enumerate(scan.class_names)}
    unknown = [name for name in test_scan.class_names if name not in index]
    if unknown:
        shown = ", ".join(repr(n) for n in unknown[:10]) + (" …" if len(unknown) > 10 else "")
        raise DatasetError(
            f"The test file has class(es) {shown} that the training file does not have; every test "
            "class must also be in the training file (check the label column and the class names)."
        )
    remap = np.array([index[name] for name in test_scan.class_names], dtype=np.int64)
    return remap[test_scan.codes]


def _min_max(offset: float, scale: float):
    """Images and sequences: features = (raw - offset) / scale, clipped into [0, 1], float32."""
    return lambda raw: np.clip((raw - offset) / scale, 0.0, 1.0).astype(np.float32)


def _chunks(source, rows: int, transform, observe=None):
    """The writing pass over one source: (start, end, transform(raw chunk)) per chunk; ``observe``
    (if given) sees each raw chunk first."""
    start = 0
    for chunk in source.batches():
        end = start + len(chunk)
        if observe is not None:
            observe(chunk)
        yield start, end, transform(chunk)
        start = end
    if start != rows:
        raise DatasetError("The file changed while it was being converted; upload it again.")


def _train_statistics(source, is_test) -> Standardizer:
    """Tables, the pass before writing: each feature's mean and std over the training rows only
    (``is_test`` marks the rows split off for testing; None: every row of ``source`` trains)."""
    stats, start = ColumnStats(source.num_features), 0
    for chunk in source.batches():
        end = start + len(chunk)
        stats.add(chunk if is_test is None else chunk[~is_test[start:end]])
        start = end
    return stats.standardizer()


def _convert(
    source, test_source, tmp: Path, fmt: str, test_fmt, layout: str, user_shape, test_fraction: float, seed: int
) -> DatasetInfo:
    if getattr(source, "owns_shape", False) and getattr(test_source, "owns_shape", False):  # two ZIPs of images
        channels = 3 if source.has_colour or test_source.has_colour else 1
        source.set_channels(channels)
        with _test_file():
            test_source.set_channels(channels)
    shape = _resolve(source, layout, user_shape)
    if test_source is not None:
        with _test_file():
            test_shape = _resolve(test_source, layout, user_shape)
        if test_shape != shape and layout == "table":
            raise DatasetError(
                f"The test file's rows have {test_shape[0]} features but the training file's have {shape[0]}; "
                "they must match."
            )
        if test_shape != shape:
            hint = " Choose an image size to resize both." if fmt == "zip" == test_fmt else ""
            raise DatasetError(
                f"The test file's rows have shape {_x(test_shape)} but the training file's have {_x(shape)}; "
                f"they must match.{hint}"
            )
    scan = source.scan()  # pass 1: validates everything before a byte of output is written
    unit = getattr(source, "unit", "row")
    if test_source is None:
        counts = check_classes(scan.codes, scan.class_names, unit=unit)
        is_test = stratified_split(scan.codes, len(scan.class_names), test_fraction, seed)
        lo, hi = scan.minimum, scan.maximum
    else:
        with _test_file():
            test_scan = test_source.scan()
        check_classes(scan.codes, scan.class_names, unit=unit, min_rows=1)
        test_codes = _test_codes(scan, test_scan)
        counts = (
            np.bincount(scan.codes, minlength=len(scan.class_names))
            + np.bincount(test_codes, minlength=len(scan.class_names))
        ).tolist()
        lo, hi = min(scan.minimum, test_scan.minimum), max(scan.maximum, test_scan.maximum)
    table = layout == "table"
    if table:  # standardized per feature with the training rows' statistics, not min-max scaled
        standardizer = _train_statistics(source, None if test_source is not None else is_test)
        offset, scale, transform = 0.0, 1.0, standardizer.apply
        raw_stats = ColumnStats(source.num_features)  # of every row, train and test, for the dataset page
        observe = raw_stats.add
    else:
        offset, scale = _scale(lo, hi)
        transform, observe = _min_max(offset, scale), None

    writers = {False: SplitWriter(tmp / "train.parquet"), True: SplitWriter(tmp / "test.parquet")}
    try:
        for start, end, features in _chunks(source, scan.rows, transform, observe):
            row_ids, codes = np.arange(start, end, dtype=np.int64), scan.codes[start:end]
            if test_source is None:  # route each row to its split
                for test, writer in writers.items():
                    keep = is_test[start:end] == test
                    writer.add(row_ids[keep], codes[keep], features[keep])
            else:
                writers[False].add(row_ids, codes, features)
        if test_source is not None:
            with _test_file():  # row ids of the test split count the test file's rows
                for start, end, features in _chunks(test_source, test_scan.rows, transform, observe):
                    writers[True].add(np.arange(start, end, dtype=np.int64), test_codes[start:end], features)
        for writer in writers.values():
            writer.close()
    except BaseException:
        for writer in writers.values():
            writer.abort()
        raise

    uploaded = test_source is not None
    info = DatasetInfo(
        shape=shape,
        num_classes=len(scan.class_names),
        class_names=scan.class_names,
        class_counts=counts,
        train_rows=writers[False].rows,
        test_rows=writers[True].rows,
        scale=float(scale),
        source_format=fmt,
        rows=writers[False].rows + writers[True].rows,
        offset=float(offset),
        test_fraction=None if uploaded else float(test_fraction),
        seed=None if uploaded else seed,
        layout=layout,
        dtype=scan.dtype,
        split_mode="uploaded" if uploaded else "fraction",
        test_source_format=test_fmt if uploaded else "",
        resized=getattr(source, "resized", 0) + (getattr(test_source, "resized", 0) if uploaded else 0),
    )
    if table:
        d = source.num_features
        info.columns = list(getattr(source, "feature_names", None) or (f"f{i}" for i in range(d)))
        info.standardize = standardizer.to_meta()
        info.column_stats = raw_stats.summary()
    with open(tmp / "meta.json", "w", encoding="utf-8") as fh:
        json.dump(info.to_meta(), fh, indent=2)
    return info


def _detect(src: Path, fmt: str | None) -> str:
    if fmt is None:
        with open(src, "rb") as fh:
            fmt = detect_format(src.name, fh.read(HEAD_BYTES))
    if fmt not in FORMATS:
        raise DatasetError(f"Unsupported dataset format {fmt!r}; upload {SUPPORTED}.")
    return fmt


def _image_options(fmt: str, layout: str, image_shape, image_size) -> tuple:
    """(image_size, channels) for a ZIP of images, from image_size or else the user's image_shape."""
    if fmt != "zip":
        if image_size is not None:
            raise DatasetError(
                "An image size (resizing) applies only to ZIP archives of images; for other formats "
                "give the image shape of the rows instead."
            )
        return None, None
    if image_size is None and image_shape is not None and layout == "image":
        shape = tuple(image_shape)
        if len(shape) not in (2, 3):
            raise DatasetError(
                f"Image shape {shape} must be (height, width) or (height, width, channels) with positive sizes."
            )
        size, channels = shape[:2], (int(shape[2]) if len(shape) == 3 else None)
        return check_size(size, "Image shape"), channels
    return (None if image_size is None else check_size(image_size)), None


def ingest(
    src: Path,
    fmt: str | None,
    dest_dir: Path,
    *,
    label_column: str = "label",
    image_shape: tuple | None = None,
    image_size: tuple | None = None,
    test_fraction: float = 0.2,
    seed: int = 42,
    limits: Limits = DEFAULT_LIMITS,
    x_key: str = "x",
    y_key: str = "y",
    layout: str = "auto",
    sequence_shape: tuple | None = None,
    test_src: Path | None = None,
    test_fmt: str | None = None,
) -> DatasetInfo:
    """Validate ``src`` and write train.parquet, test.parquet and meta.json into ``dest_dir``.

    ``fmt`` is "npz", "csv", "tsv", "parquet" or "zip" (from :func:`detect_format`; None detects
    it from ``src``'s name and first bytes).

    - npz: arrays ``x_key`` (features) and ``y_key`` (labels), see npz_reader.
    - csv / tsv: a label column (``label_column``, a name or a column number) and numeric feature
      columns; a file whose first line is all numbers has no header and its label is the last
      column (or the column number given), see csv_reader.
    - parquet: a label column and numeric feature columns or one list column, see parquet_reader.
    - zip: PNG/JPEG images in one folder per class, see zip_images. ``image_size`` (h, w) resizes
      every image to it; without it, ``image_shape`` (h, w) or (h, w, channels) does the same (the
      channels, 1 or 3, converting the images), and with neither the most common size is used.

    ``layout`` "auto" (the default) makes a CSV, TSV or Parquet file without ``image_shape`` a
    table and anything else images (shapes.resolve_layout). "image" records an (h, w, c) shape,
    ``image_shape`` overriding the inferred one (without it a square feature count s² gives
    s × s × 1, any other count 1 × d × 1); "sequence" records (steps, features): an NPZ ``x`` of
    (n, steps) or CSV feature columns give (steps, 1), an ``x`` of (n, steps, features) gives
    (steps, features), and ``sequence_shape`` ((steps, features) or (steps,)) overrides it.
    "table" records (features,) (an NPZ ``x`` must then be 2-D) and stores each feature
    standardized, ``(raw - mean) / std`` with the training rows' mean and std (the test rows left
    out; with ``test_src``, all of ``src``) applied alike to both splits, float32 and not clipped;
    meta.json then also holds "columns", "standardize" and "column_stats" (see DatasetInfo).
    Images and sequences are min-max scaled into [0, 1] with the global range instead.

    Split: ``test_fraction`` of the rows (stratified, seeded by ``seed``) become test.parquet,
    unless ``test_src`` is given: then every row of ``src`` goes to train.parquet and every row of
    ``test_src`` (format ``test_fmt``, detected from its name when None; read with the same options)
    to test.parquet. Its classes must all be among the training file's and its rows must have the
    same shape; its row_ids count its own rows.

    Output is built in a temporary directory next to ``dest_dir`` and renamed into place only on
    success. On any failure ``dest_dir`` does not exist afterwards and DatasetError is raised.
    ``dest_dir`` must not exist beforehand (FileExistsError: a caller bug, not a user error).
    """
    src, dest_dir = Path(src), Path(dest_dir)
    if dest_dir.exists():
        raise FileExistsError(f"{dest_dir} already exists; ingest() creates it")
    check_layout(layout)
    # Tables take image_shape as their typed shape (only (features,) fits): the form has one shape field.
    user_shape, other = (sequence_shape, image_shape) if layout == "sequence" else (image_shape, sequence_shape)
    if other is not None:  # a caller bug, not a user error
        raise ValueError(f"layout {layout!r} takes {layout}_shape, not the other layout's shape")
    if test_src is None and test_fmt is not None:  # a caller bug too
        raise ValueError("test_fmt is the format of test_src, which is missing")

    tmp = None
    try:
        fmt = _detect(src, fmt)
        layout = resolve_layout(layout, fmt, image_shape)
        if test_src is not None:
            test_src = Path(test_src)
            with _test_file():
                test_fmt = _detect(test_src, test_fmt)
        elif not 0.0 < test_fraction < 1.0:
            raise DatasetError(f"The test fraction must be between 0 and 1 (exclusive), not {test_fraction}.")
        if test_src is None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise DatasetError(f"The split seed must be a non-negative integer, not {seed!r}.")
        options = {"label_column": label_column, "x_key": x_key, "y_key": y_key, "layout": layout}
        options["image_size"], options["channels"] = _image_options(fmt, layout, image_shape, image_size)

        dest_dir.parent.mkdir(parents=True, exist_ok=True)
        # Same parent as dest_dir, so the final rename is atomic (same filesystem).
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest_dir.name}.", suffix=".tmp", dir=dest_dir.parent))
        source = _open_source(src, fmt, limits, options)
        test_source = None
        if test_src is not None:
            with _test_file():
                test_options = dict(options)
                test_options["image_size"], test_options["channels"] = _image_options(
                    test_fmt, layout, image_shape, image_size
                )
                test_source = _open_source(test_src, test_fmt, limits, test_options)
        info = _convert(source, test_source, tmp, fmt, test_fmt, layout, user_shape, test_fraction, seed)
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
