"""Decide the upload format from its name and first bytes, refusing when the two disagree."""

from pathlib import PurePath

from .errors import DatasetError

FORMATS = ("npz", "csv", "tsv", "parquet", "zip")
# File extension (lower case, no dot) → format.
EXTENSIONS = {"npz": "npz", "csv": "csv", "tsv": "tsv", "parquet": "parquet", "pq": "parquet", "zip": "zip"}
HEAD_BYTES = 8192
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a file entry; an empty archive
_PARQUET_MAGIC = b"PAR1"
_TEXT_CONTROL = {9, 10, 12, 13}  # tab, newline, form feed, carriage return
# What a file really is, from its first bytes, to say so when its name claims something else.
_MAGIC_NAMES = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (_PARQUET_MAGIC, "a Parquet file"),
    (b"\x93NUMPY", "a single NumPy .npy array"),
    (b"\x1f\x8b", "a gzip-compressed file"),
    (b"%PDF", "a PDF document"),
    (b"\xd0\xcf\x11\xe0", "an old Excel/Office document"),
    (b"PK\x03\x04", "a zip archive"),
    (b"PK\x05\x06", "a zip archive"),
)
SUPPORTED = (
    "a NumPy .npz archive (arrays x and y), a .csv or .tsv file with a header row and a 'label' column, "
    "a .parquet file with a 'label' column, or a .zip of images with one folder per class"
)


def _looks_binary(head: bytes) -> bool:
    if b"\x00" in head:
        return True
    # UTF-8 text (any language) has bytes >= 0x80 but almost no C0 control characters.
    control = sum(1 for b in head if b < 32 and b not in _TEXT_CONTROL)
    return control > len(head) // 100


def sniff(head: bytes) -> str | None:
    """What the first bytes say the file is ("a PNG image", …), None if no known signature."""
    for magic, name in _MAGIC_NAMES:
        if head.startswith(magic):
            return name
    return None


def _really(head: bytes) -> str:
    what = sniff(head)
    return f" It is {what}." if what else ""


def check_content(fmt: str, head: bytes) -> None:
    """Raise DatasetError unless ``head`` (the file's first bytes) fits format ``fmt``."""
    if fmt not in FORMATS:
        raise DatasetError(f"Unsupported dataset format {fmt!r}; upload {SUPPORTED}.")
    if not head:
        raise DatasetError("The file is empty (0 bytes). Upload a file with data in it.")
    is_zip = head.startswith(_ZIP_MAGIC)
    if fmt == "npz" and not is_zip:
        raise DatasetError(
            f"The file is named .npz but is not an NPZ archive (NPZ files are zip archives).{_really(head)} "
            "Save your arrays with numpy.savez(path, x=..., y=...) or upload a .csv file."
        )
    if fmt == "zip" and not is_zip:
        raise DatasetError(
            f"The file is named .zip but is not a zip archive.{_really(head)} Zip the class folders "
            "(one folder of images per class) and upload the .zip."
        )
    if fmt == "parquet" and not head.startswith(_PARQUET_MAGIC):
        raise DatasetError(
            f"The file is named .parquet but is not a Parquet file (those start with 'PAR1').{_really(head)} "
            "Save it with pandas.DataFrame.to_parquet or pyarrow.parquet.write_table."
        )
    if fmt in ("csv", "tsv"):
        ext = f".{fmt}"
        if is_zip:
            raise DatasetError(
                f"The file is named {ext} but is a zip archive. If it was saved with numpy.savez, "
                f"rename it to .npz; if it holds image folders, rename it to .zip; otherwise unzip it "
                f"and upload the {ext} inside."
            )
        if head.startswith(_PARQUET_MAGIC):
            raise DatasetError(f"The file is named {ext} but is a Parquet file; rename it to .parquet.")
        if _looks_binary(head):
            raise DatasetError(
                f"The file is named {ext} but contains binary data, not text.{_really(head)} "
                "Export it as comma- or tab-separated text (UTF-8) and upload that."
            )


def detect_format(filename: str, first_bytes: bytes) -> str:
    """Return the format ("npz", "csv", "tsv", "parquet" or "zip") of an upload named ``filename``
    starting with ``first_bytes``; DatasetError if the name is unsupported or the bytes disagree."""
    ext = PurePath(filename or "").suffix.lower().lstrip(".")
    fmt = EXTENSIONS.get(ext)
    if fmt is None:
        shown = f".{ext}" if ext else "no extension"
        raise DatasetError(f"Unsupported file type ({shown}). Upload {SUPPORTED}.")
    check_content(fmt, first_bytes[:HEAD_BYTES])
    return fmt
