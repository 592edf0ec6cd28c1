"""Whether a FUSE mount can work here, and whether a path currently is a FUSE mount.

Binder-like containers have no ``/dev/fuse``; there the extension reports ``mode: "fallback"`` instead of
failing, and the magics read through :class:`AlgoFileSystem` directly.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path


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


def _unescape_mount_field(field: str) -> str:
    # /proc/mounts escapes space, tab, newline and backslash as octal.
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def mount_type(path: str | os.PathLike) -> str | None:
    """The filesystem type of the mount at exactly ``path`` (e.g. ``fuse.algofs``), or None."""
    target = os.path.realpath(path)
    try:
        lines = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return None
    found = None
    for line in lines:
        parts = line.split()
        if len(parts) >= 3 and _unescape_mount_field(parts[1]) == target:
            found = parts[2]  # the last entry wins (stacked mounts)
    return found


def is_algofs_mount(path: str | os.PathLike) -> bool:
    kind = mount_type(path)
    return kind is not None and kind.startswith("fuse")
