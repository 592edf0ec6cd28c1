"""The stat dicts the FUSE layer answers ``getattr`` with: one builder per kind of node.

Callers add the fields they know (owner, block size, blocks) as keyword arguments, so ``/algorithms``
and the Data API subtree share the shape without sharing their values.
"""

from __future__ import annotations

import stat
from typing import Any


def directory_stat(mtime: float, mode: int = 0o755, **extra: Any) -> dict[str, Any]:
    return {"st_mode": stat.S_IFDIR | mode, "st_nlink": 2, "st_mtime": mtime, "st_ctime": mtime,
            "st_atime": mtime, **extra}


def file_stat(size: int, mtime: float, mode: int = 0o644, **extra: Any) -> dict[str, Any]:
    return {"st_mode": stat.S_IFREG | mode, "st_nlink": 1, "st_size": size, "st_mtime": mtime,
            "st_ctime": mtime, "st_atime": mtime, **extra}
