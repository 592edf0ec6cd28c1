"""A soft limit on the paths the kernel and libfuse hold nodes for: an LRU swept by ``fuse_invalidate_path``.

Every name the kernel looks up (a LOOKUP answer) or gets with a READDIRPLUS entry becomes a kernel dentry
and inode and a node in libfuse's high-level path table, and both stay until the kernel forgets the inode,
which it does only under memory pressure. A walk over a 1,000,000-file dataset left 1,000,000 libfuse
nodes in the daemon (issue 26: RSS grew ~1 KiB per file read beyond the caches' own budgets). hf-mount caps
this with ``--inode-soft-limit`` and an LRU sweep; so does this module:

* ``seen(path)`` records a path the kernel was told about, most recent last (a plain dict in insertion
  order, a path seen again moved to the end: ~120 bytes per path with the path's bytes, measured with
  tracemalloc; an ``OrderedDict`` cost ~180; ``soft_limit`` paths at most between sweeps plus what arrives
  during one). Its recorded directories move to the end with it: the kernel's invalidation of a
  directory drops every name under it, so the directory of names in use must not be the oldest (a walk
  looks a directory up once, then only its names);
* past ``soft_limit`` paths, a background thread (never a FUSE request thread: the kernel may wait on a
  request in flight while it handles the notification) invalidates the least recently seen paths down to
  ``LOW_WATER`` of the limit with libfuse's ``fuse_invalidate_path``: the kernel drops the dentry (an
  unused one; an open file keeps its inode until closed), forgets the inode, and libfuse frees the node.

After a sweep the thread also asks glibc to give back the free pages of its heaps (``malloc_trim``): the
nodes libfuse frees, and the listings and small files the caches evicted meanwhile, leave free pages in
the per-thread malloc arenas that glibc otherwise keeps (measured: 206 → 198 MiB after a 100,000-file walk).

What a swept path loses is only the kernel's caches of it: the next access looks it up again (answered
from the metadata cache) and reads its bytes through the daemon again (the small-file store or the block
cache may still hold them). Nothing the mount guarantees depends on the kernel holding a name.

Locks: ``NodeLimit._lock`` guards ``_paths`` and the counters; a leaf, never held across an invalidation.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import itertools
import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

#: Paths kept after a sweep, as a fraction of the soft limit (a sweep then frees a tenth at once).
LOW_WATER = 0.9
#: Seconds between checks of the sweeper thread (a sweep also starts at once when the limit is passed).
SWEEP_INTERVAL = 5.0


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


def release_free_heap() -> bool:
    """glibc's ``malloc_trim(0)``: free pages of every malloc arena back to the kernel; False elsewhere."""
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False


class NodeLimit:
    def __init__(self, soft_limit: int, interval: float = SWEEP_INTERVAL):
        """``soft_limit``: paths the kernel may hold (0: no limit, nothing is recorded)."""
        self.soft_limit = soft_limit
        self.interval = interval
        self._lock = threading.Lock()
        self._paths: dict[bytes, None] = {}  # least recently seen first
        self._invalidate: Callable[[bytes], int] | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.swept = 0
        self.sweeps = 0

    @property
    def enabled(self) -> bool:
        return self.soft_limit > 0

    def start(self, invalidate: Callable[[bytes], int]) -> None:
        """Sweep with ``invalidate(path)`` (``fuse_invalidate_path`` of the running mount) from now on."""
        if not self.enabled or self._thread is not None:
            return
        self._invalidate = invalidate
        self._thread = threading.Thread(target=self._run, name="algofs-node-limit", daemon=True)
        self._thread.start()

    def seen(self, path: bytes) -> None:
        """The kernel was told about ``path`` (a lookup answered, a READDIRPLUS entry sent). Its recorded
        directories move to the end after it: invalidating a directory drops every name under it from the
        kernel, so a directory is swept only after the names under it, never while they are in use."""
        if not self.enabled:
            return
        with self._lock:
            paths = self._paths
            paths.pop(path, None)  # seen before: to the end (a dict keeps insertion order)
            paths[path] = None
            cut = path.rfind(b"/")
            while cut > 0:
                path = path[:cut]
                if path in paths:
                    del paths[path]
                    paths[path] = None
                cut = path.rfind(b"/")
            over = len(paths) > self.soft_limit
        if over:
            self._wake.set()

    def sweep(self) -> int:
        """Invalidate the least recently seen paths down to ``LOW_WATER`` of the limit; how many."""
        with self._lock:
            excess = len(self._paths) - int(self.soft_limit * LOW_WATER)
            if len(self._paths) <= self.soft_limit or excess <= 0:
                return 0
            victims = list(itertools.islice(self._paths, excess))  # the oldest
            for path in victims:
                del self._paths[path]
        invalidate = self._invalidate
        done = 0
        for path in victims:
            if invalidate is not None:
                invalidate(path)  # -ENOENT when the kernel no longer holds it: nothing to do
            done += 1
        with self._lock:
            self.swept += done
            self.sweeps += 1
        release_free_heap()  # ~15 ms; a sweep comes once per tenth of the limit of new paths
        log.debug("node limit: %d paths invalidated", done)
        return done

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"soft_limit": self.soft_limit, "paths": len(self._paths), "swept": self.swept,
                    "sweeps": self.sweeps}

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.sweep()
            except Exception:  # noqa: BLE001 - a failed sweep is retried on the next wake
                log.exception("node limit sweep failed")
