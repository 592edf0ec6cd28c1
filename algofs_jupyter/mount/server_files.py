"""``ServerFiles``: a large file's bytes read straight from the server's own file, when the server runs on
this machine (the ``local-reads`` extension, docs/api-extensions.md §13; fs/local_reads.py).

Why: over HTTP a cold read crossed the server's sendfile, the mount's receive, a block-file write and a
copy into the kernel's reply; on 2 cores that was ~1.4 core-s per GiB, where a FUSE passthrough of the same
local file takes ~0.5 (bench/README.md, issue 26). With the server's descriptor a read is one ``preadv``
into the reply buffer, and nothing is copied into the block cache: the bytes are on this machine already.

One descriptor per file version read (``FileVersion``), asked for at its first read. It is used only when
the server's answer is that version: same size, and the same ETag when the version has one (a version
from a listing has none, and is trusted by size, as the block cache's ranged GETs trust it). Anything else
(another version, a refusal, storage with no local files, a server that can't be reached) leaves the read
to the block cache, which then answers as before (ESTALE for a changed file, EIO for a dead server). A
version answered "no" is not asked again while it is remembered; after a transport failure nothing is
asked for ``RETRY_AFTER`` seconds.

Caps: at most ``MAX_OPEN`` versions are remembered (descriptors and "no" answers), the least recently read
dropped first. A descriptor is closed when it is dropped and no read is using it (``_Open.users``), never
under a read: a closed number could be reused by another file meanwhile.

Locks: ``_lock`` guards ``_files``, the ``_Open`` counts and the counters; a leaf, never held across the
socket request or a read.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..fs.local_reads import LocalFile, copy_and_close
from .block_index import FileVersion

#: Versions remembered (open descriptors and "not offered" answers).
MAX_OPEN = 128
#: Seconds without asking after the socket could not be reached.
RETRY_AFTER = 30.0

#: ``open(path)``: the server's descriptor of layout path ``path``, or None where it offers none. Raises
#: ConnectionError/TimeoutError when the socket can't be used, another OSError for the path's own error
#: (``fs.local_reads.LocalOpener``).
Opener = Callable[[str], "LocalFile | None"]


class _Open:
    __slots__ = ("fd", "users", "dropped")

    def __init__(self, fd: int):
        self.fd = fd
        self.users = 0  # reads using fd now (guarded by ServerFiles._lock)
        self.dropped = False  # out of the table: closed by the last user


class ServerFiles:
    def __init__(self, opener: Opener, max_open: int = MAX_OPEN):
        self.opener = opener
        self.max_open = max_open
        self._lock = threading.Lock()
        self._files: OrderedDict[FileVersion, _Open | None] = OrderedDict()
        self._quiet_until = 0.0
        self._reads = self._bytes = self._opened = self._refused = 0
        self._copies = self._copied_bytes = 0  # copy_to: write-opens filled from the server's file

    def read_into(self, version: FileVersion, etag: str, offset: int, out: memoryview) -> int | None:
        """Bytes of ``version`` from ``offset`` into ``out`` (short only at its end), or None: read it
        from the caches instead."""
        entry = self._acquire(version, etag)
        if entry is None:
            return None
        count = max(0, min(len(out), version.size - offset))
        try:
            got = os.preadv(entry.fd, [out[:count]], offset) if count else 0
        finally:
            self._release(entry)
        if got < count:  # cut under us (nothing of ours does that): the caches answer from now on
            self._forget(lambda v: v == version)
            return None
        with self._lock:
            self._reads += 1
            self._bytes += got
        return got

    def _acquire(self, version: FileVersion, etag: str) -> _Open | None:
        with self._lock:
            if version in self._files:
                self._files.move_to_end(version)
                entry = self._files[version]
                if entry is not None:
                    entry.users += 1
                return entry
        found, answered = self._ask(version.path)
        if not answered:
            return None  # not remembered: asked again once the socket can be reached
        if found is not None and not found.holds(version.size, etag):
            os.close(found.fd)  # another version: the caches' request tells the reader
            found = None
        entry = _Open(found.fd) if found is not None else None
        with self._lock:
            if version in self._files:  # another thread's read opened it meanwhile: theirs is used
                if entry is not None:
                    os.close(entry.fd)
                entry = self._files[version]
            else:
                self._files[version] = entry
                if entry is not None:
                    self._opened += 1
                else:
                    self._refused += 1
                while len(self._files) > self.max_open:
                    _version, dropped = self._files.popitem(last=False)
                    self._drop_locked(dropped)
            if entry is not None:
                entry.users += 1
            return entry

    def copy_to(self, path: str, local: Path) -> int | None:
        """``path``'s current bytes into ``local`` (made or emptied), copied by the kernel from the
        server's own file: the byte count, or None where the server offers none (the caller downloads
        over HTTP). What a GET would give: the current version, whichever it is (a write-open's fill)."""
        found, _answered = self._ask(path)
        if found is None:
            return None
        copied = copy_and_close(found, local)
        with self._lock:
            self._copies += 1
            self._copied_bytes += copied
        return copied

    def _ask(self, path: str) -> tuple[LocalFile | None, bool]:
        """The opener's answer for ``path`` and whether the server answered. (None, True): none offered,
        or the path's own error (the HTTP request after it gets that too). (None, False): the socket can't
        be reached, or could not a moment ago (nothing is asked for ``RETRY_AFTER`` seconds)."""
        with self._lock:
            if time.monotonic() < self._quiet_until:
                return None, False
        try:
            return self.opener(path), True
        except (ConnectionError, TimeoutError):
            with self._lock:
                self._quiet_until = time.monotonic() + RETRY_AFTER
            return None, False
        except OSError:
            return None, True

    def _release(self, entry: _Open) -> None:
        with self._lock:
            entry.users -= 1
            if entry.dropped and entry.users == 0:
                os.close(entry.fd)

    def _drop_locked(self, entry: _Open | None) -> None:
        if entry is None:
            return
        entry.dropped = True
        if entry.users == 0:
            os.close(entry.fd)

    def _forget(self, which: Callable[[FileVersion], bool]) -> None:
        with self._lock:
            for version in [v for v in self._files if which(v)]:
                self._drop_locked(self._files.pop(version))

    def invalidate(self, path: str) -> None:
        """The mount changed ``path``: its versions are asked for again (a new version, a new answer)."""
        self._forget(lambda v: v.path == path)

    def clear(self) -> None:
        self._forget(lambda _v: True)

    def close(self) -> None:
        self.clear()
        close = getattr(self.opener, "close", None)
        if close is not None:
            close()

    def stats(self) -> dict[str, Any]:
        """The status's ``cache.server_files`` (docs/control.md)."""
        with self._lock:
            return {"open": sum(1 for entry in self._files.values() if entry is not None),
                    "not_offered": sum(1 for entry in self._files.values() if entry is None),
                    "opened": self._opened, "refused": self._refused, "reads": self._reads,
                    "bytes": self._bytes, "copies": self._copies, "copied_bytes": self._copied_bytes}
