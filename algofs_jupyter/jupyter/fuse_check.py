"""Whether a FUSE mount can work here (whether a path is one: ``mount.mount_table.is_algofs_mount``).

Binder-like containers have no ``/dev/fuse``; there the extension reports ``mode: "fallback"`` instead of
failing, and the magics read through :class:`AlgoFileSystem` directly.
"""

from __future__ import annotations

import os
import shutil


def fuse_unavailable_reason() -> str | None:
    """A human-readable reason why FUSE can't be used, or None when it can."""
    if os.environ.get("ALGOFS_DISABLE_FUSE", "").strip().lower() in ("1", "true", "yes"):
        return "FUSE disabled by ALGOFS_DISABLE_FUSE"
    if not os.path.exists("/dev/fuse"):
        return "/dev/fuse is missing (no FUSE in this container)"
    if not os.access("/dev/fuse", os.R_OK | os.W_OK):
        return "/dev/fuse is not readable and writable by this user"
    if not (shutil.which("fusermount3") or shutil.which("fusermount")):
        return "fusermount3/fusermount is not installed"
    return None
