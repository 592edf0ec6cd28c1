"""One upload, end to end: the ``Uploader`` sends a staged file's bytes, records the server version the
staged file now equals, tells every cache, and applies a time set while the file was dirty.

It is the only thing ``flush`` (every ``close()``), ``fsync`` and ``release`` call, and the one ``upload``
the write-back (write_back.py) is given: the write-back only schedules (rclone's ``vfs/vfscache``: the
cache item uploads and updates its own state through one ``PutFn``; ``writeback`` only schedules it).

A close, step by step:

1. ``StagedHandle.flush`` (handles.py) → ``Uploader.closed``: with ``--write-back``,
   ``WriteBack.closed`` schedules the upload and close() returns; else ``upload`` runs now (and so does
   ``WriteBack``'s worker later).
2. ``_send`` (under ``StagedFile.lock``): only the changed tail when the server has write-at-offset (an
   append sends its new bytes, preconditioned on the server's size and ETag), else one whole-file PUT; a
   file reopened for append without asking the server appends to the server's newer version.
3. ``StagedFile.record_server_version``: which server version the local bytes now equal (tail uploads
   start from it); the claim is dropped, a recovery copy of older bytes discarded.
4. The caches, through ``PathChanges.changed`` (path_changes.py): the metadata cache gets the server's
   answer (or one HEAD), every content cache drops the path.
5. A ``utimens`` that came while the file was dirty (``cp -p``) is sent now (set-mtime extension).

A failed upload copies the bytes to the recovery folder and raises EIO, so ``close()`` reports it and
nothing is lost; the file stays dirty, so a later flush/fsync (or the write-back's retry) tries again.

Locks (names of docs/architecture.md's *mount lock order*; pairwise):

- ``StagedFile.lock`` (staged_file.py) is held across the upload (steps 2-3: one PUT, or a tail upload and
  its rebase or whole-file fallback, and the recovery copy of a failure) and across step 5's set-mtime
  request, so a second ``close()`` of the same file waits for the first upload instead of uploading
  again. No other lock is taken under it here.
- ``StagedFile.lock`` before ``MetadataCache._lock`` / the content caches' locks: never both; the caches are
  told (step 4, and step 5's metadata) after the staged file's lock is released.
- ``WriteBack._lock`` (write_back.py) is never held across ``upload``: the write-back's workers call it
  with no lock held.

The counters (``uploads_done``, ``uploads_failed``, ``tail_uploads``) are bumped under one file's lock,
not a shared one: concurrent uploads may miscount them (they are only reported).
"""

from __future__ import annotations

import errno
import logging
from pathlib import Path
from typing import Any, Protocol

from ..fs.api_errors import NotSupported, PreconditionFailed
from .content_cache import ContentChanges
from .metadata_cache import FILE, Attr, MetadataCache
from .path_changes import PathChanges
from .staged_file import StagedFile
from .staging import WriteStaging
from .write_back import WriteBack

log = logging.getLogger(__name__)
#: Seconds unmount waits for write-back uploads (within MountProcess's wait for the daemon to exit).
WRITE_BACK_DRAIN_SECONDS = 10.0


class UploadClient(Protocol):
    """What an upload asks of the Data API client (``fs/data_api.DataClient``)."""

    def put_file(self, lpath: str, rpath: str) -> dict[str, Any] | None: ...

    def write_at(self, path: str, offset: int, local: str, *, expected_size: int | None = None,
                 if_match: str | None = None, truncate: bool = False,
                 at: int | None = None) -> dict[str, Any]: ...

    def download_to(self, path: str, destination: Path) -> int: ...

    def head(self, path: str) -> dict[str, Any]: ...

    def set_mtime(self, path: str, mtime: float) -> dict[str, Any]: ...



class Uploader:
    def __init__(self, client: UploadClient, staging: WriteStaging, metadata: MetadataCache,
                 contents: ContentChanges, write_back: float = 0.0):
        """``write_back``: seconds after the last close (``--write-back``; 0: upload at close)."""
        self.client = client
        self.staging = staging
        self.recovery = staging.recovery
        self.metadata = metadata
        self.changes = PathChanges(metadata, contents)  # the one "this path changed" step
        #: ``--write-back SECONDS``: close() leaves the upload to this (None: upload at close, the default)
        self.write_back = WriteBack(staging, self.upload, write_back) if write_back > 0 else None
        self.uploads_done = 0
        self.uploads_failed = 0
        self.tail_uploads = 0

    # -- what the FUSE operations call ------------------------------------------------------------

    def closed(self, staged: StagedFile) -> None:
        """A handle of ``staged`` was closed (``flush``), or released without one (``release``: e.g. the
        writer was killed): upload now, so close() reports a failed upload; with write-back, schedule it."""
        if self.write_back is None:
            self.upload(staged)
        elif staged.dirty and not staged.unlinked:
            self.write_back.closed(staged)

    def upload(self, staged: StagedFile) -> None:
        """Upload ``staged`` if dirty and tell every cache (``fsync``, the write-back, ``truncate``,
        ``mknod``). Raises OSError (bytes kept for recovery); the server's state is then unknown to us."""
        try:
            uploaded = self._commit(staged)
        except OSError:
            self.metadata.invalidate(staged.path)
            raise
        if uploaded:
            self._tell_caches(staged)
            try:
                self._apply_pending_mtime(staged)
            except OSError as exc:  # the bytes are on the server; only the time is the server's
                log.warning("setting the mtime of %s after its upload failed: %s", staged.path, exc)

    def refresh(self, layout: str) -> None:
        """After our own upload: the server chose mtime/etag, so record what one HEAD says (tools like
        tar compare mtimes before and after reading); if that fails, forget the entry."""
        try:
            info = self.client.head(layout)
        except OSError:
            self.metadata.invalidate(layout)
            return
        self.metadata.put(layout, Attr.from_info(info))

    def drain(self, timeout: float = WRITE_BACK_DRAIN_SECONDS) -> int:
        """Upload what write-back still holds (unmount); the number of files left (kept for recovery)."""
        return self.write_back.drain(timeout) if self.write_back is not None else 0

    def stats(self) -> dict[str, int]:
        return {"done": self.uploads_done, "failed": self.uploads_failed, "tail_uploads": self.tail_uploads}

    # -- the upload -------------------------------------------------------------------------------

    def _commit(self, staged: StagedFile) -> bool:
        """Steps 2-3: True when an upload happened. Raises EIO (bytes kept) on failure."""
        with staged.lock:
            if not staged.dirty or staged.unlinked:
                return False
            staged.uploading = True
            try:
                info, exact = self._send(staged)
                staged.unverified = False
                staged.record_server_version(info, exact=exact)
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

    def _send(self, staged: StagedFile) -> tuple[dict | None, bool]:
        """The upload itself (lock held): the changed tail when the server can take it, else the file.

        Returns the server's info and whether the server's file now equals the local one byte for byte.
        """
        start = staged.tail_start(staged.size())
        if start is not None:
            try:
                info = self.client.write_at(staged.path, start, str(staged.local),
                                            expected_size=staged.remote_size,
                                            if_match=staged.remote_etag or None, truncate=True)
                self.tail_uploads += 1
                return info, True
            except NotSupported:
                pass
            except PreconditionFailed as exc:
                if staged.unverified:
                    return self._rebase_append(staged, start, exc)
                log.warning("%s changed on the server since it was opened (%s); uploading the whole file",
                            staged.path, exc)
        return self.client.put_file(str(staged.local), staged.path), True

    def _rebase_append(self, staged: StagedFile, start: int,
                       exc: PreconditionFailed) -> tuple[dict | None, bool]:
        """A file reopened for append without asking the server changed there meanwhile: append what was
        written since the open to the server's current version (O_APPEND's meaning). Anything but a pure
        append is reported (ESTALE, bytes kept for recovery), never uploaded over the other change."""
        if exc.size is None or staged.remote_size is None or start < staged.remote_size:
            raise exc
        info = self.client.write_at(staged.path, staged.remote_size, str(staged.local),
                                    expected_size=exc.size, if_match=exc.etag or None, at=exc.size)
        self.tail_uploads += 1
        return info, self._refresh_local(staged, info)

    def _refresh_local(self, staged: StagedFile, info: dict | None) -> bool:
        """After a rebased append the local bytes are ours, not the server's: fetch the server's (in place,
        the descriptor stays valid), so readers, stat and further appends through open handles see the
        file as it is. False when that is not possible; the copy is then not trusted (no tail uploads)."""
        if not info or "size" not in info:
            return False
        try:
            self.client.download_to(staged.path, staged.local)
        except OSError as exc:
            log.warning("%s: could not refresh the local copy after appending to a newer version: %s",
                        staged.path, exc)
            return False
        return staged.size() == info["size"]

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

    # -- after the upload -------------------------------------------------------------------------

    def _tell_caches(self, staged: StagedFile) -> None:
        """Step 4 (no lock held; ``uploaded`` is read once)."""
        info = staged.uploaded
        if info is not None and "posix" not in info and self._has_posix(staged.path):
            info = None  # an answer without the file's stored mode and owner: one HEAD has them (refresh)
        if info is not None and info.get("size") == staged.size():  # not written to since the upload
            self.changes.changed(staged.path, Attr.from_info(info))
        else:
            self.changes.changed(staged.path)
            self.refresh(staged.path)

    def _has_posix(self, layout: str) -> bool:
        """The file had POSIX metadata of its own (a mode, owner or times set): an upload keeps them on
        the server, and its answer may not say which. A file with none has the defaults after it too."""
        known, attr = self.metadata.lookup(layout)
        return known and attr is not None and attr.posix is not None

    def _apply_pending_mtime(self, staged: StagedFile) -> None:
        """Step 5: a utimens that came while the file was dirty (``cp -p``, ``touch -d`` on an open file)."""
        with staged.lock:
            mtime, staged.pending_mtime = staged.pending_mtime, None
            if mtime is None or staged.dirty:
                staged.pending_mtime = mtime if staged.dirty else None
                return
            info = self.client.set_mtime(staged.path, mtime)
            # a new time on the version the local bytes equal (if they equal one): they equal this one
            staged.record_server_version({**(staged.uploaded or {}), **info},
                                         exact=staged.remote_size is not None)
        self.metadata.put(staged.path, Attr(FILE, info["size"], info["mtime"], info["etag"]))
