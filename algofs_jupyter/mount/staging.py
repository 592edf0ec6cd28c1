"""Write staging: files opened for writing live in a local file on disk until they are uploaded.

One ``StagedFile`` per remote path, shared by every handle open on it. Opening an existing file for
writing without ``O_TRUNC`` downloads it first (appends and in-place edits need the old bytes). Writes,
truncates and reads of that path then go to the local file. ``commit`` uploads it (one streamed PUT) when
it is dirty; the daemon calls it from ``flush`` (every ``close()``), ``fsync`` and, as a last chance,
``release``. A failed upload copies the bytes to the recovery folder and raises EIO, so ``close()``
reports it and nothing is lost; the file stays dirty, so a later flush/fsync tries again.

A daemon that dies (SIGKILL, OOM, power loss) before an upload cannot report anything, so a dirty
staged file carries a *claim*: ``staged-N.claim`` next to it names the remote path and API. It is
written when the file turns dirty and removed once the upload succeeds, so it costs one small write per
file, not per ``write()``. ``salvage_staging`` (run by the next daemon and by ``algofs recover``) moves
every claimed file of a dead daemon into the recovery folder.

Locks (take them only in this order):

1. ``StagedFile.lock`` (an RLock per staged file) - guards ``ready``, ``dirty``, ``generation``,
   ``uploading``, ``uploaded``, ``recovery_id``/``recovery_generation``, the claim file, and the local
   bytes against concurrent writes and truncates (``pread`` takes no lock: offsets need none). **Held
   across network calls**: the download that fills the file at open, and ``commit``'s upload (one PUT,
   up to the session's timeout), so a second ``close()`` of the same file waits for the first upload
   instead of uploading again; ``getattr`` never takes it. ``rekey`` (called by a rename holding the
   source's lock) takes the replaced destination's lock under it: two renames onto each other's names at
   the same moment could deadlock.
2. ``WriteStaging._lock`` - guards ``_files`` and every ``StagedFile.opens``; ``StagedFile.path`` is
   changed under it (``rekey``). A leaf: no StagedFile lock is taken while it is held.

``uploads_done``/``uploads_failed`` are bumped under one file's lock, not a shared one: concurrent uploads
may miscount them (they are only reported). ``RecoveryStore`` takes no lock (each entry is its own folder).
"""

from __future__ import annotations

import errno
import itertools
import json
import logging
import os
import secrets
import threading
from collections.abc import Callable
from pathlib import Path

from .recovery import RecoveryStore

log = logging.getLogger(__name__)
#: Free space kept on the staging disk; writes beyond it fail with ENOSPC instead of filling the disk.
RESERVED_FREE_BYTES = 64 << 20


CLAIM_SUFFIX = ".claim"
CRASH_ERROR = "the mount daemon stopped before this file was uploaded"


class StagedFile:
    def __init__(self, path: str, local: Path, api_address: str = ""):
        self.path = path  # remote path in the layout (data/<user>/…); changes on rename
        self.local = local
        self.claim = local.with_name(local.name + CLAIM_SUFFIX)
        self.api_address = api_address
        self.fd = os.open(local, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
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

    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def pread(self, size: int, offset: int) -> bytes:
        return os.pread(self.fd, size, offset)

    def pwrite(self, data: bytes, offset: int) -> int:
        with self.lock:
            self.mark_dirty()
            written = os.pwrite(self.fd, data, offset)
            self.generation += 1
            return written

    def truncate(self, length: int) -> None:
        with self.lock:
            self.mark_dirty()
            os.ftruncate(self.fd, length)
            self.generation += 1

    def mark_dirty(self) -> None:
        """Call with ``lock`` held, before the change: the claim exists before the bytes differ."""
        if not self.dirty and not self.unlinked:
            self.write_claim()
        self.dirty = True

    def mark_clean(self) -> None:
        self.dirty = False
        self.claim.unlink(missing_ok=True)

    def write_claim(self) -> None:
        """Name the remote path of these bytes on disk (see the module docstring)."""
        record = json.dumps({"path": self.path, "api_address": self.api_address}).encode()
        fd = os.open(self.claim, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, record)
        finally:
            os.close(fd)

    def close(self) -> None:
        try:
            os.close(self.fd)
        finally:
            self.local.unlink(missing_ok=True)
            self.claim.unlink(missing_ok=True)


class WriteStaging:
    def __init__(self, directory: Path, recovery: RecoveryStore,
                 upload: Callable[[str, str], dict | None]):
        self.directory = directory
        if directory.is_dir() and any(directory.iterdir()):
            # An earlier daemon with our pid left bytes that salvage_staging could not save: keep them
            # aside (a later salvage retries them) rather than reuse, or delete, their names.
            directory.rename(directory.with_name(f"{directory.name}-{secrets.token_hex(4)}"))
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.recovery = recovery
        self._upload = upload  # (local file, remote path) -> the stored file's info or None
        self._lock = threading.Lock()
        self._files: dict[str, StagedFile] = {}
        self._ids = itertools.count(1)
        self.uploads_done = 0
        self.uploads_failed = 0

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

    def open(self, path: str, fill: Callable[[Path], object] | None, truncate: bool,
             new: bool = False) -> StagedFile:
        """A handle's reference on ``path``'s staged file; ``fill`` downloads the current bytes."""
        with self._lock:
            staged = self._files.get(path)
            if staged is None:
                staged = StagedFile(path, self.directory / f"staged-{next(self._ids)}",
                                    self.recovery.api_address)
                self._files[path] = staged
            staged.opens += 1
        try:
            with staged.lock:
                if not staged.ready:
                    if fill is not None and not truncate:
                        fill(staged.local)
                    staged.ready = True
                    if new:
                        staged.mark_dirty()
                if truncate:
                    staged.truncate(0)
        except BaseException:
            self.release(staged)
            raise
        return staged

    def check_space(self, incoming: int) -> None:
        st = os.statvfs(self.directory)
        if st.f_bavail * st.f_frsize < incoming + RESERVED_FREE_BYTES:
            raise OSError(errno.ENOSPC, "staging disk is full")

    def commit(self, staged: StagedFile) -> bool:
        """Upload ``staged`` if dirty; True when an upload happened. Raises EIO (bytes kept) on failure."""
        with staged.lock:
            if not staged.dirty or staged.unlinked:
                return False
            staged.uploading = True
            try:
                staged.uploaded = self._upload(str(staged.local), staged.path)
            except OSError as exc:
                self.uploads_failed += 1
                self._keep_for_recovery(staged, exc)
                raise OSError(exc.errno or errno.EIO,
                              f"upload of {staged.path} failed ({exc}); bytes kept in "
                              f"{self.recovery.directory}") from exc
            finally:
                staged.uploading = False
            staged.mark_clean()
            self.uploads_done += 1
            if staged.recovery_id:
                self.recovery.discard(staged.recovery_id)
                staged.recovery_id = None
            return True

    def _keep_for_recovery(self, staged: StagedFile, exc: OSError) -> None:
        if staged.recovery_id and staged.recovery_generation == staged.generation:
            return  # these exact bytes are saved already
        try:
            entry = self.recovery.save(staged.local, staged.path, str(exc))
            if staged.recovery_id:  # replace the older copy only once the new one exists
                self.recovery.discard(staged.recovery_id)
            staged.recovery_id, staged.recovery_generation = entry.id, staged.generation
            log.error("upload of %s failed: %s; bytes saved in %s", staged.path, exc, entry.directory)
        except OSError as save_error:
            log.critical("upload of %s failed and the recovery copy failed too: %s", staged.path, save_error)

    def release(self, staged: StagedFile) -> None:
        with self._lock:
            staged.opens -= 1
            if staged.opens > 0:
                return
            if self._files.get(staged.path) is staged:
                del self._files[staged.path]
        staged.close()

    def detach(self, path: str) -> StagedFile | None:
        """``path`` was unlinked: open handles keep writing locally, nothing is uploaded any more."""
        with self._lock:
            staged = self._files.pop(path, None)
        if staged is not None:
            with staged.lock:
                staged.unlinked = True
                staged.claim.unlink(missing_ok=True)  # deleted on purpose: nothing to recover
        return staged

    def rekey(self, old: str, new: str) -> None:
        """``old`` was renamed to ``new``: its open handles now write to ``new``."""
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

    def stats(self) -> dict:
        with self._lock:
            files = list(self._files.values())
        in_flight = [{"path": f.path, "bytes": f.size(), "uploading": f.uploading}
                     for f in files if f.dirty and not f.unlinked]
        return {"in_flight": len(in_flight), "dirty_files": in_flight, "done": self.uploads_done,
                "failed": self.uploads_failed, "recovery": len(self.recovery.entries())}


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
                record = json.loads(claim.read_text())
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
            for child in folder.iterdir():
                child.unlink(missing_ok=True)
            folder.rmdir()
    return saved
