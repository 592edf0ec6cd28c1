"""The block cache's index: file versions, cached blocks, per-path state, fetches in flight, and
``BlockIndex``, which holds them under one lock for both the cache's reads and its readahead.

Locks (names of docs/architecture.md's *mount lock order*):
every field of ``Block``, ``PathState`` and ``Flight`` is guarded by
``BlockIndex.lock``, except ``Flight.future`` (thread-safe by itself; waited on outside the lock). Under
``BlockIndex.lock`` only ``BufferPool._lock`` (block_buffers.py) is taken; see block_cache.py.
"""

from __future__ import annotations

import errno
import hashlib
import itertools
import mmap
import threading
from collections import OrderedDict, deque
from concurrent.futures import Future
from dataclasses import dataclass
from typing import NamedTuple

from .block_buffers import Buffer, BufferPool


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
        self.stream_queue: deque[ReadaheadJob] | None = None
        #: The block after the last one queued for the worker: where its request goes on from.
        self.stream_next = -1


class Flight:
    """A fetch of one block in progress; readers of the block join it instead of fetching again."""

    __slots__ = ("future", "readahead", "state", "name", "joined", "buffer")

    def __init__(self, state: PathState, readahead: bool, name: str):
        self.future: Future[Buffer] = Future()
        self.name = name
        self.readahead = readahead  # started by readahead, not by a reader (its errors are no reader's)
        self.state = state
        self.joined = 0  # readers waiting for the buffer; each is owed one reference
        self.buffer: Buffer | None = None


def block_key(version: FileVersion, index: int) -> str:
    raw = f"{version.path}\0{version.size}\0{version.etag}\0{index}".encode("utf-8", "surrogatepass")
    return hashlib.blake2b(raw, digest_size=16).hexdigest()


#: A block readahead will fetch: (key, index, its flight).
ReadaheadJob = tuple[str, int, Flight]


@dataclass
class CacheCounters:
    """What ``BlockCache.stats()`` reports as counts since start (field names are the status keys;
    ``prefetch_scheduled`` and ``prefetched_blocks`` count readahead blocks, named before the glossary)."""

    hits: int = 0
    memory_hits: int = 0
    misses: int = 0
    bytes_fetched: int = 0
    fetches: int = 0
    piece_fetches: int = 0
    piece_bytes: int = 0
    prefetch_scheduled: int = 0
    prefetched_blocks: int = 0
    evicted_blocks: int = 0
    memory_releases: int = 0


class BlockIndex:
    """The block cache's index, its lock and its fetches in flight, in one place.

    ``BlockCache`` (demand reads, eviction, control) and ``Readahead`` (block_readahead) both work on it
    and on nothing private of each other. Every attribute but ``buffers`` is guarded by ``lock``; the
    ``*_locked`` methods expect it held, the others take it. Methods that forget blocks return the names of
    the block files that can be deleted now (pinned blocks' files go when their last reader unpins them):
    the caller deletes them after the lock is let go.
    """

    def __init__(self, limit_bytes: int, ram_blocks: int, buffers: BufferPool):
        self.lock = threading.Lock()
        self.limit_bytes = limit_bytes
        self.ram_blocks = ram_blocks
        self.buffers = buffers
        self.blocks: OrderedDict[str, Block] = OrderedDict()  # LRU order: oldest first
        self.ram: OrderedDict[str, Block] = OrderedDict()  # the memory tier, LRU order
        self.paths: dict[str, PathState] = {}
        self.flights: dict[str, Flight] = {}
        self.size = 0
        self.counters = CacheCounters()
        #: Set once by ``BlockCache.close`` (read without the lock as a flag: a stale read costs a fetch).
        self.closed = False
        self._serial = itertools.count()

    # ------------------------------------------------------------------------------ versions, flights
    def current_locked(self, version: FileVersion) -> PathState | None:
        """The path's state if its cached blocks are of ``version``."""
        state = self.paths.get(version.path)
        return state if state is not None and state.version == version else None

    def missing_locked(self, key: str) -> bool:
        """Neither cached nor coming."""
        return key not in self.blocks and key not in self.flights

    def note_version(self, version: FileVersion) -> list[str]:
        """A reader sees ``version``: the path's blocks of any other version go."""
        with self.lock:
            state = self.paths.get(version.path)
            if state is not None and state.version == version:
                return []
            victims = self.drop_path_locked(version.path) if state is not None else []
            self.paths[version.path] = PathState(version)
        return victims

    def start_flight_locked(self, key: str, version: FileVersion, readahead: bool) -> Flight:
        state = self.paths.get(version.path)
        if state is None:  # evicted since read() noted the version
            state = self.paths[version.path] = PathState(version)
        elif state.version != version:  # another reader saw a different version last: don't cache ours
            state = PathState(version)
        flight = Flight(state, readahead, f"{key}-{next(self._serial)}")
        state.flights += 1
        self.flights[key] = flight
        return flight

    def finish_flight(self, key: str, flight: Flight, buffer: Buffer | None, stored: bool) -> list[str]:
        """Retire a flight; a stored block joins the index and the memory tier with the flight's reference."""
        victims: list[str] = []
        with self.lock:
            if self.flights.get(key) is flight:
                del self.flights[key]
            state = flight.state
            state.flights -= 1
            current = self.paths.get(state.version.path) is state
            if stored and current and key not in self.blocks and buffer is not None:
                block = Block(key, flight.name, state.version.path, buffer.length)
                self.blocks[key] = block
                state.keys.add(key)
                state.cached_bytes += block.length
                self.size += block.length
                block.ram = buffer
                self.ram[key] = block
                while len(self.ram) > self.ram_blocks:
                    self.leave_ram_locked(next(iter(self.ram.values())))
                victims = self.collect_victims_locked()
            else:
                if stored:
                    victims.append(flight.name)  # invalidated meanwhile: don't keep it
                if buffer is not None:
                    self.unref_locked(buffer)
            if not state.keys and not state.flights and current:
                del self.paths[state.version.path]
        return victims

    # ------------------------------------------------------------------------------- memory buffers
    def unref_locked(self, buffer: Buffer) -> None:
        buffer.refs -= 1
        if buffer.refs == 0:
            self.release(buffer)

    def release(self, buffer: Buffer) -> None:
        """A buffer nobody holds goes back to the pool (``BufferPool._lock`` may be taken under ``lock``)."""
        if buffer.pooled and isinstance(buffer.mem, mmap.mmap):
            self.buffers.give(buffer.mem)
        buffer.mem = b""

    def leave_ram_locked(self, block: Block) -> None:
        """Drop a block from the memory tier (its file still serves it)."""
        self.ram.pop(block.key, None)
        if block.ram is not None:
            buffer, block.ram = block.ram, None
            self.unref_locked(buffer)

    # ------------------------------------------------------------------------------------- eviction
    def drop_path_locked(self, path: str) -> list[str]:
        """Forget a path's blocks and flights (a running fetch won't insert; later readers fetch afresh)."""
        state = self.paths.pop(path, None)
        if state is None:
            return []
        victims = []
        for key in state.keys:
            block = self.blocks.get(key)
            if block is not None:
                self.drop_block_locked(block)
                if block.pins == 0:
                    victims.append(block.name)
        for key in [k for k, f in self.flights.items() if f.state is state]:
            del self.flights[key]
        return victims

    def drop_block_locked(self, block: Block) -> None:
        del self.blocks[block.key]
        self.leave_ram_locked(block)
        block.stale = True
        self.size -= block.length
        state = self.paths.get(block.path)
        if state is not None and block.key in state.keys:
            state.keys.discard(block.key)
            state.cached_bytes -= block.length
            if not state.keys and not state.flights:
                del self.paths[block.path]

    def collect_victims_locked(self) -> list[str]:
        """Evict least recently used unpinned blocks until the size fits the cap."""
        excess = self.size - self.limit_bytes
        if excess <= 0:
            return []
        picked = []
        for block in self.blocks.values():
            if excess <= 0:
                break
            if not block.pins:
                picked.append(block)
                excess -= block.length
        for block in picked:
            self.drop_block_locked(block)
        self.counters.evicted_blocks += len(picked)
        return [block.name for block in picked]

    def clear_locked(self) -> list[str]:
        """Forget every block and flight."""
        victims = []
        for path in list(self.paths):
            victims += self.drop_path_locked(path)
        for block in list(self.blocks.values()):  # blocks of paths already forgotten
            self.drop_block_locked(block)
            if block.pins == 0:
                victims.append(block.name)
        return victims

    def entries_locked(self) -> list[dict[str, int | str]]:
        """Per-file entries (``path``, ``cached_bytes``, ``size``) of the paths with cached blocks."""
        entries: list[dict[str, int | str]] = [
            {"path": path, "cached_bytes": state.cached_bytes, "size": state.version.size}
                   for path, state in self.paths.items() if state.cached_bytes]
        return sorted(entries, key=lambda e: str(e["path"]))
