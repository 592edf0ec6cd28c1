"""Mode, owner, times and symlinks on the mount, kept by a server with the ``posix`` extension
(docs/api-extensions.md; semantics and errno in docs/filesystem.md): chmod, chown (to what the caller may),
utimens (nanoseconds, ``UTIME_NOW``/``UTIME_OMIT``, before 1970), symlink/readlink, new entries' modes and
owners, exclusive creates (``If-None-Match: *``). Where the storage lacks the extension every call says
so (``supported``) and the operations keep their old behaviour (operations.py).

The caller of a FUSE request is libfuse's context (uid, gid, pid); its supplementary groups are read from
``/proc/<pid>/status``. The kernel checks permissions from the stored modes itself (``default_permissions``,
daemon.py); the checks here are chown's rule, which holds also without it.

Locks: none of its own. ``StagedFile.lock`` around a dirty open file's pending mtime (no network call under
it); ``MetadataCache._lock`` inside the cache's methods.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import time
from collections.abc import Callable
from typing import Any

from mfusepy import FuseOSError, fuse_get_context

from ..fs.api_errors import NotSupported
from ..fs.data_api import DataClient
from ..fs.posix_meta import UTIME_NOW, UTIME_OMIT, Posix
from .attributes import Attributes
from .metadata_cache import DIRECTORY, Attr, MetadataCache
from .staged_file import StagedFile
from .staging import WriteStaging

log = logging.getLogger(__name__)
#: A file's mode where the server stores none (the posix extension's default): made by a plain PUT.
DEFAULT_FILE_MODE = 0o644


class PosixOps:
    def __init__(self, client: DataClient, metadata: MetadataCache, staging: WriteStaging,
                 attributes: Attributes, upload: Callable[[StagedFile], None]):
        """``upload``: uploads an open file's staged bytes now (``Uploader.upload``, as ``fsync``)."""
        self.client = client
        self.upload = upload
        self.metadata = metadata
        self.staging = staging
        self.attributes = attributes

    def supported(self, layout: str) -> bool:
        """The storage of ``layout`` keeps modes, owners, nanosecond times and symlinks."""
        return self.client.supports("posix", layout)

    def exclusive(self, layout: str) -> bool:
        return self.client.supports("exclusive-create", layout)

    # -- the caller -------------------------------------------------------------------------------

    @staticmethod
    def caller() -> tuple[int, int, int]:
        """``(uid, gid, pid)`` of the FUSE request being served (the daemon's own outside one)."""
        uid, gid, pid = fuse_get_context()
        if pid == 0:
            return os.getuid(), os.getgid(), 0
        return uid, gid, pid

    @staticmethod
    def caller_groups(pid: int, gid: int) -> set[int]:
        groups = {gid}
        try:
            with open(f"/proc/{pid}/status", encoding="ascii") as status:
                for line in status:
                    if line.startswith("Groups:"):
                        groups.update(int(x) for x in line.split()[1:])
                        break
        except (OSError, ValueError):
            pass
        return groups

    def owner_of_new(self) -> tuple[int | None, int | None]:
        """The owner fields a new entry is given: None (= the mount's user, stored as unknown) where the
        caller is the mount's user, else the caller's ids (root creating files on a shared mount)."""
        uid, gid, _ = self.caller()
        return (None if uid == self.attributes.uid else uid, None if gid == self.attributes.gid else gid)

    # -- creating ---------------------------------------------------------------------------------

    def created(self, layout: str, info: dict[str, Any] | None, kind: str, mode: int) -> Attr:
        """Record a new entry (its owner set when the caller is not the mount's user); its Attr. Without
        a ``posix`` in the server's answer it is what the server stored as far as we know (no HEAD)."""
        uid, gid = self.owner_of_new()
        if uid is not None or gid is not None:
            info = self.client.setattr(layout, **({"uid": uid} if uid is not None else {}),
                                       **({"gid": gid} if gid is not None else {}))
        posix = info.get("posix") if info is not None else None
        if posix is None:
            now = time.time_ns()
            kind_bits = stat.S_IFDIR if kind == DIRECTORY else stat.S_IFREG
            posix = Posix(kind_bits | stat.S_IMODE(mode), uid, gid, now, now, now)
        attr = Attr(DIRECTORY if posix.is_dir else "file", 0, posix.mtime_ns / 1e9,
                    str((info or {}).get("etag") or ""), posix)
        self.metadata.put(layout, attr)
        return attr

    def made_at_create(self, layout: str, mode: int, flags: int) -> bool:
        """Whether ``create`` makes the file on the server at once: for ``O_EXCL`` (race-free), a mode
        other than the default or another owner; else its first upload makes it (one request)."""
        return bool(flags & os.O_EXCL) or stat.S_IMODE(mode) != DEFAULT_FILE_MODE \
            or self.owner_of_new() != (None, None)

    def create_file(self, layout: str, mode: int, exclusive: bool) -> Attr:
        """``create``: the empty file made on the server now, with its mode (and race-free when
        ``exclusive`` and the server can: another client's create of the name gives EEXIST)."""
        try:
            info = self.client.create_empty(
                layout, stat.S_IMODE(mode), exclusive=exclusive and self.exclusive(layout)
            )
        except FileExistsError as exc:
            self.metadata.invalidate(layout)  # another client made it: not the "no such name" we had
            raise FuseOSError(errno.EEXIST) from exc
        return self.created(layout, info, "file", mode)

    def mkdir(self, layout: str, mode: int) -> Attr:
        self.client.mkdir(layout, create_parents=False, mode=stat.S_IMODE(mode))
        return self.created(layout, None, DIRECTORY, mode)

    def symlink(self, layout: str, target: str) -> Attr:
        if len(target.encode("utf-8", "surrogateescape")) > 4095:
            raise FuseOSError(errno.ENAMETOOLONG)
        info = self.client.symlink(layout, target)
        return self.created(layout, info, "file", 0o777)

    @staticmethod
    def readlink(attr: Attr) -> str:
        if attr.posix is None or not attr.posix.is_link or attr.posix.target is None:
            raise FuseOSError(errno.EINVAL)
        return attr.posix.target

    # -- changing ---------------------------------------------------------------------------------

    def chmod(self, layout: str, mode: int) -> None:
        self._record(layout, self._setattr(layout, mode=stat.S_IMODE(mode)))

    def chown(self, layout: str, attr: Attr, uid: int, gid: int) -> None:
        """``uid``/``gid`` -1 = leave. Root may give anything; others only their own uid (no change of
        owner) and a group they are in (EPERM otherwise, as on a local disk)."""
        caller_uid, caller_gid, pid = self.caller()
        current = self.attributes.owner_fields(attr.posix)
        change_uid = uid != -1 and uid != current["st_uid"]
        change_gid = gid != -1 and gid != current["st_gid"]
        if caller_uid != 0:
            if change_uid or ((change_gid or uid != -1 or gid != -1) and caller_uid != current["st_uid"]):
                raise FuseOSError(errno.EPERM)
            if change_gid and gid not in self.caller_groups(pid, caller_gid):
                raise FuseOSError(errno.EPERM)
        fields: dict[str, Any] = {}
        if uid != -1:
            fields["uid"] = uid
        if gid != -1:
            fields["gid"] = gid
        # set-user/group-ID bits a chown clears: the kernel asks for that as a chmod of its own
        self._record(layout, self._setattr(layout, **fields))

    def utimens(self, layout: str, times: tuple[int, int] | None) -> None:
        """``times`` = (atime, mtime) in nanoseconds, each maybe ``UTIME_NOW``/``UTIME_OMIT``; None = now."""
        now = time.time_ns()
        atime, mtime = times if times is not None else (UTIME_NOW, UTIME_NOW)
        atime_ns = None if atime == UTIME_OMIT else now if atime == UTIME_NOW else int(atime)
        mtime_ns = None if mtime == UTIME_OMIT else now if mtime == UTIME_NOW else int(mtime)
        if atime_ns is None and mtime_ns is None:
            return
        staged = self.staging.get(layout)
        if staged is not None and mtime_ns is not None:
            with staged.lock:
                if staged.dirty:  # the upload sets mtime = now: this one is applied after it
                    staged.pending_mtime = mtime_ns / 1e9
                    mtime_ns = None
        if atime_ns is None and mtime_ns is None:
            return
        info = self._setattr(layout, atime_ns=atime_ns, mtime_ns=mtime_ns)
        if staged is not None and mtime_ns is not None:
            with staged.lock:  # the server's version (ETag) may have moved with the time: upload whole
                staged.record_server_version(None, exact=False)
        self._record(layout, info, times_changed=mtime_ns is not None)
        self.staging.drop_retained(layout)

    def _setattr(self, layout: str, **fields: Any) -> dict[str, Any]:
        """``setattr`` on the server; a file created open and not uploaded yet (``cp -p``'s ``fchmod``
        before its ``close``) is uploaded first, as ``fsync`` would."""
        try:
            return self.client.setattr(layout, **fields)
        except FileNotFoundError:
            staged = self.staging.get(layout)
            if staged is None:
                raise
            self.upload(staged)
            return self.client.setattr(layout, **fields)

    def _record(self, layout: str, info: dict[str, Any], times_changed: bool = False) -> None:
        """A setattr's answer: the new ``posix`` on the attributes known (its answer has no size). A new
        mtime may be a new version to the server (ETag): reads then check the size (as after a listing)."""
        posix = info.get("posix")
        known, old = self.metadata.lookup(layout)
        if posix is None or not known or old is None:
            self.metadata.invalidate(layout)
            return
        mtime = posix.mtime_ns / 1e9 if times_changed else old.mtime
        etag = "" if times_changed else old.etag
        self.metadata.put(layout, Attr(old.kind, old.size, mtime, etag, posix))


def unsupported(exc: NotSupported) -> FuseOSError:
    log.info("%s", exc)
    return FuseOSError(errno.EPERM)
