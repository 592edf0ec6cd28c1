"""Write staging's registry: which staged file (staged_file.py) each remote path has while handles have it
open for writing, and the clean copies kept after their last close.

Files opened for writing live in a local file on disk until they are uploaded: ``open`` gives a handle its
reference on the path's ``StagedFile``, downloading the current bytes first when it needs them (appends and
in-place edits need the old bytes; ``O_TRUNC`` does not); writes, truncates and reads of that path then go
to the local file; the last ``release`` closes it. ``Uploader`` (uploads.py) uploads it when it is dirty.
Renames and unlinks move or detach a path's entry (``rekey``, ``rekey_under``, ``detach``). A new staged
file takes a spare file (spare_files.py); a dirty one carries a claim (claims.py).

*Clean copies.* When the last handle of a clean, uploaded file is released, its local copy is kept
(``RETAIN_FILES``/``RETAIN_BYTES``, least recently used out first): a reopen of the same server version
(same ETag and size, checked by the HEAD every open makes) uses it instead of downloading the file again,
so reopen-append cycles (JupyterLab's chunked upload, log writers) cost only their new bytes. A read-only
open of that version reads from the copy too (``read_kept``, asked by ``ContentCache`` before its own
caches): a file written through the mount is not downloaded again by its first read (issue 25).

Locks (names of docs/architecture.md's *mount lock order*; pairwise):

- The rename locks (``renaming``; one per name, in ``_rename_locks``) before any ``StagedFile.lock``: a
  file rename holds those of its source and destination, taken in sorted order of the names, for the
  whole rename (network calls included). Nothing else takes them.
- ``StagedFile.lock`` (staged_file.py) of a rename's source before the replaced destination's (``rekey``),
  only under the rename locks of both names: so two renames crossing each other's names cannot deadlock.
  Nowhere else is a thread holding one ``StagedFile.lock`` while it takes another.
- ``StagedFile.lock`` before ``WriteStaging._lock`` (``rekey``, called by a rename holding its source's lock);
  never a ``StagedFile.lock`` while ``_lock`` is held (files leaving ``_retained`` are closed after it is
  released; ``open`` fills the file after it).
- ``WriteStaging._lock`` guards ``_files``, ``_retained``, ``reused_copies``, the ``kept_copy_*`` counters,
  ``_rename_locks`` (the dict, not the locks in it) and every ``StagedFile.opens`` and ``StagedFile.path``.
  Never held across a network call or a read of a local copy (its one disk write: a new staged file's
  creation when no spare is left); a reader of a content cache (``read_kept``) takes it with no other
  lock held. Under it only
  ``SpareFiles._lock`` (spare_files.py: ``open`` takes a spare) is taken.
- ``WriteBack._lock`` (write_back.py) before ``WriteStaging._lock``: ``WriteBack.closed`` calls ``hold``
  under it.

``RecoveryStore`` takes no lock (each entry is its own folder).
"""

from __future__ import annotations

import errno
import itertools
import os
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..private_dirs import make_private_dirs
from .claims import salvage_staging
from .recovery import RecoveryStore
from .spare_files import SpareFiles
from .staged_file import StagedFile

__all__ = ["RESERVED_FREE_BYTES", "RETAIN_BYTES", "RETAIN_FILES", "StagedFile", "WriteStaging",
           "salvage_staging"]

#: Free space kept on the staging disk; writes beyond it fail with ENOSPC instead of filling the disk.
RESERVED_FREE_BYTES = 64 << 20
#: Clean local copies kept after their last close (see "Clean copies" above).
RETAIN_FILES = 16
RETAIN_BYTES = 4 << 30


@dataclass
class _NameLock:
    """A rename lock of one name: held by one rename of that name at a time (see ``renaming``)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    users: int = 0  # WriteStaging._lock; renames holding or waiting for it (the entry goes at 0)


class WriteStaging:
    def __init__(self, directory: Path, recovery: RecoveryStore):
        self.directory = directory
        if directory.is_dir() and any(directory.iterdir()):
            # An earlier daemon with our pid left bytes that salvage_staging could not save: keep them
            # aside (a later salvage retries them) rather than reuse, or delete, their names.
            directory.rename(directory.with_name(f"{directory.name}-{secrets.token_hex(4)}"))
        make_private_dirs(directory)
        self.recovery = recovery
        self._lock = threading.Lock()
        self._files: dict[str, StagedFile] = {}  # _lock; remote path -> its open staged file
        self._retained: OrderedDict[str, StagedFile] = OrderedDict()  # _lock; clean copies, no handle open
        self.reused_copies = 0  # _lock
        self.kept_copy_reads = 0  # _lock; reads of a remote version answered from its local copy
        self.kept_copy_bytes = 0  # _lock
        self._rename_locks: dict[str, _NameLock] = {}  # _lock (the dict; each lock guards its name)
        self._ids = itertools.count(1)
        self.spares = SpareFiles(directory, self._ids)

    def get(self, path: str) -> StagedFile | None:
        with self._lock:
            return self._files.get(path)

    def paths_under(self, directory: str) -> dict[str, StagedFile]:
        """Staged (maybe not yet uploaded) files directly inside ``directory``: name → file."""
        prefix = directory.rstrip("/") + "/"
        with self._lock:
            return {p[len(prefix):]: f for p, f in self._files.items()
                    if p.startswith(prefix) and "/" not in p[len(prefix):]}

    def temp_path(self) -> Path:
        return self.directory / f"tmp-{next(self._ids)}"

    def kept_version(self, path: str) -> tuple[int, str] | None:
        """(size, ETag) of the server version a kept clean copy of ``path`` equals, if there is one."""
        with self._lock:
            kept = self._retained.get(path)
            if kept is None or kept.remote_size is None:
                return None
            return kept.remote_size, kept.remote_etag

    def read_kept(self, path: str, size: int, etag: str, offset: int, out: memoryview) -> int | None:
        """Bytes from ``offset`` of the server version (``size``, ``etag``) of ``path`` into ``out``, read
        from the local copy this mount holds of exactly that version: a kept clean copy, or an open staged
        file unchanged since its upload or download (so the bytes just uploaded are read back without a
        download). Returns the count (short only at EOF), or None when no local copy equals that version
        or it changed, was written or was closed while being read: the caller fetches then (``out`` may
        hold garbage). ``ContentCache`` (content_cache.py) asks this before its own caches.

        Locks: ``_lock`` around the two looks at the registry (a staged file's fields are read once each,
        without its lock, as ``getattr`` does: a write marks the file dirty before it changes a byte and
        bumps ``generation`` after, so a change that raced the read is seen by the second look); the
        local read runs with no lock held."""
        if not etag or (not self._retained and not self._files):
            return None
        with self._lock:
            staged = self._local_copy_locked(path, size, etag)
            if staged is None:
                return None
            fd, generation = staged.fd, staged.generation
        want = max(0, min(len(out), size - offset))
        got = 0
        try:
            while got < want:
                count = os.preadv(fd, [out[got:want]], offset + got)
                if not count:
                    break
                got += count
        except OSError:  # closed meanwhile (its descriptor gone or handed on)
            return None
        with self._lock:
            if got != want or self._local_copy_locked(path, size, etag) is not staged \
                    or staged.fd != fd or staged.generation != generation:
                return None
            self.kept_copy_reads += 1
            self.kept_copy_bytes += got
        return got

    def _local_copy_locked(self, path: str, size: int, etag: str) -> StagedFile | None:
        """``path``'s open or kept staged file if its bytes are server version (``size``, ``etag``)."""
        staged = self._files.get(path) or self._retained.get(path)
        if staged is None or staged.fd < 0 or not staged.ready or staged.dirty or staged.unlinked \
                or staged.remote_size != size or staged.remote_etag != etag:
            return None
        return staged

    def kept_copy_counts(self) -> dict[str, int]:
        """Reads answered by ``read_kept`` and their bytes (the status's ``cache.kept_copy_*``)."""
        with self._lock:
            return {"kept_copy_reads": self.kept_copy_reads, "kept_copy_bytes": self.kept_copy_bytes}

    def open(self, path: str, fill: Callable[[Path], object] | None, truncate: bool,
             new: bool = False, remote: tuple[int, str] | None = None,
             unverified: bool = False) -> StagedFile:
        """A handle's reference on ``path``'s staged file; ``fill`` downloads the current bytes.

        ``remote`` = (size, ETag) of the server's version (from the HEAD at open): a clean copy of that
        version kept since an earlier close is used instead of ``fill``; after ``fill`` the staged file
        knows it equals that version (tail uploads).
        """
        dropped: StagedFile | None = None
        with self._lock:
            staged = self._files.get(path)
            if staged is None:
                kept = self._retained.pop(path, None)
                if kept is not None and remote is not None and remote[1] \
                        and (kept.remote_size, kept.remote_etag) == remote:
                    staged = kept
                    staged.unverified = unverified
                    self.reused_copies += 1
                else:
                    dropped = kept
                    spare = self.spares.take()
                    if spare is None:
                        staged = StagedFile(path, self.directory / f"staged-{next(self._ids)}",
                                            self.recovery.api_address)
                    else:
                        staged = StagedFile(path, spare[0], self.recovery.api_address, fd=spare[1])
                self._files[path] = staged
            staged.opens += 1
        if dropped is not None:
            dropped.close()
        try:
            with staged.lock:
                if not staged.ready:
                    if fill is not None and not truncate:
                        fill(staged.local)
                    staged.ready = True
                    if new:
                        staged.mark_dirty()
                    elif remote is not None and (fill is not None or remote[0] == 0) \
                            and staged.size() == remote[0]:
                        staged.set_remote(remote[0], remote[1])
                if unverified and not staged.dirty:
                    staged.unverified = True
                if truncate:
                    staged.truncate(0)
        except BaseException:
            self.release(staged)
            raise
        return staged

    def check_space(self, incoming: int) -> None:
        st = os.statvfs(self.directory)
        if st.f_bavail * st.f_frsize < incoming + RESERVED_FREE_BYTES:
            if self.drop_retained():
                return self.check_space(incoming)
            raise OSError(errno.ENOSPC, "staging disk is full")

    def close(self) -> None:
        """The daemon is done: spare and kept clean copies are removed (dirty files stay, claimed)."""
        self.drop_retained()
        self.spares.close()

    def drop_retained(self, path: str | None = None) -> int:
        """Delete kept clean copies (all, or ``path``'s); returns how many."""
        with self._lock:
            if path is None:
                dropped = list(self._retained.values())
                self._retained.clear()
            else:
                one = self._retained.pop(path, None)
                dropped = [one] if one is not None else []
        for staged in dropped:
            staged.close()
        return len(dropped)

    def drop_retained_under(self, directory: str) -> None:
        prefix = directory.rstrip("/") + "/"
        with self._lock:
            paths = [p for p in self._retained if p == directory or p.startswith(prefix)]
        for path in paths:
            self.drop_retained(path)

    def hold(self, staged: StagedFile) -> None:
        """One more reference on an open ``staged`` without a handle (write-back: kept as the path's staged
        file until its upload is done); dropped with ``release``."""
        with self._lock:
            staged.opens += 1

    def release(self, staged: StagedFile) -> None:
        evicted: list[StagedFile] = []
        with self._lock:
            staged.opens -= 1
            if staged.opens > 0:
                return
            if self._files.get(staged.path) is staged:
                del self._files[staged.path]
                if self._retainable(staged):
                    old = self._retained.pop(staged.path, None)
                    if old is not None:
                        evicted.append(old)
                    self._retained[staged.path] = staged
                    evicted += self._trim_retained_locked()
                    staged = None  # type: ignore[assignment]
        for old in evicted:
            old.close(self.spares)
        if staged is not None:
            staged.close(self.spares)

    @staticmethod
    def _retainable(staged: StagedFile) -> bool:
        """Clean and known to equal a server version (no lock: the last handle just went away)."""
        return (not staged.dirty and not staged.unlinked and staged.remote_size is not None
                and bool(staged.remote_etag) and staged.remote_size <= RETAIN_BYTES)

    def _trim_retained_locked(self) -> list[StagedFile]:
        evicted = []
        total = sum(f.remote_size or 0 for f in self._retained.values())
        while self._retained and (len(self._retained) > RETAIN_FILES or total > RETAIN_BYTES):
            _path, old = self._retained.popitem(last=False)
            total -= old.remote_size or 0
            evicted.append(old)
        return evicted

    def detach(self, path: str) -> StagedFile | None:
        """``path`` was unlinked: open handles keep writing locally, nothing is uploaded any more."""
        self.drop_retained(path)
        with self._lock:
            staged = self._files.pop(path, None)
        if staged is not None:
            with staged.lock:
                staged.unlinked = True
                staged.claim.unlink(missing_ok=True)  # deleted on purpose: nothing to recover
        return staged

    @contextmanager
    def renaming(self, *paths: str) -> Iterator[None]:
        """Hold the rename locks of ``paths`` (a rename's source and destination) for the whole rename.

        One lock per name, taken in sorted order of the names (the *mount lock order*, docs/architecture.md):
        two renames sharing a name run one after the other, so a rename never holds a staged file's lock
        while it waits for another's that a crossing rename holds (``a`` → ``b`` and ``b`` → ``a`` at the
        same moment). Only under these may a thread hold two ``StagedFile.lock``s (``rekey``)."""
        names = sorted(set(paths))
        with self._lock:
            entries = [self._rename_locks.setdefault(name, _NameLock()) for name in names]
            for entry in entries:
                entry.users += 1
        taken: list[_NameLock] = []
        try:
            for entry in entries:
                entry.lock.acquire()
                taken.append(entry)
            yield
        finally:
            for entry in reversed(taken):
                entry.lock.release()
            with self._lock:
                for name, entry in zip(names, entries, strict=True):
                    entry.users -= 1
                    if entry.users == 0:
                        del self._rename_locks[name]

    def rekey(self, old: str, new: str) -> None:
        """``old`` was renamed to ``new``: its open handles now write to ``new``. Called under
        ``renaming(old, new)``, with ``old``'s staged file's lock held; takes the replaced destination's."""
        self.drop_retained(old)
        self.drop_retained(new)
        with self._lock:
            staged = self._files.pop(old, None)
            if staged is None:
                return
            replaced = self._files.get(new)
            staged.path = new
            self._files[new] = staged
        if replaced is not None:
            with replaced.lock:
                replaced.unlinked = True
                replaced.claim.unlink(missing_ok=True)
        with staged.lock:
            if staged.dirty and not staged.unlinked:
                staged.write_claim()

    def rekey_under(self, old: str, new: str) -> None:
        """Directory ``old`` was renamed to ``new``: every staged file below it follows."""
        self.drop_retained_under(old)
        prefix = old + "/"
        with self._lock:
            moved = [(p, f) for p, f in self._files.items() if p.startswith(prefix)]
            for path, staged in moved:
                del self._files[path]
                staged.path = new + path[len(old):]
                self._files[staged.path] = staged
        for _path, staged in moved:
            with staged.lock:
                if staged.dirty and not staged.unlinked:
                    staged.write_claim()

    def stats(self) -> dict:
        with self._lock:
            files = list(self._files.values())
        in_flight = [{"path": f.path, "bytes": f.size(), "uploading": f.uploading}
                     for f in files if f.dirty and not f.unlinked]
        return {"in_flight": len(in_flight), "dirty_files": in_flight,
                "recovery": len(self.recovery.entries()), "reused_copies": self.reused_copies,
                "retained": len(self._retained)}
