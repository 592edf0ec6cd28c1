"""On-disk block cache for file contents, with single-flight downloads and sequential readahead.

Files are cut into fixed blocks (8 MiB by default) fetched with one ranged GET each: one HTTP request per
FUSE read is 10-50x slower. A block is cached under a hash of (path, size, etag, block index), so a remote
change (a new ``FileVersion``) makes the old blocks unreachable; they are deleted as soon as the new
version is seen. The last block of a file is an ordinary (shorter) block. A random read (a parquet/zip
footer, a seek) of a block nobody fetched gets only the pages it covers (``_read_piece``, uncached here)
until random reads have fetched a quarter of that block; then the block is fetched whole.

Design choices:

* **In-memory index, wiped on start.** Block files live in a private directory per cache instance
  (``cache_dir/blocks-<pid>-<random>``), held by an ``flock``. Nothing is reused across restarts:
  the index knows which version each block belongs to only while the daemon runs, and keeping the hot
  path free of metadata writes (no JSON, no fsync) matters more than a warm start. On start, directories
  of instances that are gone (lock free) are deleted; two live mounts sharing a ``cache_dir`` don't
  collide.
* **Hot path:** a dictionary lookup under one lock, then a copy straight into the caller's buffer (the
  FUSE reply buffer) outside it: from memory for recently fetched blocks, else ``os.preadv`` on the
  block file. A block being read is pinned and never evicted.
* **Memory:** blocks are received into reused, page-aligned buffers (``BufferPool``). The last
  ``ram_blocks`` fetched blocks stay in memory and serve reads from there, so a cold sequential read
  never reads back what it just wrote. Block files are written with ``O_DIRECT`` where the file system
  allows it: the kernel already caches the mounted file's pages, a second page-cache copy of each block
  would double the memory and the copying (on this project's VMs a never-touched GiB of memory costs
  seconds of page faults, more than the network transfer). After ``memory_idle_seconds`` (30 s) without
  a read, the memory tier and the idle buffers are let go (a 1 GiB read leaves ~100 MiB of them): a
  mount that sits in a notebook server all day does not hold them; its next cold read allocates again.
* **Size cap:** LRU by last access, evicted inline after each insert (one ``unlink`` per evicted block,
  done outside the lock). Pinned blocks may push the size over the cap briefly.
* **Single flight:** concurrent readers of a missing block wait for one fetch. The error of a demand
  fetch propagates to every reader waiting on it; prefetch errors are swallowed (a reader that waited on
  a failed prefetch fetches the block itself).
* **Readahead:** per ``stream_id`` (an open file handle; the path when None) sequential detection
  (``readahead.SequentialDetector``) schedules the next ``readahead_blocks`` blocks on a small thread
  pool, with a global cap on prefetches in flight so memory stays bounded (``block_prefetch``).

Modules: ``block_cache`` (reads, fetches, eviction, control), ``block_index`` (versions, blocks, flights),
``block_buffers`` (memory), ``block_files`` (disk), ``block_prefetch`` (readahead), ``range_source`` (what a
fetch offers), ``range_streams`` (open requests between readahead runs), ``readahead`` (sequential
detection).

Locks (take them only in this order):

1. ``BlockCache._lock`` - guards the index (``_blocks``, ``_ram``, ``_paths``, ``_flights``, ``_size``),
   ``counters``, ``Prefetcher.inflight``, every field of ``Block``/``PathState``/``Flight`` and
   ``Buffer.refs``. Held for dictionary work only: never across a fetch, a disk read or write, a wait on
   a flight's future or a pool submit.
2. ``BufferPool._lock`` - ``_idle`` and ``allocated``; taken under 1 when a buffer's last reference goes.

Leaves never taken under 1: ``SequentialDetector._lock`` (readahead.py), ``ParkedStreams._lock``
(range_streams.py), the ``_pending_writes`` semaphore (bounds the blocks queued for the writer thread).
``_closed`` and ``_last_read`` are written without a lock (flags: a stale read costs one extra fetch or
one late memory release).
"""

from __future__ import annotations

import itertools
import logging
import mmap
import threading
import time
from collections import OrderedDict
from collections.abc import Hashable
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from .block_buffers import Buffer, BufferPool, copy_out
from .block_files import BlockFiles
from .block_index import Block, BlockFetchError, FileVersion, Flight, PathState, block_key
from .block_prefetch import Prefetcher
from .range_source import BufferFiller, RangeReader
from .readahead import SequentialDetector

__all__ = ["BlockCache", "BlockFetchError", "CacheCounters", "FileVersion"]

log = logging.getLogger(__name__)

#: Random reads fetch just the pages they need ("pieces", uncached here: the kernel's page cache keeps
#: them) until this fraction of a block was fetched that way; then the block is fetched whole.
PIECE_BUDGET_FRACTION = 0.25
PAGE_SIZE = 4096
#: Fetched blocks waiting for the writer thread (each holds block_size bytes of memory).
MAX_PENDING_WRITES = 4


@dataclass
class CacheCounters:
    """What ``stats()`` reports as counts since start (field names are the status keys)."""

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


class BlockCache:
    """Offset-addressed, thread-safe reads of remote files through an on-disk LRU block cache."""

    def __init__(self, cache_dir: Path, limit_bytes: int, block_size: int = 8 << 20,
                 readahead_blocks: int = 4, ram_blocks: int | None = None, memory_idle_seconds: float = 30.0):
        if block_size <= 0 or limit_bytes < 0 or readahead_blocks < 0:
            raise ValueError("block_size must be > 0, limit_bytes and readahead_blocks >= 0")
        self.block_size = block_size
        self.limit_bytes = limit_bytes
        self.readahead_blocks = readahead_blocks
        #: Fetched blocks kept in memory: a sequential reader's block and the up to 2 x readahead ahead of it.
        self.ram_blocks = 2 * readahead_blocks + 1 if ram_blocks is None else ram_blocks
        self._files = BlockFiles(Path(cache_dir))
        self._lock = threading.Lock()
        self._blocks: OrderedDict[str, Block] = OrderedDict()  # LRU order: oldest first
        self._ram: OrderedDict[str, Block] = OrderedDict()  # the memory tier, LRU order
        self._paths: dict[str, PathState] = {}
        self._flights: dict[str, Flight] = {}
        self._size = 0
        self.counters = CacheCounters()
        self._buffers = BufferPool(block_size, keep=self.ram_blocks + 2)
        self._detector = SequentialDetector()
        self._serial = itertools.count()
        self._prefetcher = Prefetcher(self, readahead_blocks)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="algofs-block-writer")
        self._pending_writes = threading.BoundedSemaphore(MAX_PENDING_WRITES)
        self._closed = False
        self.memory_idle_seconds = memory_idle_seconds
        self._last_read = time.monotonic()
        self._stop = threading.Event()
        if memory_idle_seconds > 0:
            threading.Thread(target=self._release_memory_when_idle, name="algofs-memory-release",
                             daemon=True).start()

    # ----------------------------------------------------------------------------------------- reading
    def read(self, version: FileVersion, offset: int, size: int, fetch: RangeReader,
             stream_id: Hashable | None = None) -> bytes:
        """Bytes [offset, offset+size) clamped to version.size; short only at EOF.

        ``fetch(start, end_exclusive)`` performs the ranged GET; its errors reach the readers that needed
        the block.
        """
        if offset < 0 or size < 0:
            raise ValueError("offset and size must be >= 0")
        out = bytearray(max(0, min(offset + size, version.size) - offset))
        with memoryview(out) as view:
            self.read_into(version, offset, view, fetch, stream_id)
        return bytes(out)

    def read_into(self, version: FileVersion, offset: int, out: memoryview, fetch: RangeReader,
                  stream_id: Hashable | None = None) -> int:
        """Fill ``out`` with the bytes from ``offset`` on, clamped to version.size; returns the count.

        The FUSE layer passes the kernel's reply buffer, so cached bytes are copied exactly once.
        """
        if offset < 0:
            raise ValueError("offset must be >= 0")
        end = min(offset + len(out), version.size)
        if offset >= end:
            return 0
        self._last_read = time.monotonic()
        self._note_version(version)
        bs = self.block_size
        first, last = offset // bs, (end - 1) // bs
        access = self._detector.observe(version.path if stream_id is None else stream_id, offset, end)
        if access.sequential and self._prefetcher.enabled:
            self._prefetcher.schedule(version, first, last, fetch)
        piecewise = not access.sequential and not access.from_start
        filled = 0
        for index in range(first, last + 1):
            base = index * bs
            lo, hi = max(offset, base) - base, min(end, base + bs) - base
            part = out[filled:filled + hi - lo]
            if not (piecewise and self._read_piece(version, index, lo, hi, part, fetch)):
                self._read_block_into(version, index, lo, hi, part, fetch)
            filled += hi - lo
        return filled

    def _read_piece(self, version: FileVersion, index: int, lo: int, hi: int, out: memoryview,
                    fetch: RangeReader) -> bool:
        """A random read of a block nobody has: fetch only its pages. False = read the block instead
        (it is cached or coming, or random reads already fetched a good part of it piecewise)."""
        key = block_key(version, index)
        base = index * self.block_size
        start = base + lo - lo % PAGE_SIZE
        stop = min(base + -(-hi // PAGE_SIZE) * PAGE_SIZE, version.size)
        with self._lock:
            state = self._paths.get(version.path)
            if key in self._blocks or key in self._flights or state is None or state.version != version:
                return False
            used = state.piece_bytes.get(index, 0) + stop - start
            if used > self.block_size * PIECE_BUDGET_FRACTION:
                return False
            state.piece_bytes[index] = used
        data = fetch(start, stop)
        if len(data) != stop - start:
            raise BlockFetchError(f"{version.path}: asked for bytes {start}-{stop - 1}, got {len(data)} "
                                  "bytes (file changed remotely?)")
        with self._lock:
            self.counters.piece_fetches += 1
            self.counters.piece_bytes += len(data)
            self.counters.bytes_fetched += len(data)
        with memoryview(data) as view:
            out[:] = view[base + lo - start:base + hi - start]
        return True

    def _block_length(self, version: FileVersion, index: int) -> int:
        return min(self.block_size, version.size - index * self.block_size)

    def _read_block_into(self, version: FileVersion, index: int, lo: int, hi: int, out: memoryview,
                         fetch: RangeReader) -> None:
        key = block_key(version, index)
        retried_prefetch = False
        while True:
            buffer = None
            with self._lock:
                block = self._blocks.get(key)
                if block is not None and not block.stale:
                    block.pins += 1
                    self._blocks.move_to_end(key)
                    self.counters.hits += 1
                    buffer = block.ram
                    if buffer is not None:
                        buffer.refs += 1
                        self._ram.move_to_end(key)
                        self.counters.memory_hits += 1
                else:
                    block = None
                    found = self._flights.get(key)
                    owner = found is None
                    flight = found or self._start_flight_locked(key, version, prefetch=False)
                    if not owner and flight.buffer is not None:  # fetched, its disk write still queued
                        flight.buffer.refs += 1
                        self.counters.hits += 1
                        self.counters.memory_hits += 1
                    elif not owner:
                        flight.joined += 1
                    if flight.buffer is None:
                        self.counters.misses += 1
            if block is not None:
                if self._copy_cached(block, buffer, lo, hi, out):
                    return
                continue  # block file vanished or was cut short: fetch again
            if owner:
                buffer = self._fetch_block(key, version, index, fetch, flight, reader=True)
            else:
                try:
                    buffer = flight.future.result()
                except Exception:
                    if not flight.prefetch or retried_prefetch:
                        raise
                    retried_prefetch = True  # the prefetch failed; try once with our own fetch
                    continue
            try:
                copy_out(buffer, lo, hi, out)
            finally:
                with self._lock:
                    self._unref_locked(buffer)
            return

    def _copy_cached(self, block: Block, buffer: Buffer | None, lo: int, hi: int, out: memoryview) -> bool:
        """Copy a pinned block's bytes (memory, else its file) and unpin it; False if the file is gone."""
        ok = False
        try:
            if buffer is not None:
                copy_out(buffer, lo, hi, out)
                ok = True
            else:
                ok = self._files.read_into(block.name, lo, out) == hi - lo
        except FileNotFoundError:
            pass
        finally:
            with self._lock:
                block.pins -= 1
                if buffer is not None:
                    self._unref_locked(buffer)
                if not ok and self._blocks.get(block.key) is block:
                    log.warning("block file %s missing or short; fetching it again", block.name)
                    self._drop_block_locked(block)
                victims = self._collect_victims_locked()
                if block.pins == 0 and block.stale:
                    victims.append(block.name)
            self._remove_files(victims)
        return ok

    # ---------------------------------------------------------------------------------------- fetching
    def _start_flight_locked(self, key: str, version: FileVersion, prefetch: bool) -> Flight:
        state = self._paths.get(version.path)
        if state is None:  # evicted since read() noted the version
            state = self._paths[version.path] = PathState(version)
        elif state.version != version:  # another reader saw a different version last: don't cache ours
            state = PathState(version)
        flight = Flight(state, prefetch, f"{key}-{next(self._serial)}")
        state.flights += 1
        self._flights[key] = flight
        return flight

    def _receive(self, fetch: RangeReader, start: int, length: int) -> Buffer:
        """One ranged GET into a pooled buffer (or the fetch's own bytes when it cannot fill one)."""
        if not isinstance(fetch, BufferFiller):
            data = fetch(start, start + length)
            buffer = Buffer(data, len(data), pooled=False)
        else:
            mem = self._buffers.take()
            try:
                with memoryview(mem) as view:
                    got = fetch.into(start, view[:length])
            except BaseException:
                self._buffers.give(mem)
                raise
            buffer = Buffer(mem, got, pooled=True)
        if buffer.length != length:
            self._release(buffer)
            raise BlockFetchError(f"asked for bytes {start}-{start + length - 1}, got {buffer.length} bytes "
                                  "(file changed remotely?)")
        return buffer

    def _fetch_block(self, key: str, version: FileVersion, index: int, fetch: RangeReader,
                     flight: Flight, reader: bool = False) -> Buffer:
        """Fetch a block, hand it to waiters at once, then write it to disk.

        The flight stays registered until the block is on disk, so readers arriving meanwhile copy the
        bytes from memory instead of fetching again. A demand reader (``reader``: it gets one reference
        to the buffer) leaves the disk write to the writer thread unless too many writes are pending.
        """
        try:
            try:
                buffer = self._receive(fetch, index * self.block_size, self._block_length(version, index))
            except BlockFetchError as exc:
                raise BlockFetchError(f"{version.path}: {exc.strerror}") from None
        except BaseException as exc:
            self._finish_flight(key, flight, None, False)
            flight.future.set_exception(exc)
            raise
        with self._lock:
            self.counters.fetches += 1
            self.counters.bytes_fetched += buffer.length
            buffer.refs = 1 + reader + flight.joined  # the flight's own, the reader's, the waiters'
            flight.buffer = buffer
        flight.future.set_result(buffer)
        if self._pending_writes.acquire(blocking=False):
            try:
                self._writer.submit(self._store_and_finish, key, flight, buffer, True)
                return buffer
            except RuntimeError:  # closing
                self._pending_writes.release()
        self._store_and_finish(key, flight, buffer, False)
        return buffer

    def _store_and_finish(self, key: str, flight: Flight, buffer: Buffer, pending: bool) -> None:
        try:
            self._finish_flight(key, flight, buffer, self._store(flight.name, buffer))
        finally:
            if pending:
                self._pending_writes.release()

    def _store(self, name: str, buffer: Buffer) -> bool:
        try:
            self._files.write(name, buffer)
            return True
        except OSError as exc:  # disk full, cache dir gone: serve the data uncached
            log.warning("cannot store block %s: %s", name, exc)
            self._files.remove(name)
            return False

    def _finish_flight(self, key: str, flight: Flight, buffer: Buffer | None, stored: bool) -> None:
        """Retire a flight; a stored block joins the index and the memory tier with the flight's reference."""
        victims: list[str] = []
        with self._lock:
            if self._flights.get(key) is flight:
                del self._flights[key]
            state = flight.state
            state.flights -= 1
            current = self._paths.get(state.version.path) is state
            if stored and current and key not in self._blocks and buffer is not None:
                block = Block(key, flight.name, state.version.path, buffer.length)
                self._blocks[key] = block
                state.keys.add(key)
                state.cached_bytes += block.length
                self._size += block.length
                block.ram = buffer
                self._ram[key] = block
                while len(self._ram) > self.ram_blocks:
                    self._leave_ram_locked(next(iter(self._ram.values())))
                victims = self._collect_victims_locked()
            else:
                if stored:
                    victims.append(flight.name)  # invalidated meanwhile: don't keep it
                if buffer is not None:
                    self._unref_locked(buffer)
            if not state.keys and not state.flights and current:
                del self._paths[state.version.path]
        self._remove_files(victims)

    # ------------------------------------------------------------------------------- memory buffers
    def _unref_locked(self, buffer: Buffer) -> None:
        buffer.refs -= 1
        if buffer.refs == 0:
            self._release(buffer)

    def _release(self, buffer: Buffer) -> None:
        if buffer.pooled and isinstance(buffer.mem, mmap.mmap):
            self._buffers.give(buffer.mem)
        buffer.mem = b""

    def _leave_ram_locked(self, block: Block) -> None:
        """Drop a block from the memory tier (its file still serves it)."""
        self._ram.pop(block.key, None)
        if block.ram is not None:
            buffer, block.ram = block.ram, None
            self._unref_locked(buffer)

    # ---------------------------------------------------------------------------- versions, eviction
    def _note_version(self, version: FileVersion) -> None:
        with self._lock:
            state = self._paths.get(version.path)
            if state is not None and state.version == version:
                return
            victims = self._drop_path_locked(version.path) if state is not None else []
            self._paths[version.path] = PathState(version)
        self._remove_files(victims)

    def _drop_path_locked(self, path: str) -> list[str]:
        """Forget a path's blocks; return the files that can go now (pinned ones go on unpin)."""
        state = self._paths.pop(path, None)
        if state is None:
            return []
        victims = []
        for key in state.keys:
            block = self._blocks.get(key)
            if block is not None:
                self._drop_block_locked(block)
                if block.pins == 0:
                    victims.append(block.name)
        for key in [k for k, f in self._flights.items() if f.state is state]:
            del self._flights[key]  # later readers fetch afresh; the running fetch won't insert
        return victims

    def _drop_block_locked(self, block: Block) -> None:
        del self._blocks[block.key]
        self._leave_ram_locked(block)
        block.stale = True
        self._size -= block.length
        state = self._paths.get(block.path)
        if state is not None and block.key in state.keys:
            state.keys.discard(block.key)
            state.cached_bytes -= block.length
            if not state.keys and not state.flights:
                del self._paths[block.path]

    def _collect_victims_locked(self) -> list[str]:
        """Evict least recently used unpinned blocks until the size fits the cap; return their files."""
        excess = self._size - self.limit_bytes
        if excess <= 0:
            return []
        picked = []
        for block in self._blocks.values():
            if excess <= 0:
                break
            if not block.pins:
                picked.append(block)
                excess -= block.length
        for block in picked:
            self._drop_block_locked(block)
        self.counters.evicted_blocks += len(picked)
        return [block.name for block in picked]

    def _remove_files(self, names: list[str]) -> None:
        for name in names:
            self._files.remove(name)

    # --------------------------------------------------------------------------------------- control
    def invalidate(self, path: str) -> None:
        """Drop every cached block of ``path`` (all versions); running fetches won't be cached."""
        with self._lock:
            victims = self._drop_path_locked(path)
        self._remove_files(victims)
        self._detector.forget(path)
        self._prefetcher.forget(path)

    def release_memory(self) -> None:
        """Let the memory tier and the idle block buffers go; the blocks stay on disk."""
        with self._lock:
            for block in list(self._ram.values()):
                self._leave_ram_locked(block)
        if self._buffers.drop_idle():
            self.counters.memory_releases += 1

    def _release_memory_when_idle(self) -> None:
        interval = min(self.memory_idle_seconds / 2, 5.0)
        while not self._stop.wait(interval):
            idle_for = time.monotonic() - self._last_read
            if idle_for >= self.memory_idle_seconds and (self._ram or self._buffers.idle()):
                self.release_memory()

    def clear(self) -> None:
        with self._lock:
            victims = []
            for path in list(self._paths):
                victims += self._drop_path_locked(path)
            for block in list(self._blocks.values()):  # blocks of paths already forgotten
                self._drop_block_locked(block)
                if block.pins == 0:
                    victims.append(block.name)
        self._remove_files(victims)
        self._prefetcher.forget()

    def stats(self) -> dict:
        """Counters and per-file entries, counting blocks whose disk write is still queued.

        The writer thread is FIFO with one worker: a no-op submitted now finishes after every queued block
        write, so a caller who just read a file sees it in ``entries``.
        """
        self._drain_writes()
        with self._lock:
            entries = [{"path": path, "cached_bytes": state.cached_bytes, "size": state.version.size}
                       for path, state in self._paths.items() if state.cached_bytes]
            streams = self._prefetcher.streams
            return {
                **asdict(self.counters),
                "size_bytes": self._size, "limit_bytes": self.limit_bytes, "blocks": len(self._blocks),
                "block_size": self.block_size, "memory_blocks": len(self._ram),
                "memory_buffers": self._buffers.allocated, "direct_io": self._files.direct_io,
                "pending_blocks": len(self._flights),
                "streams_resumed": streams.resumed, "streams_parked": len(streams),
                "entries": sorted(entries, key=lambda e: e["path"]),
            }

    def _drain_writes(self, timeout: float = 5.0) -> None:
        try:
            self._writer.submit(_no_op).result(timeout)
        except (RuntimeError, futures.TimeoutError):  # closing, or a disk too slow to wait for: report as is
            pass

    def close(self) -> None:
        """Stop readahead and delete the block files (the index does not outlive the process)."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._prefetcher.close()  # queued prefetches fail fast once _closed is set
        self._writer.shutdown(wait=True)
        with self._lock:
            for block in list(self._ram.values()):
                self._leave_ram_locked(block)
            self._blocks.clear()
            self._paths.clear()
            self._size = 0
        self._files.close()

    def __enter__(self) -> BlockCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()



def _no_op() -> None:
    pass
