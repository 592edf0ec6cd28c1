"""Opt-in write-back (``--write-back SECONDS``): ``close()`` returns once the bytes are staged locally;
the upload runs ``SECONDS`` after the file's last close, off the caller's path.

Why: with the default (upload at close) every ``close()`` waits for a round trip to the API, so a loop
that writes 1,000 small files or reopens a log 1,000 times for one line pays 1,000 round trips (bench/
writes.py). rclone (``--vfs-write-back``), JuiceFS (``--writeback``) and gcsfuse make the same trade.
What a user gives up, and what stays (docs/filesystem.md, "Write-back"):

- ``close()`` returning 0 no longer means "on the server"; ``fsync()`` still does (it uploads now and
  reports errors). Readers on this mount see the new bytes at once; other clients after the upload.
- Reopen-append cycles within the delay coalesce: one upload (of just the new bytes where the server
  has write-at-offset) for many closes.
- Nothing is lost: a dirty file carries its recovery *claim* from its first write (claims.py), a failed
  background upload copies the bytes to the recovery folder and is retried with backoff, unmount uploads
  everything pending first, and a daemon that dies leaves claimed files that the next daemon or
  ``algofs recover`` salvages.

A pending file holds one reference on its ``StagedFile`` (``WriteStaging.hold``), so it stays the path's
staged file (reads, stat, reopen share it) until the upload is done.

This module only schedules: the upload itself, and everything it updates, is the ``upload`` it is given
(``Uploader.upload``, uploads.py, which also owns the ``WriteBack``), as rclone's writeback calls its
cache item's ``PutFn``.

Locks (names of docs/architecture.md's *mount lock order*; pairwise):

- ``WriteBack._lock`` (and ``_wake``, its condition) guards the fields marked ``_lock`` below and every
  field of ``Pending``.
- ``WriteBack._lock`` before ``WriteStaging._lock`` (staging.py): ``closed`` takes the file's ``hold`` under
  it, so an entry and its reference appear together; ``release`` runs after it is released.
- ``StagedFile.lock`` and ``WriteBack._lock``: never both (``closed`` is called with no staged file's lock
  held, and the workers call ``upload`` with no lock held).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .staged_file import StagedFile
from .staging import WriteStaging

log = logging.getLogger(__name__)

#: Parallel background uploads.
UPLOAD_WORKERS = 4
#: A failed background upload is tried again after delay × 2^attempt, at most this many seconds apart.
MAX_RETRY_SECONDS = 60.0


@dataclass
class Pending:
    staged: StagedFile
    due: float
    attempts: int = 0
    running: bool = False
    again: bool = False  # closed again while its upload ran: upload once more after the delay


class WriteBack:
    def __init__(self, staging: WriteStaging, upload: Callable[[StagedFile], None], delay: float):
        """``upload(staged)``: ``Uploader.upload``, the whole upload (bytes, server version, caches); it
        raises OSError (bytes kept for recovery) on failure."""
        if delay <= 0:
            raise ValueError("write-back delay must be > 0 seconds")
        self.staging = staging
        self.upload = upload
        self.delay = delay
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._pending: dict[int, Pending] = {}  # _lock; id(staged) -> entry
        self._closing = False  # _lock
        self._pool = ThreadPoolExecutor(UPLOAD_WORKERS, thread_name_prefix="algofs-write-back")
        self.uploaded = 0  # _lock
        self.failed_attempts = 0  # _lock
        self._timer = threading.Thread(target=self._run, name="algofs-write-back-timer", daemon=True)
        self._timer.start()

    def closed(self, staged: StagedFile) -> None:
        """A handle of ``staged`` was closed while it was dirty: upload it ``delay`` seconds from now
        (from the last such close)."""
        with self._lock:
            entry = self._pending.get(id(staged))
            if entry is None:
                self.staging.hold(staged)
                self._pending[id(staged)] = Pending(staged, time.monotonic() + self.delay)
            elif entry.running:
                entry.again = True
            else:
                entry.due = time.monotonic() + self.delay
            self._wake.notify()

    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def stats(self) -> dict:
        with self._lock:
            pending = len(self._pending)
        return {"delay": self.delay, "pending": pending, "uploaded": self.uploaded,
                "failed_attempts": self.failed_attempts}

    def _run(self) -> None:
        with self._lock:
            while not self._closing:
                now = time.monotonic()
                due = [e for e in self._pending.values() if not e.running and e.due <= now]
                for entry in due:
                    entry.running = True
                    self._pool.submit(self._upload, entry)
                waiting = [e.due for e in self._pending.values() if not e.running]
                self._wake.wait(max(0.01, min(waiting) - now) if waiting else None)

    def _upload(self, entry: Pending) -> None:
        try:
            self.upload(entry.staged)
        except OSError as exc:
            with self._lock:
                self.failed_attempts += 1
                entry.attempts += 1
                entry.running = False
                entry.due = time.monotonic() + min(MAX_RETRY_SECONDS, self.delay * 2 ** entry.attempts)
                self._wake.notify()
            log.error("write-back upload of %s failed (attempt %d, retrying; bytes kept for recovery): %s",
                      entry.staged.path, entry.attempts, exc)
            return
        except Exception:
            log.exception("write-back upload of %s failed", entry.staged.path)
            with self._lock:
                entry.running = False
                entry.due = time.monotonic() + MAX_RETRY_SECONDS
            return
        with self._lock:
            self.uploaded += 1
            entry.running = False
            if entry.again:
                entry.again = False
                entry.due = time.monotonic() + self.delay
                self._wake.notify()
                return
            del self._pending[id(entry.staged)]
        self.staging.release(entry.staged)

    def drain(self, timeout: float) -> int:
        """Upload everything pending now (unmount); returns how many files are still not uploaded (their
        bytes are in the recovery folder or still claimed in staging)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            for entry in self._pending.values():
                entry.due = 0.0
            self._wake.notify()
        while time.monotonic() < deadline:
            with self._lock:
                left = [e for e in self._pending.values() if e.attempts == 0 or e.running]
                if not left:
                    break
            time.sleep(0.02)
        with self._lock:
            self._closing = True
            self._wake.notify()
            remaining = len(self._pending)
        self._pool.shutdown(wait=True)
        if remaining:
            log.error("unmounting with %d write-back file(s) not uploaded; their bytes are kept for recovery",
                      remaining)
        return remaining
