"""Ranged GETs that stay open between the readahead runs of a sequential reader.

Readahead fetches a run of blocks at a time, as the reader moves on. Opening one request per run costs a
round trip, the server's set-up and a slow TCP start each time: one stream of 32 MiB requests moved
1.6 GB/s on loopback here, one request for the whole file 3.4 GB/s. So a run asks for the rest of the
file, and when its blocks are in, the open response is *parked*; the next run that starts where it
stopped continues it instead of asking again.

A parked stream costs a connection and the bytes already in flight (the kernel's socket buffers, a few
MiB): it is closed after ``idle_seconds`` without use, when the file changes, or when more than ``limit``
are parked (oldest first).

Locks (names of docs/architecture.md's *mount lock order*):
``ParkedStreams._lock`` guards ``_parked`` and ``_reaper``; a leaf, never held
while a stream is closed (victims are closed after it is released).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from contextlib import AbstractContextManager

Fill = Callable[[memoryview], int]


class OpenStream:
    """An open ranged GET: ``fill(out)`` reads the next body bytes, which belong at file ``offset``."""

    def __init__(self, key: Hashable, path: str, offset: int, context: AbstractContextManager[Fill]):
        self.key = key  # the file version it reads
        self.path = path
        self.offset = offset
        self._context = context
        self.fill: Fill = context.__enter__()
        self.parked_at = 0.0

    def close(self) -> None:
        try:
            self._context.__exit__(None, None, None)
        except Exception:  # a connection that broke while parked: nothing left to release
            pass


class ParkedStreams:
    def __init__(self, limit: int = 4, idle_seconds: float = 5.0):
        self.limit = limit
        self.idle_seconds = idle_seconds
        self._lock = threading.Lock()
        self._parked: OrderedDict[tuple[Hashable, int], OpenStream] = OrderedDict()
        self._reaper: threading.Thread | None = None
        self.resumed = 0  # runs that continued a parked stream instead of a new request

    def take(self, key: Hashable, offset: int) -> OpenStream | None:
        """The parked stream of version ``key`` whose next byte is at ``offset``, now owned by the caller."""
        with self._lock:
            stream = self._parked.pop((key, offset), None)
            if stream is not None:
                self.resumed += 1
            return stream

    def park(self, stream: OpenStream) -> None:
        stream.parked_at = time.monotonic()
        with self._lock:
            old = self._parked.pop((stream.key, stream.offset), None)
            self._parked[(stream.key, stream.offset)] = stream
            victims = [old] if old is not None else []
            while len(self._parked) > self.limit:
                victims.append(self._parked.popitem(last=False)[1])
            if self._reaper is None:
                self._reaper = threading.Thread(target=self._reap, name="algofs-stream-reaper", daemon=True)
                self._reaper.start()
        for victim in victims:
            victim.close()

    def drop(self, path: str | None = None) -> None:
        """Close the parked streams of ``path`` (all when None): the file changed or the cache closes."""
        with self._lock:
            victims = [s for s in self._parked.values() if path is None or s.path == path]
            for stream in victims:
                del self._parked[(stream.key, stream.offset)]
        for stream in victims:
            stream.close()

    def __len__(self) -> int:
        with self._lock:
            return len(self._parked)

    def _reap(self) -> None:
        """Close streams idle too long; exits when nothing is parked (``park`` starts a new one)."""
        while True:
            time.sleep(self.idle_seconds / 2)
            deadline = time.monotonic() - self.idle_seconds
            with self._lock:
                victims = [s for s in self._parked.values() if s.parked_at <= deadline]
                for stream in victims:
                    del self._parked[(stream.key, stream.offset)]
                done = not self._parked
                if done:
                    self._reaper = None
            for stream in victims:
                stream.close()
            if done:
                return
