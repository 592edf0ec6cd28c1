"""Validators and byte ranges for file downloads (extensions beyond the hosted API).

The ETag is cheap and stable: it is derived from the inode, size and nanosecond mtime, so it changes
whenever an upload replaces the file (a new inode) or the file is modified in place, and costs one
``stat``. It is a *strong* validator for our purposes because uploads replace files atomically.
"""

from __future__ import annotations

import os
import re
from email.utils import formatdate, parsedate_to_datetime

from .errors import ApiError

_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


def etag_for(st: os.stat_result) -> str:
    return f'"{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}"'


def last_modified_for(st: os.stat_result) -> str:
    return formatdate(st.st_mtime, usegmt=True)


def etag_matches(header: str | None, etag: str) -> bool:
    """``If-None-Match`` semantics (weak comparison, ``*`` matches anything)."""
    if not header:
        return False
    candidates = [c.strip() for c in header.split(",")]
    return any(c == "*" or c.removeprefix("W/") == etag for c in candidates)


def if_range_allows(header: str | None, etag: str, st: os.stat_result) -> bool:
    """Whether a Range may be honoured given ``If-Range`` (an ETag or an HTTP date)."""
    if not header:
        return True
    header = header.strip()
    if header.startswith('"') or header.startswith("W/"):
        return header == etag
    try:
        return int(parsedate_to_datetime(header).timestamp()) >= int(st.st_mtime)
    except (TypeError, ValueError):
        return False


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive byte range of a single-range ``Range`` header, None to send the whole file.

    Multiple ranges and syntactically invalid headers are ignored (a full 200 answer is allowed by
    RFC 9110); a syntactically valid but unsatisfiable range raises a 416 ApiError.
    """
    if not header:
        return None
    match = _RANGE.match(header)
    if not match:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    unsatisfiable = ApiError(
        416, f"range {header.strip()!r} not satisfiable for a file of {size} bytes",
        headers={"Content-Range": f"bytes */{size}"},
    )
    if not first:  # suffix range: the last N bytes
        length = int(last)
        if length == 0 or size == 0:
            raise unsatisfiable
        return max(0, size - length), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if last and int(last) < start:
        return None  # invalid range spec: ignore it
    if start >= size:
        raise unsatisfiable
    return start, end
