"""``<run dir>/tensorboard/``: the event files the chief writes (workers/jobs/tbevents.py), as a tar.gz.

Only regular files are archived, each opened without following a symlink: a link placed in the run
dir can neither pull another file into the archive nor point the archive outside the run dir.
"""

from __future__ import annotations

import os
import stat
import tarfile
import tempfile
from pathlib import Path

from webapp.runs.models import Run

TB_DIR = "tensorboard"
MAX_FILES = 10_000


def tensorboard_dir(run: Run) -> Path | None:
    """The run's TensorBoard folder when it is a real folder (not a link) holding an event file."""
    path = run.run_dir / TB_DIR
    try:
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            return None
    except OSError:
        return None
    return path if any(_event_files(path)) else None


def _event_files(root: Path):
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not os.path.islink(os.path.join(dirpath, d)))
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            if name.startswith("events.out.tfevents.") and stat.S_ISREG(os.lstat(full).st_mode):
                yield full


def write_archive(run: Run, fileobj) -> int:
    """Write ``<run dir>/tensorboard`` as a gzipped tar into ``fileobj``; returns the files added.
    Entries are named ``run<id>-tensorboard/<path>``."""
    root = run.run_dir / TB_DIR
    prefix = f"run{run.pk}-tensorboard"
    added = 0
    with tarfile.open(fileobj=fileobj, mode="w:gz") as tar:
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            dirnames[:] = sorted(d for d in dirnames if not os.path.islink(os.path.join(dirpath, d)))
            for name in sorted(filenames):
                full = os.path.join(dirpath, name)
                try:
                    fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW)
                except OSError:  # a symlink (ELOOP), or gone since the walk
                    continue
                with os.fdopen(fd, "rb") as fh:
                    st = os.fstat(fh.fileno())
                    if not stat.S_ISREG(st.st_mode):
                        continue
                    info = tarfile.TarInfo(f"{prefix}/{os.path.relpath(full, root)}")
                    info.size = st.st_size  # a file still being written is archived as it was at open
                    info.mtime = int(st.st_mtime)
                    info.mode = 0o644
                    tar.addfile(info, fh)
                added += 1
                if added >= MAX_FILES:
                    return added
    return added


def archive(run: Run):
    """A temporary file holding the archive, positioned at its start (deleted when closed)."""
    tmp = tempfile.TemporaryFile(prefix="sparkdeck-tb-")
    try:
        write_archive(run, tmp)
        tmp.seek(0)
    except BaseException:
        tmp.close()
        raise
    return tmp


def event_bytes(run: Run) -> int:
    """Bytes of the run's event files (before packing)."""
    root = run.run_dir / TB_DIR
    return sum(os.lstat(p).st_size for p in _event_files(root)) if tensorboard_dir(run) else 0
