"""The stat dicts the FUSE layer answers ``getattr`` with: one builder per kind of node.

Callers add the fields they know (owner, block size, blocks) as keyword arguments, so ``/algorithms``
and the Data API subtree share the shape without sharing their values. Times are integer nanoseconds
(the operations run with mfusepy's ``use_ns``): from seconds, or exact from the posix extension's
``times_ns`` (atime, mtime, ctime; negative before 1970).
"""

from __future__ import annotations

import stat
from typing import Any

Times = tuple[int, int, int]


def ns(seconds: float) -> int:
    """Seconds (a float, as HTTP dates and local stat give) as integer nanoseconds."""
    return int(round(seconds * 1e9))


def _times(mtime: float, times_ns: Times | None) -> dict[str, int]:
    atime_ns, mtime_ns, ctime_ns = times_ns if times_ns is not None else (ns(mtime),) * 3
    return {"st_mtime": mtime_ns, "st_ctime": ctime_ns, "st_atime": atime_ns}


def directory_stat(
    mtime: float, mode: int = 0o755, times_ns: Times | None = None, **extra: Any
) -> dict[str, Any]:
    return {"st_mode": stat.S_IFDIR | mode, "st_nlink": 2, **_times(mtime, times_ns), **extra}


def file_stat(
    size: int,
    mtime: float,
    mode: int = 0o644,
    times_ns: Times | None = None,
    file_type: int = stat.S_IFREG,
    **extra: Any,
) -> dict[str, Any]:
    return {"st_mode": file_type | mode, "st_nlink": 1, "st_size": size, **_times(mtime, times_ns), **extra}
