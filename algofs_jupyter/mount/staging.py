"""Write staging: files opened for writing live in a local file on disk until they are uploaded.

One ``StagedFile`` per remote path, shared by every handle open on it. Opening an existing file for
writing without ``O_TRUNC`` downloads it first (appends and in-place edits need the old bytes). Writes,
truncates and reads of that path then go to the local file. ``Uploader`` (uploads.py) uploads it when it
is dirty, from ``flush`` (every ``close()``), ``fsync`` and, as a last chance, ``release``.

*Tail uploads.* A staged file knows which prefix of it equals the server's file (``remote_size`` bytes of
version ``remote_etag``, set by ``record_server_version``) and the lowest offset changed since
(``changed_from``). When the server has the write-at-offset extension, the upload sends only the bytes
from there on, with the server's size and ETag as preconditions: an append sends just the new bytes. A
failed precondition (someone else changed the file) falls back to a whole-file PUT, as without the
extension (last writer wins, never a mix).

*Clean copies.* When the last handle of a clean, uploaded file is released, its local copy is kept
(``RETAIN_FILES``/``RETAIN_BYTES``, least recently used out first): a reopen of the same server version
(same ETag and size, checked by the HEAD every open makes) uses it instead of downloading the file again,
so reopen-append cycles (JupyterLab's chunked upload, log writers) cost only their new bytes. A write-only
``O_APPEND`` open of a kept file asks the server nothing (``unverified``): when the upload's precondition
then fails, the bytes written since the open are appended to the server's current version.

A daemon that dies (SIGKILL, OOM, power loss) before an upload cannot report anything, so a dirty
staged file carries a *claim*: ``staged-N.claim`` next to it names the remote path and API. It is
written when the file turns dirty and removed once the upload succeeds, so it costs one small write per
file, not per ``write()``. ``salvage_staging`` (run by the next daemon and by ``algofs recover``) moves
every claimed file of a dead daemon into the recovery folder.

Locks (take them only in this order):

1. ``StagedFile.lock`` (an RLock per staged file) - guards ``ready``, ``dirty``, ``generation``,
   ``uploading``, ``uploaded``, ``recovery_id``/``recovery_generation``, the claim file, and the local
   bytes against concurrent writes and truncates (``pread`` takes no lock: offsets need none). **Held
   across network calls**: the download that fills the file at open, and the upload (uploads.py), so a
   second ``close()`` of the same file waits for the first upload instead of uploading again;
   ``getattr`` never takes it. ``rekey`` (called by a rename holding the
   source's lock) takes the replaced destination's lock under it: two renames onto each other's names at
   the same moment could deadlock.
   ``remote_size``/``remote_etag``/``changed_from``/``pending_mtime``/``unverified`` are guarded by it too.
2. ``WriteStaging._lock`` - guards ``_files``, ``_retained`` and every ``StagedFile.opens``;
   ``StagedFile.path`` is changed under it (``rekey``). No StagedFile lock is taken while it is held
   (files leaving ``_retained`` are closed after it is released); only 3 is.
3. ``SpareFiles._lock`` - guards the spare files; a leaf, taken under 2 by ``open`` (a new staged file takes
   a spare); file creations run outside it.

``RecoveryStore`` takes no lock (each entry is its own folder).
"""

from __future__ import annotations

import errno
import itertools
import json
import logging
import os
import secrets
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path

from ..private_dirs import make_private_dirs
from .recovery import RecoveryStore

log = logging.getLogger(__name__)
#: Free space kept on the staging disk; writes beyond it fail with ENOSPC instead of filling the disk.
RESERVED_FREE_BYTES = 64 << 20


CLAIM_SUFFIX = ".claim"
CRASH_ERROR = "the mount daemon stopped before this file was uploaded"
#: Clean local copies kept after their last close (see "Clean copies" above).
RETAIN_FILES = 16
RETAIN_BYTES = 4 << 30
#: ``changed_from`` of a file that equals the server's version everywhere.
UNCHANGED = sys.maxsize


class StagedFile:
    def __init__(self, path: str, local: Path, api_address: str = "", fd: int | None = None):
        """``fd``: ``local`` already open and empty (a spare, see ``SpareFiles``)."""
        self.path = path  # remote path in the layout (data/<user>/…); changes on rename
        self.local = local
        self.claim = local.with_name(local.name + CLAIM_SUFFIX)
        self.api_address = api_address
        self.fd = os.open(local, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600) if fd is None else fd
        self.lock = threading.RLock()
        self.ready = False  # initial contents in place
        self.dirty = False
        self.unlinked = False
        self.opens = 0
        self.recovery_id: str | None = None
        self.recovery_generation = -1  # ``generation`` whose bytes the recovery entry holds
        self.generation = 0  # bumped by every change
        self.uploading = False
        self.uploaded: dict | None = None  # the server's info about the last upload, when it gave one
        self.remote_size: int | None = None  # bytes [0, remote_size) are the server's version remote_etag
        self.remote_etag = ""
        self.changed_from = 0  # lowest offset written or truncated since the server's version
        self.pending_mtime: float | None = None  # utimens while dirty: applied after the upload
        self.unverified = False  # reopened for append from a kept copy without asking the server

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

    def mark_dirty(self) -> None:
        """Call with ``lock`` held, before the change: the claim exists before the bytes differ."""
        if not self.dirty and not self.unlinked:
            self.write_claim()
        self.dirty = True

    def mark_clean(self) -> None:
        """The bytes are on the server: drop the claim. Emptied, not removed: the next ``write_claim``
        then rewrites a file instead of creating one (see ``SpareFiles``); an empty claim claims nothing."""
        self.dirty = False
        try:
            os.truncate(self.claim, 0)
        except FileNotFoundError:
            pass

    def write_claim(self) -> None:
        """Name the remote path of these bytes on disk (see the module docstring)."""
        record = json.dumps({"path": self.path, "api_address": self.api_address}).encode()
        fd = os.open(self.claim, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, record)
        finally:
            os.close(fd)

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


class SpareFiles:
    """Empty staging files with an empty claim beside them, made ahead of time or recycled from released
    staged files, so ``create()`` does not wait for two file creations. Measured on this machine kind:
    a file creation under /tmp costs 0.7–1.5 ms (30 µs under /var/tmp), two per new file, on the
    critical path of every ``open(..., "w")`` of a new name.

    Locks: ``_lock`` guards ``_free`` and ``_closed``; a leaf. Creations run outside it (refill thread).
    """

    def __init__(self, directory: Path, ids: Iterator[int], keep: int = 16):
        self.directory = directory
        self.ids = ids
        self.keep = keep
        self._free: list[tuple[Path, int]] = []
        self._lock = threading.Lock()
        self._wanted = threading.Event()
        self._closed = False
        self._wanted.set()
        threading.Thread(target=self._refill, name="algofs-spare-files", daemon=True).start()

    def take(self) -> tuple[Path, int] | None:
        with self._lock:
            spare = self._free.pop() if self._free else None
        self._wanted.set()
        return spare

    def give(self, local: Path, fd: int, claim: Path) -> bool:
        """Keep a released (clean) staged file's ``local`` copy, open as ``fd``, and its ``claim`` for reuse;
        False (nothing taken) when full or closed."""
        with self._lock:
            if self._closed or len(self._free) >= self.keep:
                return False
        try:
            os.ftruncate(fd, 0)
            os.truncate(claim, 0)
        except FileNotFoundError:  # no claim (never dirty): make the empty one the next file expects
            try:
                os.close(os.open(claim, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
            except OSError:
                return False
        except OSError:
            return False
        with self._lock:
            if self._closed or len(self._free) >= self.keep:
                return False
            self._free.append((local, fd))
        return True

    def _refill(self) -> None:
        while True:
            self._wanted.wait()
            self._wanted.clear()
            while True:
                with self._lock:
                    if self._closed:
                        return
                    if len(self._free) >= self.keep // 2:
                        break
                local = self.directory / f"staged-{next(self.ids)}"
                try:
                    fd = os.open(local, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
                    os.close(os.open(local.with_name(local.name + CLAIM_SUFFIX),
                                     os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
                except OSError as exc:
                    log.warning("could not make a spare staging file: %s", exc)
                    break
                with self._lock:
                    self._free.append((local, fd))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            free, self._free = self._free, []
        self._wanted.set()
        for local, fd in free:
            os.close(fd)
            local.unlink(missing_ok=True)
            local.with_name(local.name + CLAIM_SUFFIX).unlink(missing_ok=True)


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
        self._files: dict[str, StagedFile] = {}
        self._retained: OrderedDict[str, StagedFile] = OrderedDict()  # clean copies, no handle open
        self.reused_copies = 0
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

    def rekey(self, old: str, new: str) -> None:
        """``old`` was renamed to ``new``: its open handles now write to ``new``."""
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


def _daemon_gone(name: str) -> bool:
    """A staging folder is named after its daemon's pid (``PID``, or ``PID-<random>`` once set aside by a
    new daemon with the same pid, see ``WriteStaging``); ours (pid reuse) counts as a dead one's."""
    try:
        pid = int(name.partition("-")[0])
    except ValueError:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def salvage_staging(base: Path, recovery: RecoveryStore) -> list[str]:
    """Move claimed (dirty, never uploaded) files of dead daemons into ``recovery``; delete the rest.

    Returns the remote paths saved. A folder whose salvage failed is kept, so a later run tries again.
    """
    saved: list[str] = []
    if not base.is_dir():
        return saved
    for folder in base.iterdir():
        if not folder.is_dir() or not _daemon_gone(folder.name):
            continue
        complete = True
        for claim in sorted(folder.glob("*" + CLAIM_SUFFIX)):
            data = claim.with_name(claim.name[:-len(CLAIM_SUFFIX)])
            try:
                text = claim.read_text()
                if not text:
                    continue  # an empty claim claims nothing (a spare, or a file already uploaded)
                record = json.loads(text)
                path = record["path"]
            except (OSError, ValueError, KeyError, TypeError):
                log.critical("unreadable staging claim %s; its bytes stay in %s", claim, data)
                complete = False
                continue
            if not data.is_file():
                continue
            try:
                entry = recovery.save(data, path, CRASH_ERROR, api_address=record.get("api_address") or None)
            except OSError as exc:
                log.critical("could not save %s (bytes of %s) for recovery: %s", data, path, exc)
                complete = False
                continue
            saved.append(path)
            log.warning("%s: %s; bytes saved in %s", path, CRASH_ERROR, entry.directory)
        if complete:
            try:
                for child in folder.iterdir():
                    child.unlink(missing_ok=True)
                folder.rmdir()
            except OSError as exc:  # e.g. files appearing meanwhile: the next salvage tries again
                log.warning("could not remove the staging folder %s: %s", folder, exc)
    return saved
