"""Reading a response body into the caller's buffers: the hot path of every cold block read.

A ranged GET's body goes straight into a cache's reused buffers (``read_exactly_into``), skipping what a
server that ignored the ``Range`` sent first; ``total_size`` is the file's size as the answer gives it.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import Any

DOWNLOAD_CHUNK = 1 << 20
#: ``fill(out) -> count``: reads the next bytes of a ranged GET's body into ``out`` (short only at its end).
Fill = Callable[[memoryview], int]


def total_size(response: Any) -> int | None:
    """The file's size from ``Content-Range: bytes a-b/TOTAL`` (206) or ``Content-Length`` (200)."""
    if response.status_code == 206:
        total = (response.headers.get("Content-Range") or "").rpartition("/")[2]
        return int(total) if total.isdigit() else None
    length = response.headers.get("Content-Length")
    return int(length) if length and length.isdigit() else None


def _fast_readinto(response: Any) -> Callable[[memoryview], int]:
    """The socket-level ``readinto`` under urllib3 when the body is not content-encoded.

    urllib3 2.x copies every chunk through its own buffer; reading a multi-MiB block straight from the
    ``http.client`` response doubles cold-read throughput here (0.58 -> 1.1 GB/s per stream on loopback).
    Falls back to urllib3's own ``readinto`` whenever that private attribute is missing or decoding applies.
    """
    raw = response.raw
    inner = getattr(raw, "_fp", None)
    if inner is None or response.headers.get("Content-Encoding") or not hasattr(inner, "readinto"):
        return raw.readinto
    return inner.readinto


def read_exactly_into(response: Any, out: memoryview, skip: int = 0, direct: bool = True) -> int:
    """Read ``len(out)`` body bytes into ``out`` after skipping ``skip``; short only at the body's end."""
    raw = response.raw
    count = len(out)
    filled = 0
    # urllib3 buffers what it read while skipping, so only a body never skipped may bypass it
    readinto = _fast_readinto(response) if direct and skip == 0 else raw.readinto
    try:
        while skip > 0:
            dropped = raw.read(min(skip, DOWNLOAD_CHUNK))
            if not dropped:
                return 0
            skip -= len(dropped)
        while filled < count:
            got = readinto(out[filled:])
            if not got:
                break
            filled += got
    except Exception as exc:  # urllib3 protocol/timeout errors: the transfer broke
        raise OSError(errno.EIO, f"transfer interrupted: {type(exc).__name__}") from exc
    return filled
