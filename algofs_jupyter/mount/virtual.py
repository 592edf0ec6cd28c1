"""Hook for subtrees that are not Data API paths (``/algorithms``): the mount dispatches every operation
under the subtree's root to a ``VirtualTree``, with the path relative to that root (``"/"`` = the root).

The base class is an empty read-only directory; the algorithm pipes replace it. File handles returned
by ``open``/``create`` are the tree's own; the mount wraps them. ``fi`` is libfuse's ``fuse_file_info``
(so a tree can set ``fi.direct_io`` for streams of unknown length).
"""

from __future__ import annotations

import errno
import time
from typing import Any

from mfusepy import FuseOSError

from .stat_dicts import directory_stat


class VirtualTree:
    def __init__(self) -> None:
        self.mounted_at = time.time()

    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        if path == "/":
            return directory_stat(self.mounted_at, 0o555)
        raise FuseOSError(errno.ENOENT)

    def readdir(self, path: str) -> list[str]:
        if path == "/":
            return []
        raise FuseOSError(errno.ENOTDIR)

    def open(self, path: str, fi: Any) -> int:
        raise FuseOSError(errno.ENOENT)

    def create(self, path: str, mode: int, fi: Any) -> int:
        raise FuseOSError(errno.EACCES)

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        raise FuseOSError(errno.EBADF)

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        raise FuseOSError(errno.EBADF)

    def truncate(self, path: str, length: int, fh: int | None = None) -> None:
        raise FuseOSError(errno.EACCES)

    def flush(self, path: str, fh: int) -> None:
        return None

    def fsync(self, path: str, datasync: int, fh: int) -> None:
        return None

    def release(self, path: str, fh: int) -> None:
        return None

    def stats(self) -> dict:
        return {}

    def clear_caches(self) -> None:
        return None
