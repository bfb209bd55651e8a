"""Opening a file under a root folder (a run dir, a dataset's or a model file's folder) for download.

Jobs and users put files into those folders, so one of them may be a symlink to a file outside
(``/etc/passwd``, another team's run). Every component below the root is opened with O_NOFOLLOW
relative to its parent's descriptor, and only a regular file is returned: no link, ``..`` or rename
between a check and the open can lead out of the root. The root itself is the operator's (it may
well be a link to a volume) and is followed.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a FIFO planted under the root must not hang the request (it is refused after fstat).
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


class Refused(OSError):
    """The path leaves the root, or names a link or something other than a regular file."""


def _parts(root: Path, path: Path | str) -> tuple[str, ...]:
    path = Path(path)
    if path.is_absolute():
        try:
            path = path.relative_to(root)
        except ValueError:
            raise Refused(errno.EPERM, "outside its folder", str(path)) from None
    parts = path.parts
    if not parts or any(p in ("", ".", "..") or "/" in p for p in parts):
        raise Refused(errno.EPERM, "not a plain relative path", str(path))
    return parts


def open_under(root: Path | str, path: Path | str) -> BinaryIO:
    """`path` (absolute under `root`, or relative to it) opened for binary reading.

    Raises FileNotFoundError when it does not exist, Refused (an OSError) when it is or passes
    through a symlink, leaves `root`, or is not a regular file.
    """
    root = Path(root)
    parts = _parts(root, path)
    dir_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for name in parts[:-1]:
            fd = _open_at(name, _DIR_FLAGS, dir_fd, path)
            os.close(dir_fd)
            dir_fd = fd
        fd = _open_at(parts[-1], _FILE_FLAGS, dir_fd, path)
    finally:
        os.close(dir_fd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise Refused(errno.EPERM, "not a regular file", str(path))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _open_at(name: str, flags: int, dir_fd: int, path) -> int:
    try:
        return os.open(name, flags, dir_fd=dir_fd)
    except OSError as exc:
        # ELOOP: the last component is a link; ENOTDIR: a directory component is a link (or a file).
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise Refused(exc.errno, "a symbolic link or not a folder", str(path)) from None
        raise


def stat_under(root: Path | str, path: Path | str) -> os.stat_result | None:
    """The stat of what open_under would open, or None when it would raise."""
    try:
        with open_under(root, path) as fh:
            return os.fstat(fh.fileno())
    except OSError:
        return None


def is_file_under(root: Path | str, path: Path | str) -> bool:
    return stat_under(root, path) is not None
