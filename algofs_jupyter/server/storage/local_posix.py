"""POSIX metadata of ``LocalBackend`` entries, kept beside the data but never as real modes or links.

One extended attribute per entry, ``user.algofs.posix``, a small JSON object: ``mode`` (type bits
included), ``uid``, ``gid``, ``atime_ns``, ``ctime_ns``. The mtime is the file's own (``os.utime`` keeps
nanoseconds and dates before 1970), so other tools on the server see it too. The attribute moves with
the file on ``rename``, and goes with it on ``unlink``. On disk every file stays a plain 0644 file owned
by the server, whatever its stored mode: a stored ``0o000`` never locks the server out.

A symlink is a regular file holding its target, whose stored mode has ``S_IFLNK``: the server and
this backend never follow it (a file is not a link to the kernel). Entries without the attribute
(written before the extension, or by other tools) show the defaults of ``posix.default_posix``.
"""

from __future__ import annotations

import errno
import json
import os
import stat

from .base import EntryInfo, Posix
from .posix import default_posix

ATTR = "user.algofs.posix"
_ABSENT = (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP)


def _path(dir_fd: int, name: str) -> str:
    """A path to ``name`` in an open directory without resolving anything above it (xattr calls take
    no ``dir_fd``); ``name`` is never a link here (``Located`` resolved it)."""
    return f"/proc/self/fd/{dir_fd}/{name}"


def read_attrs(dir_fd: int, name: str | None) -> dict | None:
    """The stored attribute of ``name`` in ``dir_fd`` (``name`` None: of the open file ``dir_fd``)."""
    try:
        if name is None:
            raw = os.getxattr(dir_fd, ATTR)
        else:
            raw = os.getxattr(_path(dir_fd, name), ATTR, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in _ABSENT:
            return None
        raise
    try:
        attrs = json.loads(raw)
    except ValueError:
        return None
    return attrs if isinstance(attrs, dict) else None


def xattrs_supported(path: str) -> bool:
    """Whether the file system at ``path`` keeps user extended attributes (ext4, xfs, btrfs, tmpfs do)."""
    try:
        os.getxattr(path, ATTR)
    except OSError as exc:
        return exc.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP)
    return True


def write_attrs(dir_fd: int, name: str, posix: Posix) -> None:
    """Store ``posix`` (all but mtime, which is the file's own) on ``name``."""
    attrs = {"mode": posix.mode, "uid": posix.uid, "gid": posix.gid, "atime_ns": posix.atime_ns,
             "ctime_ns": posix.ctime_ns}
    os.setxattr(_path(dir_fd, name), ATTR, json.dumps(attrs).encode(), follow_symlinks=False)


def _int(value: object, fallback: int | None) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else fallback


def posix_of(st: os.stat_result, attrs: dict | None, target: str | None = None) -> Posix:
    """The metadata of an entry from its stat and stored attribute (None: the defaults)."""
    is_dir = stat.S_ISDIR(st.st_mode)
    base = default_posix(is_dir, st.st_mtime_ns)
    if attrs is None:
        return base
    mode = _int(attrs.get("mode"), base.mode) or base.mode
    if is_dir:
        mode = stat.S_IFDIR | stat.S_IMODE(mode)
    elif not stat.S_ISLNK(mode):
        mode = stat.S_IFREG | stat.S_IMODE(mode)
    return Posix(mode, _int(attrs.get("uid"), None), _int(attrs.get("gid"), None), st.st_mtime_ns,
                 _int(attrs.get("atime_ns"), st.st_mtime_ns) or 0,
                 _int(attrs.get("ctime_ns"), st.st_mtime_ns) or 0,
                 target if stat.S_ISLNK(mode) else None)


def read_target(dir_fd: int, name: str) -> str:
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    with open(fd, "rb") as handle:
        return handle.read(8192).decode("utf-8", "surrogateescape")


def etag_of(st: os.stat_result) -> str:
    """Cheap strong validator: inode, size and nanosecond mtime (changes on every replace or write)."""
    return f'"{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}"'


def describe(name: str, st: os.stat_result, dir_fd: int | None) -> EntryInfo:
    """The EntryInfo of ``name`` (stat ``st``) in the open directory ``dir_fd`` (None: no stored metadata
    to read, e.g. the root or a link on disk followed inside the root)."""
    attrs = read_attrs(dir_fd, name) if dir_fd is not None else None
    is_link = attrs is not None and stat.S_ISLNK(_int(attrs.get("mode"), 0) or 0) and stat.S_ISREG(st.st_mode)
    target = read_target(dir_fd, name) if is_link and dir_fd is not None else None
    posix = posix_of(st, attrs, target)
    if stat.S_ISDIR(st.st_mode):
        return EntryInfo(name, True, 0, st.st_mtime, None, posix)
    return EntryInfo(name, False, st.st_size, st.st_mtime, etag_of(st), posix)
