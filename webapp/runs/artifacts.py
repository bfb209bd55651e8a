"""Reading a run's files: logs (by byte offset), predictions (paged: webapp/runs/analysis.py), model.

Names come from a fixed set or a strict pattern, and every file is opened through
webapp.safefiles, so neither a request nor a link planted in the run dir reaches outside it.
"""

import os
import re
from pathlib import Path
from typing import BinaryIO

from webapp import safefiles
from workers.backends.executor_logs import read_status

from .models import Run

EXECUTOR_ID = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")
LOG_STREAMS = ("stdout", "stderr")
MAX_CHUNK = 256 * 1024


def log_path(run: Run, source: str, stream: str = "stderr") -> Path | None:
    if source == "driver":
        return run.run_dir / "driver.log"
    if stream not in LOG_STREAMS or not EXECUTOR_ID.match(source) or source in (".", ".."):
        return None
    return run.run_dir / "executors" / source / stream


def executors(run: Run) -> list[str]:
    root = run.run_dir / "executors"
    if not root.is_dir():
        return []
    ids = [p.name for p in root.iterdir() if p.is_dir() and EXECUTOR_ID.match(p.name)]
    return sorted(ids, key=lambda s: (len(s), s))


def incomplete_logs(run: Run) -> dict[str, str]:
    """{"<executor>:<stream>": why its copy is not whole} for the executor logs the last copy could not
    fetch whole for a stated reason (a worker down, a log gone); a copy merely behind is not listed."""
    marks = {}
    for key, entry in read_status(run.run_dir / "executors").items():
        source, _, stream = key.partition("/")
        if not entry.get("complete") and entry.get("reason") and log_path(run, source, stream) is not None:
            marks[f"{source}:{stream}"] = str(entry["reason"])
    return marks


def log_options(run: Run) -> list[tuple[str, str, str]]:
    """The run page's executor logs: (value "<executor>:<stream>", label, why its copy is incomplete or "")."""
    marks = incomplete_logs(run)
    keys = [f"{e}:{stream}" for e in executors(run) for stream in ("stderr", "stdout")]
    return [(k, f"executor {k.replace(':', ' ')}", marks.get(k, "")) for k in keys]


def open_file(run: Run, path: Path) -> BinaryIO:
    """`path` (one of this module's paths) opened for reading; OSError when missing, or a link or not
    a regular file (webapp.safefiles)."""
    return safefiles.open_under(run.run_dir, path)


def file_stat(run: Run, path: Path | None) -> os.stat_result | None:
    """The stat of the regular file `path` in the run dir; None when missing, a link, or outside."""
    return None if path is None else safefiles.stat_under(run.run_dir, path)


def read_chunk(run: Run, path: Path, offset: int, limit: int = MAX_CHUNK) -> tuple[str, int, int]:
    """Return (text, next offset, file size) reading at most `limit` bytes from `offset`."""
    try:
        fh = open_file(run, path)
    except OSError:
        return "", 0, 0
    with fh:
        size = os.fstat(fh.fileno()).st_size
        offset = max(0, min(offset, size))
        fh.seek(offset)
        data = whole_chars(fh.read(min(limit, MAX_CHUNK)))
    return data.decode("utf-8", errors="replace"), offset + len(data), size


def whole_chars(data: bytes) -> bytes:
    """`data` less a UTF-8 character cut at its end (a chunk limit, or a line being written): the next
    chunk starts at that character, so a follower never gets it as two replacement marks. Kept whole
    when nothing else is left (a limit under one character) and for bytes that are not UTF-8."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 == 0x80:  # a continuation byte: look further back for the lead byte
            continue
        need = 2 if byte >> 5 == 0b110 else 3 if byte >> 4 == 0b1110 else 4 if byte >> 3 == 0b11110 else 1
        return data[:-back] if back < need and back < len(data) else data
    return data


def tail_offset(run: Run, path: Path, limit: int = 64 * 1024) -> int:
    st = file_stat(run, path)
    return max(0, st.st_size - limit) if st else 0


def predictions_path(run: Run) -> Path:
    return run.run_dir / "predictions" / "predictions.parquet"


def predictions_csv(run: Run) -> Path:
    return run.run_dir / "predictions" / "predictions.csv"


def keras_model_path(run: Run) -> Path:
    return run.run_dir / "model" / "model.keras"


def model_path(run: Run) -> Path:
    """What "download model" serves: the Keras model, or for a LogisticRegression head the zip of
    the featurizer and the MLlib model."""
    keras = keras_model_path(run)
    if file_stat(run, keras):
        return keras
    zipped = run.run_dir / "model" / "model.zip"
    return zipped if file_stat(run, zipped) else keras


def prediction_page(run: Run, page: int, per_page: int = 50) -> tuple[list[dict], int]:
    """(rows of one unfiltered page, total rows); see webapp/runs/analysis.py for filters."""
    from .analysis import prediction_page as filtered_page

    result = filtered_page(run, None, page, per_page)
    return result.rows, result.total
