"""The stat dicts the mount reports: owner fields, directories' link counts and times (an entry created,
removed or renamed through the mount moves its directory's mtime), and files open for writing (their local
size; their time: the last write's, a pending utimens', or once uploaded and unchanged, the server's).

Locks (names of docs/architecture.md's *mount lock order*):
none of its own; ``MetadataCache._lock`` (a leaf) inside the cache's methods. ``staged_stat`` takes no
``StagedFile.lock`` (``getattr`` never waits for an upload): it reads the fields once each.
"""

from __future__ import annotations

import dataclasses
import os
import stat
import time
from typing import Any

from ..fs.posix_meta import Posix
from .layout import LOCAL_DIRECTORIES
from .metadata_cache import DIRECTORY, FILE, RESTRICTED, Attr, MetadataCache
from .staged_file import StagedFile
from .stat_dicts import directory_stat, file_stat, ns

#: Block size the mount reports to stat (tools size their reads by it).
STAT_BLOCK_SIZE = 1 << 20


class Attributes:
    def __init__(self, metadata: MetadataCache):
        self.metadata = metadata
        self.uid, self.gid = os.getuid(), os.getgid()
        self.started = time.time()  # the time of directories with none of their own

    def owner_fields(self, posix: Posix | None = None) -> dict[str, Any]:
        """The mount's user, or the stored owner (posix extension; unknown fields: the mount's user)."""
        uid = posix.uid if posix is not None and posix.uid is not None else self.uid
        gid = posix.gid if posix is not None and posix.gid is not None else self.gid
        return {"st_uid": uid, "st_gid": gid, "st_blksize": STAT_BLOCK_SIZE}

    def dir_stat(self, mode: int = 0o755, mtime: float = 0.0, links: int = 2) -> dict[str, Any]:
        return directory_stat(mtime or self.started, mode, st_size=0, st_nlink=links, **self.owner_fields())

    def file_stat(self, size: int, mtime: float) -> dict[str, Any]:
        return file_stat(size, mtime, st_blocks=(size + 511) // 512, **self.owner_fields())

    def attr_stat(self, attr: Attr, layout: str | None = None) -> dict[str, Any]:
        if attr.posix is not None and attr.kind != RESTRICTED:
            return self.posix_stat(attr, attr.posix, layout)
        if attr.kind == DIRECTORY:
            return self.dir_stat(mtime=attr.mtime, links=self.dir_links(layout))
        if attr.kind == RESTRICTED:
            return self.dir_stat(0o111)
        # a file always has its time from the server (Last-Modified, a listing's last_modified), and 0
        # is a time like any other (`touch -d @0`); directories may have none (a folder S3 only implies)
        return self.file_stat(attr.size, attr.mtime)

    def posix_stat(self, attr: Attr, posix: Posix, layout: str | None = None,
                   size: int | None = None, mtime_ns: int | None = None) -> dict[str, Any]:
        """Mode, owner and nanosecond times as the server stores them (posix extension)."""
        perms = stat.S_IMODE(posix.mode)
        times = (posix.atime_ns, posix.mtime_ns if mtime_ns is None else mtime_ns, posix.ctime_ns)
        if attr.kind == DIRECTORY:
            return directory_stat(0.0, perms, times, st_size=0, st_nlink=self.dir_links(layout),
                                  **self.owner_fields(posix))
        if posix.is_link:
            length = len((posix.target or "").encode("utf-8", "surrogateescape"))
            return file_stat(length, 0.0, perms, times, file_type=stat.S_IFLNK, st_blocks=0,
                             **self.owner_fields(posix))
        size = attr.size if size is None else size
        return file_stat(size, 0.0, perms, times, st_blocks=(size + 511) // 512, **self.owner_fields(posix))

    def dir_links(self, layout: str | None) -> int:
        """2 + subdirectories when a fresh listing of ``layout`` is cached, else 2."""
        children = self.metadata.listing(layout) if layout else None
        if not children:
            return 2
        return 2 + sum(1 for attr in children.values() if attr.kind != FILE)

    def touch_directory(self, layout: str) -> None:
        """Our own change of an entry in ``layout``: its mtime/ctime move now (the server's listing
        says the same once re-read, when it has folder mtimes)."""
        if layout in LOCAL_DIRECTORIES or layout.count("/") < 1:
            return
        known, attr = self.metadata.lookup(layout)
        if known and attr is not None and attr.kind == DIRECTORY:
            now = time.time()
            posix = attr.posix
            if posix is not None:  # its mode and owner stay; mtime and ctime move
                posix = dataclasses.replace(posix, mtime_ns=ns(now), ctime_ns=ns(now))
            self.metadata.put(layout, Attr(DIRECTORY, 0, now, "", posix))

    def staged_stat(self, staged: StagedFile) -> dict[str, Any]:
        """A file open for writing: its local size, and the time of its last write, or once uploaded
        and unchanged, the server's mtime (what every later stat reports)."""
        local = os.fstat(staged.fd)
        mtime = local.st_mtime
        uploaded = staged.uploaded
        if not staged.dirty and uploaded is not None and uploaded.get("size") == local.st_size:
            mtime = uploaded["mtime"]
        elif staged.pending_mtime is not None:  # set by utimens, applied after the upload
            mtime = staged.pending_mtime
        known, attr = self.metadata.lookup(staged.path)
        if known and attr is not None and attr.posix is not None and attr.kind == FILE:
            clean = not staged.dirty and staged.pending_mtime is None  # the server's time is the time
            return self.posix_stat(attr, attr.posix, size=local.st_size,
                                   mtime_ns=None if clean else ns(mtime))
        return self.file_stat(local.st_size, mtime)
