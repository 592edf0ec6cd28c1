"""Spare files: empty staging files, each with an empty claim beside it, made ahead of time or recycled
from released staged files, so ``create()`` does not wait for two file creations. Measured on this machine
kind: a file creation under /tmp costs 0.7–1.5 ms (30 µs under /var/tmp), two per new file, on the
critical path of every ``open(..., "w")`` of a new name.

Locks (names of docs/architecture.md's *mount lock order*):

- ``SpareFiles._lock`` guards ``_free`` and ``_closed``. A leaf: nothing is taken under it, and file
  creations, truncations and closes run outside it (the refill thread; ``give``).
- ``WriteStaging._lock`` (staging.py) before ``SpareFiles._lock``: a new staged file takes a spare there.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from .claims import CLAIM_SUFFIX, claim_of, make_empty_claim

log = logging.getLogger(__name__)


class SpareFiles:
    def __init__(self, directory: Path, ids: Iterator[int], keep: int = 16):
        self.directory = directory
        self.ids = ids  # shared with the registry (names staged-N); itertools.count is thread-safe
        self.keep = keep
        self._free: list[tuple[Path, int]] = []  # _lock
        self._lock = threading.Lock()
        self._wanted = threading.Event()
        self._closed = False  # _lock
        self._wanted.set()
        self._refiller = threading.Thread(target=self._refill, name="algofs-spare-files", daemon=True)
        self._refiller.start()

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
                make_empty_claim(claim)
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
                    make_empty_claim(claim_of(local))
                except OSError as exc:
                    log.warning("could not make a spare staging file: %s", exc)
                    break
                with self._lock:
                    closed = self._closed
                    if not closed:
                        self._free.append((local, fd))
                if closed:  # close() ran while this one was made: it must not outlive the pool
                    os.close(fd)
                    local.unlink(missing_ok=True)
                    claim_of(local).unlink(missing_ok=True)
                    return

    def close(self) -> None:
        with self._lock:
            self._closed = True
            free, self._free = self._free, []
        self._wanted.set()
        self._refiller.join(5)  # a spare being made now is removed by the refiller itself
        for local, fd in free:
            os.close(fd)
            local.unlink(missing_ok=True)
            local.with_name(local.name + CLAIM_SUFFIX).unlink(missing_ok=True)
