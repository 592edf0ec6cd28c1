"""The kernel's mount table (``/proc/self/mountinfo``), read one way for every caller: is a path an algofs
mount, which algofs mounts exist, which device (``major:minor``, for ``/sys/class/bdi``) a mount is.

Paths are compared after ``mount_path``, which resolves symlinks in the parent only: a stat of the
mountpoint itself would hang on, or fail with ENOTCONN from, a dead or not yet serving FUSE mount.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

MOUNTINFO = "/proc/self/mountinfo"
#: How our mounts show in the table (``fsname=algofs,subtype=algofs``).
ALGOFS_FS_TYPE = "fuse.algofs"
_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


@dataclass(frozen=True)
class MountEntry:
    mountpoint: str
    fs_type: str
    device: str  # major:minor
    #: the file system's own options (``rw,user_id=1001,group_id=1001``): who mounted a FUSE mount
    super_options: str = ""


def mount_path(mountpoint: str | os.PathLike) -> str:
    """Absolute path with symlinks resolved in the parent only (never stats a possibly dead mount)."""
    absolute = os.path.abspath(os.fspath(mountpoint))
    return os.path.join(os.path.realpath(os.path.dirname(absolute)), os.path.basename(absolute))


def _unescape(field: str) -> str:
    """The kernel writes space, tab, newline and backslash in paths as octal escapes (``\\040``)."""
    return _OCTAL_ESCAPE.sub(lambda match: chr(int(match.group(1), 8)), field)


def parse_mountinfo_line(line: str) -> MountEntry | None:
    """``36 35 0:41 / /mnt/x rw,nosuid shared:1 - fuse.algofs algofs rw,user_id=0`` → an entry."""
    fields = line.split()
    try:
        separator = fields.index("-", 6)
        options = fields[separator + 3] if len(fields) > separator + 3 else ""
        return MountEntry(_unescape(fields[4]), fields[separator + 1], fields[2], options)
    except (ValueError, IndexError):
        return None


def mount_entries() -> list[MountEntry]:
    """The mount table in kernel order (later entries stack on earlier ones); empty if unreadable."""
    try:
        with open(MOUNTINFO, encoding="utf-8", errors="replace") as handle:
            lines = handle.readlines()
    except OSError:
        return []
    return [entry for entry in map(parse_mountinfo_line, lines) if entry is not None]


def entry_at(path: str | os.PathLike) -> MountEntry | None:
    """The topmost mount at exactly ``path``, or None."""
    target = mount_path(path)
    found = None
    for entry in mount_entries():
        if entry.mountpoint == target:
            found = entry
    return found


def is_algofs_mount(path: str | os.PathLike) -> bool:
    entry = entry_at(path)
    return entry is not None and entry.fs_type == ALGOFS_FS_TYPE


def algofs_mounts() -> list[str]:
    return [entry.mountpoint for entry in mount_entries() if entry.fs_type == ALGOFS_FS_TYPE]
