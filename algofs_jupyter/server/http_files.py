"""Validators and byte ranges for file downloads (extensions beyond the hosted API).

The ETag comes from the storage backend (``EntryInfo.etag``): a strong validator, because every write
lands atomically and changes it.
"""

from __future__ import annotations

import re
from email.utils import formatdate, parsedate_to_datetime

from .errors import ApiError
from .storage import EntryInfo

_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


def last_modified_for(info: EntryInfo) -> str:
    return formatdate(info.mtime, usegmt=True)


def etag_matches(header: str | None, etag: str | None) -> bool:
    """``If-None-Match`` semantics (weak comparison, ``*`` matches anything)."""
    if not header or etag is None:
        return False
    candidates = [c.strip() for c in header.split(",")]
    return any(c == "*" or c.removeprefix("W/") == etag for c in candidates)


def if_range_allows(header: str | None, info: EntryInfo) -> bool:
    """Whether a Range may be honoured given ``If-Range`` (an ETag or an HTTP date)."""
    if not header:
        return True
    header = header.strip()
    if header.startswith('"') or header.startswith("W/"):
        return header == info.etag
    try:
        return int(parsedate_to_datetime(header).timestamp()) >= int(info.mtime)
    except (TypeError, ValueError, OverflowError):
        return False


def simple_range(header: str | None) -> tuple[int, int | None] | None:
    """``(first, last or None)`` of no ``Range`` (the whole file) or one ``bytes=A-`` / ``bytes=A-B`` with
    A <= B: what can be asked of a store without knowing the size. None for anything else (suffix
    ranges, invalid ones), which ``parse_range`` answers once the size is known."""
    if not header:
        return 0, None
    match = _RANGE.match(header)
    if not match or not match.group(1):
        return None
    first, last = int(match.group(1)), int(match.group(2)) if match.group(2) else None
    return None if last is not None and last < first else (first, last)


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
