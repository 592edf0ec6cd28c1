"""The staged file: one remote path's bytes in a local file while handles have it open for writing (and a
clean copy of them kept after, see staging.py), shared by every handle open on that path.

*Tail uploads.* A staged file knows which prefix of it equals the server's file (``remote_size`` bytes of
version ``remote_etag``, set by ``record_server_version``) and the lowest offset changed since
(``changed_from``). When the server has the write-at-offset extension, the upload (uploads.py) sends only
the bytes from there on, with the server's size and ETag as preconditions: an append sends just the new
bytes. A failed precondition (someone else changed the file) falls back to a whole-file PUT, as without
the extension (last writer wins, never a mix). A write-only ``O_APPEND`` open of a kept copy asks the
server nothing (``unverified``): when the upload's precondition then fails, the bytes written since the
open are appended to the server's current version.

A dirty staged file carries a claim (claims.py) from before its bytes first differ until its upload.

Locks (names of docs/architecture.md's *mount lock order*):

- ``StagedFile.lock`` (an RLock, one per staged file) guards the fields marked ``lock`` below, the claim
  file, and the local bytes against concurrent writes and truncates (``pread`` takes no lock: offsets
  need none; ``getattr`` never takes it and reads each field once). **Held across network calls**: the
  download that fills the file at open (staging.py), the upload (uploads.py), a rename's server-side move
  (renames.py), so a second ``close()`` of the same file waits for the first upload.
- The rename locks (``WriteStaging.renaming``, staging.py) before ``StagedFile.lock``. One file's
  ``StagedFile.lock`` before another's only in a rename (``WriteStaging.rekey``): the source's before the
  replaced destination's, under the rename locks of both names.
- ``StagedFile.lock`` before ``WriteStaging._lock`` (staging.py), which guards ``path`` and ``opens``; never
  the other way round. This module takes no other lock.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from .claims import claim_of, empty_claim, write_claim

if TYPE_CHECKING:
    from .spare_files import SpareFiles

#: ``changed_from`` of a file that equals the server's version everywhere.
UNCHANGED = sys.maxsize
#: linux/falloc.h: the ``fallocate`` modes the staging file is asked for (``allocate``)
FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE = 0x01, 0x02, 0x10
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]


class StagedFile:
    def __init__(self, path: str, local: Path, api_address: str = "", fd: int | None = None):
        """``fd``: ``local`` already open and empty (a spare, see spare_files.py)."""
        self.path = path  # WriteStaging._lock; remote path in the layout (data/<user>/…), changes on rename
        self.local = local
        self.claim = claim_of(local)
        self.api_address = api_address
        self.fd = os.open(local, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600) if fd is None else fd
        self.lock = threading.RLock()
        self.ready = False  # lock; initial contents in place
        self.dirty = False  # lock
        self.unlinked = False  # lock
        self.opens = 0  # WriteStaging._lock; handles and write-back holds
        self.recovery_id: str | None = None  # lock
        self.recovery_generation = -1  # lock; ``generation`` whose bytes the recovery entry holds
        self.generation = 0  # lock; bumped by every change
        self.uploading = False  # lock
        self.uploaded: dict | None = None  # lock; the server's info about the last upload, when it gave one
        self.remote_size: int | None = None  # lock; [0, remote_size) is server version remote_etag
        self.remote_etag = ""  # lock
        self.changed_from = 0  # lock; lowest offset written or truncated since the server's version
        self.pending_mtime: float | None = None  # lock; utimens while dirty: applied after the upload
        self.unverified = False  # lock; reopened for append from a kept copy without asking the server

    def set_remote(self, size: int | None, etag: str) -> None:
        """The local bytes are exactly the server's version ``etag`` of ``size`` bytes (lock held)."""
        self.remote_size, self.remote_etag = size, etag
        self.changed_from = UNCHANGED if size is not None else 0

    def record_server_version(self, info: dict | None, *, exact: bool = True) -> None:
        """The server's file at ``path`` is now ``info``: its answer to our upload, set-mtime or copy
        (None: it gave none, or holds no version of these bytes). ``exact``: the local bytes equal that
        version byte for byte (checked against the local size too), so the next upload may send only a
        changed tail; else it is a whole-file PUT (lock held)."""
        self.uploaded = info
        size = self.size()
        if exact and info is not None and info.get("size") == size:
            self.set_remote(size, info.get("etag") or "")
        else:
            self.set_remote(None, "")

    def tail_start(self, size: int) -> int | None:
        """Where a tail upload would start, or None when only a whole-file PUT fits (lock held)."""
        if self.remote_size is None or not self.remote_etag:
            return None
        start = min(self.changed_from, self.remote_size, size)
        return start if start > 0 else None

    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def pread(self, size: int, offset: int) -> bytes:
        return os.pread(self.fd, size, offset)

    def pwrite(self, data: bytes, offset: int) -> int:
        with self.lock:
            self.mark_dirty()
            self.changed_from = min(self.changed_from, offset)
            self.pending_mtime = None  # a write after utimens: the time of the write counts
            written = os.pwrite(self.fd, data, offset)
            self.generation += 1
            return written

    def append(self, data: bytes) -> int:
        """An ``O_APPEND`` write: at the end of the local bytes, whatever offset the kernel computed from
        its cached size (which misses bytes a rebased append took from the server)."""
        with self.lock:
            return self.pwrite(data, self.size())

    def truncate(self, length: int) -> None:
        with self.lock:
            self.mark_dirty()
            self.changed_from = min(self.changed_from, length)
            os.ftruncate(self.fd, length)
            self.generation += 1

    def allocate(self, mode: int, offset: int, length: int) -> None:
        """``fallocate(2)`` on the local bytes (what the staging file's filesystem can do, else its errno):
        reserving space (mode 0, ``FALLOC_FL_KEEP_SIZE``), punching holes and zeroing ranges; a change of
        the bytes or the size is uploaded like a write. Collapsing or inserting ranges: EOPNOTSUPP."""
        if mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE):
            raise OSError(errno.EOPNOTSUPP, "fallocate: only reserving, punching holes and zeroing")
        with self.lock:
            size = self.size()
            changes = bool(mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE))
            grows = not mode & FALLOC_FL_KEEP_SIZE and offset + length > size
            if changes or grows:
                self.mark_dirty()
                self.changed_from = min(self.changed_from, offset if changes else size)
                self.pending_mtime = None
            if _libc.fallocate(self.fd, mode, ctypes.c_int64(offset), ctypes.c_int64(length)) != 0:
                code = ctypes.get_errno()
                raise OSError(code, os.strerror(code))
            if changes or grows:
                self.generation += 1

    def mark_dirty(self) -> None:
        """Call with ``lock`` held, before the change: the claim exists before the bytes differ."""
        if not self.dirty and not self.unlinked:
            self.write_claim()
        self.dirty = True

    def mark_clean(self) -> None:
        """The bytes are on the server: drop the claim (lock held)."""
        self.dirty = False
        empty_claim(self.claim)

    def write_claim(self) -> None:
        """Name the remote path of these bytes on disk (claims.py; lock held)."""
        write_claim(self.claim, self.path, self.api_address)

    def close(self, spares: SpareFiles | None = None) -> None:
        """Done with the local copy: emptied and handed to ``spares`` for the next staged file when it
        holds nothing to keep (clean), else closed and removed."""
        if self.fd < 0:
            return  # closed already (its descriptor may belong to another staged file now)
        fd, self.fd = self.fd, -1
        if spares is not None and not self.dirty and spares.give(self.local, fd, self.claim):
            return
        try:
            os.close(fd)
        finally:
            self.local.unlink(missing_ok=True)
            self.claim.unlink(missing_ok=True)
