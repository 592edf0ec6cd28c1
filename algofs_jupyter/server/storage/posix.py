"""POSIX metadata of stored entries (the ``posix`` extension, docs/api-extensions.md): the values, their
defaults for data written without them, and the changes ``setattr`` asks for.

Backends keep it their own way (``local_posix.py``: an extended attribute beside the data;
``s3_posix.py``: s3fs-fuse's object metadata) but hand it out as :class:`Posix` in ``EntryInfo.posix``.
A symlink is an entry whose mode has ``S_IFLNK`` and whose content is its target: storage never
follows one, it is a small file to every reader that does not know the extension.
"""

from __future__ import annotations

import stat
import time
from dataclasses import dataclass, replace

from .errors import InvalidOperation

DEFAULT_FILE_MODE = stat.S_IFREG | 0o644
DEFAULT_DIR_MODE = stat.S_IFDIR | 0o755
LINK_MODE = stat.S_IFLNK | 0o777
#: Longest symlink target in bytes (Linux's PATH_MAX minus the NUL).
TARGET_MAX = 4095
#: Permission bits ``setattr`` and uploads may set (type bits are the storage's).
PERMISSION_BITS = 0o7777
#: uid/gid range: 32-bit unsigned, as the kernel's
ID_MAX = 2**32 - 1
#: Times the API takes, in nanoseconds: about ±292 years around 1970 (a signed 64-bit count).
TIME_NS_MIN, TIME_NS_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True)
class Posix:
    """Mode (type bits included), owner (None: unknown, the mounting user's), ns times; a link's target."""

    mode: int
    uid: int | None = None
    gid: int | None = None
    mtime_ns: int = 0
    atime_ns: int = 0
    ctime_ns: int = 0
    target: str | None = None

    @property
    def is_link(self) -> bool:
        return stat.S_ISLNK(self.mode)

    def wire(self) -> dict[str, object]:
        """The ``posix`` object of listings and setattr answers."""
        body: dict[str, object] = {"mode": self.mode, "uid": self.uid, "gid": self.gid,
                                   "mtime_ns": self.mtime_ns, "atime_ns": self.atime_ns,
                                   "ctime_ns": self.ctime_ns}
        if self.target is not None:
            body["target"] = self.target
        return body


def default_posix(is_dir: bool, mtime_ns: int) -> Posix:
    """What an entry written without the extension (or by another tool) shows."""
    return Posix(DEFAULT_DIR_MODE if is_dir else DEFAULT_FILE_MODE, None, None, mtime_ns, mtime_ns, mtime_ns)


def now_ns() -> int:
    return time.time_ns()


def check_target(target: object) -> str:
    if not isinstance(target, str) or not target or "\x00" in target:
        raise InvalidOperation("a symlink target is a non-empty string without NUL")
    if len(target.encode("utf-8", "surrogateescape")) > TARGET_MAX:
        raise InvalidOperation(f"a symlink target is at most {TARGET_MAX} bytes")
    return target


def check_permissions(mode: object) -> int:
    if isinstance(mode, bool) or not isinstance(mode, int) or not 0 <= mode <= PERMISSION_BITS:
        raise InvalidOperation("mode must be permission bits only, 0 to 0o7777 (no file type bits)")
    return mode


def check_id(value: object, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= ID_MAX:
        raise InvalidOperation(f"{name} must be null or an integer from 0 to 2**32-1")
    return value


def check_time(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not TIME_NS_MIN <= value <= TIME_NS_MAX:
        raise InvalidOperation(f"{name} must be an integer count of nanoseconds (negative: before 1970)")
    return value


class _Keep:
    def __repr__(self) -> str:
        return "KEEP"


#: ``AttrChange.uid``/``gid``: leave as it is (None means "unknown owner").
KEEP = _Keep()


@dataclass(frozen=True)
class AttrChange:
    """What a ``setattr`` changes; unset fields stay. ``mode`` is permission bits only."""

    mode: int | None = None
    uid: int | None | _Keep = KEEP
    gid: int | None | _Keep = KEEP
    mtime_ns: int | None = None
    atime_ns: int | None = None

    def __post_init__(self) -> None:
        if self.mode is not None:
            check_permissions(self.mode)
        if not isinstance(self.uid, _Keep):
            check_id(self.uid, "uid")
        if not isinstance(self.gid, _Keep):
            check_id(self.gid, "gid")
        for name in ("mtime_ns", "atime_ns"):
            if getattr(self, name) is not None:
                check_time(getattr(self, name), name)

    def apply(self, old: Posix, now: int) -> Posix:
        """``old`` changed as asked; ctime is now (any change moves it)."""
        new = replace(old, ctime_ns=now)
        if self.mode is not None:
            new = replace(new, mode=stat.S_IFMT(old.mode) | self.mode)
        if not isinstance(self.uid, _Keep):
            new = replace(new, uid=self.uid)
        if not isinstance(self.gid, _Keep):
            new = replace(new, gid=self.gid)
        if self.mtime_ns is not None:
            new = replace(new, mtime_ns=self.mtime_ns)
        if self.atime_ns is not None:
            new = replace(new, atime_ns=self.atime_ns)
        return new
