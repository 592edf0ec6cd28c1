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
  fetch propagates to every reader waiting on it; readahead errors are swallowed (a reader that waited on
  a failed readahead block fetches the block itself).
* **Readahead:** per ``stream_id`` (an open file handle; the path when None) sequential detection
  (``sequential.SequentialDetector``) schedules the next ``readahead_blocks`` blocks on a small thread
  pool, with a global cap on readahead blocks in flight so memory stays bounded (``block_readahead``).

Modules: ``block_cache`` (reads, fetches, eviction, control), ``block_index`` (``BlockIndex``: versions,
blocks, flights and their lock, shared with readahead), ``block_buffers`` (memory), ``block_files`` (disk),
``block_readahead`` (readahead), ``range_source`` (``RangeSource``: the one fetch contract),
``range_streams`` (open requests between readahead runs), ``sequential`` (sequential detection).

Locks (names of docs/architecture.md's *mount lock order*; pairwise):

- ``BlockIndex.lock`` guards the index (``blocks``, ``ram``, ``paths``, ``flights``, ``size``),
  ``counters``, ``Readahead.inflight``, every field of ``Block``/``PathState``/``Flight`` and
  ``Buffer.refs``. Held for dictionary work only: never across a fetch, a disk read or write, a wait on
  a flight's future or a pool submit.
- ``BlockIndex.lock`` before ``BufferPool._lock`` (``_idle`` and ``allocated``; a leaf): a buffer whose
  last reference goes returns to the pool under the index's lock.

Leaves never taken under ``BlockIndex.lock``: ``SequentialDetector._lock`` (sequential.py),
``ParkedStreams._lock`` (range_streams.py), the ``_pending_writes`` semaphore (bounds the blocks queued for
the writer thread).
``BlockIndex.closed`` and ``_last_read`` are written without a lock (flags: a stale read costs one extra
fetch or one late memory release).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Hashable
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

from .block_buffers import Buffer, BufferPool, copy_out
from .block_files import BlockFiles
from .block_index import Block, BlockFetchError, BlockIndex, CacheCounters, FileVersion, Flight, block_key
from .block_readahead import Readahead
from .range_source import RangeSource
from .range_streams import Fill
from .sequential import SequentialDetector

__all__ = ["BlockCache", "BlockFetchError", "CacheCounters", "FileVersion"]

log = logging.getLogger(__name__)

#: Random reads fetch just the pages they need ("pieces", uncached here: the kernel's page cache keeps
#: them) until this fraction of a block was fetched that way; then the block is fetched whole.
PIECE_BUDGET_FRACTION = 0.25
PAGE_SIZE = 4096
#: Fetched blocks waiting for the writer thread (each holds block_size bytes of memory).
MAX_PENDING_WRITES = 4



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
        self._buffers = BufferPool(block_size, keep=self.ram_blocks + 2)
        self._index = BlockIndex(limit_bytes, self.ram_blocks, self._buffers)
        self.counters = self._index.counters
        self._detector = SequentialDetector()
        self._readahead = Readahead(self._index, self.fetch_block, block_size, readahead_blocks)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="algofs-block-writer")
        self._pending_writes = threading.BoundedSemaphore(MAX_PENDING_WRITES)
        self.memory_idle_seconds = memory_idle_seconds
        self._last_read = time.monotonic()
        self._stop = threading.Event()
        if memory_idle_seconds > 0:
            threading.Thread(target=self._release_memory_when_idle, name="algofs-memory-release",
                             daemon=True).start()

    # ----------------------------------------------------------------------------------------- reading
    def read(self, version: FileVersion, offset: int, size: int, source: RangeSource,
             stream_id: Hashable | None = None) -> bytes:
        """Bytes [offset, offset+size) clamped to version.size; short only at EOF.

        ``source`` performs the ranged GETs; its errors reach the readers that needed the block.
        """
        if offset < 0 or size < 0:
            raise ValueError("offset and size must be >= 0")
        out = bytearray(max(0, min(offset + size, version.size) - offset))
        with memoryview(out) as view:
            self.read_into(version, offset, view, source, stream_id)
        return bytes(out)

    def read_into(self, version: FileVersion, offset: int, out: memoryview, source: RangeSource,
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
        self._remove_files(self._index.note_version(version))
        bs = self.block_size
        first, last = offset // bs, (end - 1) // bs
        access = self._detector.observe(version.path if stream_id is None else stream_id, offset, end)
        if access.sequential and self._readahead.enabled:
            self._readahead.schedule(version, first, last, source)
        piecewise = not access.sequential and not access.from_start
        filled = 0
        for index in range(first, last + 1):
            base = index * bs
            lo, hi = max(offset, base) - base, min(end, base + bs) - base
            part = out[filled:filled + hi - lo]
            if not (piecewise and self._read_piece(version, index, lo, hi, part, source)):
                self._read_block_into(version, index, lo, hi, part, source)
            filled += hi - lo
        return filled

    def _read_piece(self, version: FileVersion, index: int, lo: int, hi: int, out: memoryview,
                    source: RangeSource) -> bool:
        """A random read of a block nobody has: fetch only its pages. False = read the block instead
        (it is cached or coming, or random reads already fetched a good part of it piecewise)."""
        key = block_key(version, index)
        base = index * self.block_size
        start = base + lo - lo % PAGE_SIZE
        stop = min(base + -(-hi // PAGE_SIZE) * PAGE_SIZE, version.size)
        idx = self._index
        with idx.lock:
            state = idx.current_locked(version)
            if state is None or not idx.missing_locked(key):
                return False
            used = state.piece_bytes.get(index, 0) + stop - start
            if used > self.block_size * PIECE_BUDGET_FRACTION:
                return False
            state.piece_bytes[index] = used
        data = source(start, stop)
        if len(data) != stop - start:
            raise BlockFetchError(f"{version.path}: asked for bytes {start}-{stop - 1}, got {len(data)} "
                                  "bytes (file changed remotely?)")
        with idx.lock:
            self.counters.piece_fetches += 1
            self.counters.piece_bytes += len(data)
            self.counters.bytes_fetched += len(data)
        with memoryview(data) as view:
            out[:] = view[base + lo - start:base + hi - start]
        return True

    def _block_length(self, version: FileVersion, index: int) -> int:
        return min(self.block_size, version.size - index * self.block_size)

    def _read_block_into(self, version: FileVersion, index: int, lo: int, hi: int, out: memoryview,
                         source: RangeSource) -> None:
        key = block_key(version, index)
        idx = self._index
        retried_readahead = False
        while True:
            buffer = None
            with idx.lock:
                block = idx.blocks.get(key)
                if block is not None and not block.stale:
                    block.pins += 1
                    idx.blocks.move_to_end(key)
                    self.counters.hits += 1
                    buffer = block.ram
                    if buffer is not None:
                        buffer.refs += 1
                        idx.ram.move_to_end(key)
                        self.counters.memory_hits += 1
                else:
                    block = None
                    found = idx.flights.get(key)
                    owner = found is None
                    flight = found or idx.start_flight_locked(key, version, readahead=False)
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
                fill = functools.partial(source.into, index * self.block_size)
                buffer = self.fetch_block(key, version, index, fill, flight, reader=True)
            else:
                try:
                    buffer = flight.future.result()
                except Exception:
                    if not flight.readahead or retried_readahead:
                        raise
                    retried_readahead = True  # the readahead failed; try once with our own fetch
                    continue
            try:
                copy_out(buffer, lo, hi, out)
            finally:
                with idx.lock:
                    idx.unref_locked(buffer)
            return

    def _copy_cached(self, block: Block, buffer: Buffer | None, lo: int, hi: int, out: memoryview) -> bool:
        """Copy a pinned block's bytes (memory, else its file) and unpin it; False if the file is gone."""
        ok = False
        idx = self._index
        try:
            if buffer is not None:
                copy_out(buffer, lo, hi, out)
                ok = True
            else:
                ok = self._files.read_into(block.name, lo, out) == hi - lo
        except FileNotFoundError:
            pass
        finally:
            with idx.lock:
                block.pins -= 1
                if buffer is not None:
                    idx.unref_locked(buffer)
                if not ok and idx.blocks.get(block.key) is block:
                    log.warning("block file %s missing or short; fetching it again", block.name)
                    idx.drop_block_locked(block)
                victims = idx.collect_victims_locked()
                if block.pins == 0 and block.stale:
                    victims.append(block.name)
            self._remove_files(victims)
        return ok

    # ---------------------------------------------------------------------------------------- fetching
    def _receive(self, fill: Fill, start: int, length: int) -> Buffer:
        """One block into a pooled buffer through ``fill`` (a ranged GET's, or an open stream's)."""
        mem = self._buffers.take()
        try:
            with memoryview(mem) as view:
                got = fill(view[:length])
        except BaseException:
            self._buffers.give(mem)
            raise
        buffer = Buffer(mem, got, pooled=True)
        if buffer.length != length:
            self._index.release(buffer)
            raise BlockFetchError(f"asked for bytes {start}-{start + length - 1}, got {buffer.length} bytes "
                                  "(file changed remotely?)")
        return buffer

    def fetch_block(self, key: str, version: FileVersion, index: int, fill: Fill, flight: Flight,
                    reader: bool = False) -> Buffer:
        """Fetch a block through ``fill``, hand it to waiters at once, then write it to disk (the
        ``FetchBlock`` of ``block_readahead``).

        The flight stays registered until the block is on disk, so readers arriving meanwhile copy the
        bytes from memory instead of fetching again. A demand reader (``reader``: it gets one reference
        to the buffer) leaves the disk write to the writer thread unless too many writes are pending.
        """
        try:
            try:
                buffer = self._receive(fill, index * self.block_size, self._block_length(version, index))
            except BlockFetchError as exc:
                raise BlockFetchError(f"{version.path}: {exc.strerror}") from None
        except BaseException as exc:
            self._index.finish_flight(key, flight, None, False)
            flight.future.set_exception(exc)
            raise
        with self._index.lock:
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
            stored = self._store(flight.name, buffer)
            self._remove_files(self._index.finish_flight(key, flight, buffer, stored))
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

    def _remove_files(self, names: list[str]) -> None:
        for name in names:
            self._files.remove(name)

    # --------------------------------------------------------------------------------------- control
    def invalidate(self, path: str) -> None:
        """Drop every cached block of ``path`` (all versions) and its parked streams; running fetches
        won't be cached."""
        with self._index.lock:
            victims = self._index.drop_path_locked(path)
        self._remove_files(victims)
        self._readahead.forget(path)

    def release_memory(self) -> None:
        """Let the memory tier and the idle block buffers go; the blocks stay on disk."""
        idx = self._index
        with idx.lock:
            for block in list(idx.ram.values()):
                idx.leave_ram_locked(block)
        if self._buffers.drop_idle():
            self.counters.memory_releases += 1

    def _release_memory_when_idle(self) -> None:
        interval = min(self.memory_idle_seconds / 2, 5.0)
        while not self._stop.wait(interval):
            idle_for = time.monotonic() - self._last_read
            if idle_for >= self.memory_idle_seconds and (self._index.ram or self._buffers.idle()):
                self.release_memory()

    def clear(self) -> None:
        with self._index.lock:
            victims = self._index.clear_locked()
        self._remove_files(victims)
        self._readahead.forget()

    def stats(self) -> dict:
        """Counters and per-file entries, counting blocks whose disk write is still queued.

        The writer thread is FIFO with one worker: a no-op submitted now finishes after every queued block
        write, so a caller who just read a file sees it in ``entries``.
        """
        self._drain_writes()
        idx = self._index
        with idx.lock:
            streams = self._readahead.streams
            return {
                **asdict(self.counters),
                "size_bytes": idx.size, "limit_bytes": self.limit_bytes, "blocks": len(idx.blocks),
                "block_size": self.block_size, "memory_blocks": len(idx.ram),
                "memory_buffers": self._buffers.allocated, "direct_io": self._files.direct_io,
                "pending_blocks": len(idx.flights),
                "streams_resumed": streams.resumed, "streams_parked": len(streams),
                "entries": idx.entries_locked(),
            }

    def _drain_writes(self, timeout: float = 5.0) -> None:
        try:
            self._writer.submit(_no_op).result(timeout)
        except (RuntimeError, futures.TimeoutError):  # closing, or a disk too slow to wait for: report as is
            pass

    def close(self) -> None:
        """Stop readahead and delete the block files (the index does not outlive the process)."""
        idx = self._index
        if idx.closed:
            return
        idx.closed = True
        self._stop.set()
        self._readahead.close()  # queued readahead fails fast once the index is closed
        self._writer.shutdown(wait=True)
        with idx.lock:
            for block in list(idx.ram.values()):
                idx.leave_ram_locked(block)
            idx.blocks.clear()
            idx.paths.clear()
            idx.size = 0
        self._files.close()

    def __enter__(self) -> BlockCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _no_op() -> None:
    pass
