"""Upload validation and conversion to the dataset storage layout (docs/architecture.md).

Pure Python (NumPy, pandas, PyArrow); no Django. The web layer calls::

    fmt = detect_format(upload_name, first_bytes)
    info = ingest(saved_upload, fmt, dest_dir, label_column="label")  # or DatasetError
    info = ingest(saved_upload, fmt, dest_dir, layout="sequence")    # (steps, features) rows
"""

from .convert import ingest
from .detect import detect_format
from .digits import write_digits_csv, write_digits_npz
from .errors import DatasetError
from .info import DatasetInfo, Limits, read_info
from .preview import PreviewRow, preview
from .shapes import LAYOUTS, parse_shape
from .synthetic import SEQUENCE_CLASSES, make_sequences, write_sequences_csv, write_sequences_npz

__all__ = [
    "DatasetError",
    "DatasetInfo",
    "LAYOUTS",
    "Limits",
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
