"""The block cache's index entries: file versions, cached blocks, per-path state and fetches in flight.

Every field of ``Block``, ``PathState`` and ``Flight`` is guarded by ``BlockCache._lock``, except
``Flight.future`` (thread-safe by itself; waited on outside the lock).
"""

from __future__ import annotations

import errno
import hashlib
from collections import deque
from concurrent.futures import Future
from typing import NamedTuple

from .block_buffers import Buffer


class FileVersion(NamedTuple):
    """What identifies the bytes of a file: a change of size or etag means new contents."""

    path: str
    size: int
    etag: str  # may be "" (then the caller folds size+mtime into it)


class BlockFetchError(OSError):
    """A fetch returned a different number of bytes than the block holds (the file changed remotely)."""

    def __init__(self, message: str):
        super().__init__(errno.EIO, message)


class Block:
    """A block in the index: its file, and its buffer while it is in the memory tier."""

    __slots__ = ("key", "name", "path", "length", "pins", "stale", "ram")

    def __init__(self, key: str, name: str, path: str, length: int):
        self.key = key
        self.name = name  # file name: the key plus a serial, so a re-fetch never overwrites a file in use
        self.path = path
        self.length = length
        self.pins = 0
        self.stale = False
        self.ram: Buffer | None = None  # set while the block is in the memory tier


class PathState:
    """The version of a path whose blocks are cached, and the keys of those blocks."""

    __slots__ = ("version", "keys", "cached_bytes", "flights", "piece_bytes", "stream_queue",
                 "stream_next")

    def __init__(self, version: FileVersion):
        self.version = version
        self.keys: set[str] = set()
        self.cached_bytes = 0
        self.flights = 0
        self.piece_bytes: dict[int, int] = {}  # block index -> bytes fetched piecewise
        #: Blocks the file's stream worker fetches next, in order; None when no worker runs.
        self.stream_queue: deque[PrefetchJob] | None = None
        #: The block after the last one queued for the worker: where its request goes on from.
        self.stream_next = -1


class Flight:
    """A fetch of one block in progress; readers of the block join it instead of fetching again."""

    __slots__ = ("future", "prefetch", "state", "name", "joined", "buffer")

    def __init__(self, state: PathState, prefetch: bool, name: str):
        self.future: Future[Buffer] = Future()
        self.name = name
        self.prefetch = prefetch
        self.state = state
        self.joined = 0  # readers waiting for the buffer; each is owed one reference
        self.buffer: Buffer | None = None


def block_key(version: FileVersion, index: int) -> str:
    raw = f"{version.path}\0{version.size}\0{version.etag}\0{index}".encode("utf-8", "surrogatepass")
    return hashlib.blake2b(raw, digest_size=16).hexdigest()



#: A block a prefetch will fetch: (key, index, its flight).
PrefetchJob = tuple[str, int, Flight]
