"""Upload validation and conversion to the dataset storage layout (docs/architecture.md).

Pure Python (NumPy, pandas, PyArrow, Pillow); no Django. The web layer calls::

    fmt = detect_format(upload_name, first_bytes)  # "npz" | "csv" | "tsv" | "parquet" | "zip"
    info = ingest(saved_upload, fmt, dest_dir, label_column="label")  # or DatasetError
    info = ingest(saved_upload, fmt, dest_dir, layout="sequence")    # (steps, features) rows
    info = ingest(saved_csv, "csv", dest_dir)                        # a table: (features,), standardized
    info = ingest(saved_zip, "zip", dest_dir, image_size=(64, 64))    # images resized to 64×64
    info = ingest(train, fmt, dest_dir, test_src=test, test_fmt=fmt2)  # uploaded test split

Readers (one per format) share a small protocol used by convert.ingest: ``num_features``,
``array_shape``, ``scan() -> Scan`` (pass 1, validates everything) and ``batches()`` (pass 2,
float64 feature chunks in row order): npz_reader, csv_reader (CSV and TSV), parquet_reader,
zip_images. CSV and Parquet readers also name their feature columns (``feature_names``, None
when the file has no names for them). Tables are standardized with workers.jobs.standardize.
"""

from .convert import ingest
from .detect import FORMATS, detect_format
from .digits import write_digits_csv, write_digits_npz
from .errors import DatasetError
from .info import DatasetInfo, Limits, read_info
from .preview import ColumnSummary, PreviewRow, column_summary, preview
from .shapes import LAYOUTS, parse_shape
from .synthetic import SEQUENCE_CLASSES, make_sequences, write_sequences_csv, write_sequences_npz

__all__ = [
    "ColumnSummary",
    "DatasetError",
    "DatasetInfo",
    "FORMATS",
    "LAYOUTS",
    "Limits",
    "column_summary",
    "PreviewRow",
    "SEQUENCE_CLASSES",
    "detect_format",
    "ingest",
    "make_sequences",
    "parse_shape",
    "preview",
    "read_info",
    "write_digits_csv",
    "write_digits_npz",
    "write_sequences_csv",
    "write_sequences_npz",
]
