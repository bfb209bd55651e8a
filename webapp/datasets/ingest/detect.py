"""Decide the upload format from its name and first bytes, refusing when the two disagree."""

from pathlib import PurePath

from .errors import DatasetError

FORMATS = ("npz", "csv")
HEAD_BYTES = 8192
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a file entry; an empty archive
_TEXT_CONTROL = {9, 10, 12, 13}  # tab, newline, form feed, carriage return


def _looks_binary(head: bytes) -> bool:
    if b"\x00" in head:
        return True
    # UTF-8 text (any language) has bytes >= 0x80 but almost no C0 control characters.
    control = sum(1 for b in head if b < 32 and b not in _TEXT_CONTROL)
    return control > len(head) // 100


def check_content(fmt: str, head: bytes) -> None:
    """Raise DatasetError unless ``head`` (the file's first bytes) fits format ``fmt``."""
    if fmt not in FORMATS:
        raise DatasetError(f"Unsupported dataset format {fmt!r}; use one of: .npz, .csv.")
    if not head:
        raise DatasetError("The file is empty. Upload an .npz archive or a .csv file with data in it.")
    is_zip = head.startswith(_ZIP_MAGIC)
    if fmt == "npz" and not is_zip:
        raise DatasetError(
            "The file is named .npz but is not an NPZ archive (NPZ files are zip archives). "
            "Save your arrays with numpy.savez(path, x=..., y=...) or upload a .csv file."
        )
    if fmt == "csv" and is_zip:
        raise DatasetError(
            "The file is named .csv but is a zip archive. If it was saved with numpy.savez, "
            "rename it to .npz; otherwise unzip it and upload the .csv inside."
        )
    if fmt == "csv" and _looks_binary(head):
        raise DatasetError(
            "The file is named .csv but contains binary data, not text. "
            "Export it as comma-separated text (UTF-8) and upload that."
        )


def detect_format(filename: str, first_bytes: bytes) -> str:
    """Return "npz" or "csv" for an upload named ``filename`` starting with ``first_bytes``."""
    ext = PurePath(filename or "").suffix.lower().lstrip(".")
    if ext not in FORMATS:
        shown = f".{ext}" if ext else "no extension"
        raise DatasetError(
            f"Unsupported file type ({shown}). Upload a NumPy .npz archive (arrays x and y) "
            "or a .csv file with a header row and a 'label' column."
        )
    check_content(ext, first_bytes[:HEAD_BYTES])
    return ext
