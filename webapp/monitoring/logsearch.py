"""Search a stored log file (driver.log, an executor's stdout/stderr) for a plain string.

The file is read in chunks (memory stays at a chunk plus the matches), matches are capped, and the
scan stops at a time budget, so a request over a large log stays bounded. A plain substring, never
a regular expression: a user's pattern cannot make the scan slow.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import BinaryIO

CHUNK = 1 << 20
MAX_QUERY = 200
DEFAULT_MATCHES = 200
MAX_MATCHES = 1000
MAX_LINE_CHARS = 500  # of a matching line sent back (the line number finds the rest)
MAX_LINE_BYTES = 1 << 20  # a "line" longer than this (no newline) is searched in pieces
TIME_BUDGET_S = 5.0


class QueryError(ValueError):
    pass


def clean_query(raw) -> str:
    q = (raw or "").strip("\r\n")
    if not q.strip():
        raise QueryError("give a search text (q)")
    if len(q) > MAX_QUERY:
        raise QueryError(f"the search text has at most {MAX_QUERY} characters")
    if any(ord(c) < 32 and c != "\t" for c in q):
        raise QueryError("the search text cannot hold control characters or line breaks")
    return q


@dataclass
class Result:
    query: str
    matches: list = field(default_factory=list)  # [{"line": 12, "offset": byte offset of the line, "text": …}]
    lines_scanned: int = 0
    bytes_scanned: int = 0
    size: int = 0
    truncated: bool = False  # stopped at the match cap
    partial: bool = False  # stopped at the time budget

    def as_json(self) -> dict:
        return {
            "query": self.query,
            "matches": self.matches,
            "count": len(self.matches),
            "lines_scanned": self.lines_scanned,
            "bytes_scanned": self.bytes_scanned,
            "size": self.size,
            "truncated": self.truncated,
            "partial": self.partial,
        }


def search(
    fh: BinaryIO,
    query: str,
    *,
    case_sensitive: bool = False,
    max_matches: int = DEFAULT_MATCHES,
    time_budget: float = TIME_BUDGET_S,
    chunk: int = CHUNK,
) -> Result:
    """Lines of the log opened as ``fh`` (read from its start, closed here) containing ``query`` with
    1-based line numbers, first ``max_matches``."""
    query = clean_query(query)
    max_matches = max(1, min(int(max_matches), MAX_MATCHES))
    needle = query if case_sensitive else query.lower()
    needle_bytes = needle.encode("utf-8")
    res = Result(query=query)
    deadline = time.monotonic() + time_budget
    with fh:
        res.size = _size(fh)
        line_no = 0
        offset = 0  # byte offset of `carry`'s start
        carry = b""
        while True:
            data = fh.read(chunk)
            if not data:
                break
            buf = carry + data
            lines = buf.split(b"\n")
            carry = lines.pop()  # the unfinished last line waits for the next chunk
            if len(carry) > MAX_LINE_BYTES:
                lines.append(carry)
                carry = b""
            for raw in lines:
                line_no += 1
                if _hit(raw, needle, needle_bytes, case_sensitive):
                    res.matches.append(_match(line_no, offset, raw))
                    if len(res.matches) >= max_matches:
                        res.truncated = True
                offset += len(raw) + 1
                if res.truncated:
                    break
            res.bytes_scanned = offset
            res.lines_scanned = line_no
            if res.truncated:
                return res
            if time.monotonic() > deadline:
                res.partial = True
                return res
        if carry:
            line_no += 1
            if _hit(carry, needle, needle_bytes, case_sensitive):
                res.matches.append(_match(line_no, offset, carry))
                res.truncated = len(res.matches) >= max_matches
            offset += len(carry)
        res.bytes_scanned = offset
        res.lines_scanned = line_no
    return res


def _size(fh) -> int:
    return os.fstat(fh.fileno()).st_size


def _hit(raw: bytes, needle: str, needle_bytes: bytes, case_sensitive: bool) -> bool:
    if case_sensitive:
        return needle_bytes in raw
    # Cheap bytes test first for ASCII text; a non-ASCII line is decoded to compare case-insensitively.
    if raw.isascii():
        return needle_bytes in raw.lower() if needle.isascii() else False
    return needle in raw.decode("utf-8", errors="replace").lower()


def _match(line_no: int, offset: int, raw: bytes) -> dict:
    text = raw.rstrip(b"\r").decode("utf-8", errors="replace")
    return {"line": line_no, "offset": offset, "text": text[:MAX_LINE_CHARS]}
