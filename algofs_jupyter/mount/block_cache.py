"""On-disk block cache for file contents, with single-flight downloads and sequential readahead.

Files are cut into fixed blocks (8 MiB by default) fetched with one ranged GET each: one HTTP request per
FUSE read is 10-50x slower. A block is cached under a hash of (path, size, etag, block index), so a remote
change (a new ``FileVersion``) makes the old blocks unreachable; they are deleted as soon as the new
version is seen. The last block of a file is an ordinary (shorter) block, so reading a parquet/zip footer
fetches one block, not the file.

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
  pool, with a global cap on prefetches in flight so memory stays bounded.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import itertools
import logging
import mmap
import os
import secrets
import shutil
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from concurrent import futures
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

from .range_streams import OpenStream, ParkedStreams
from .readahead import SequentialDetector

log = logging.getLogger(__name__)

Fetch = Callable[[int, int], bytes | bytearray]
"""``fetch(start, end)`` returns the bytes; a fetch may also offer ``fetch.into(start, buffer) -> count``,
which fills a buffer the cache provides (no allocation per block)."""
INSTANCE_PREFIX = "blocks-"
#: O_DIRECT needs offsets, lengths and buffer addresses aligned to the device's logical block size.
DIRECT_IO_ALIGN = 4096
#: Random reads fetch just the pages they need ("pieces", uncached here: the kernel's page cache keeps
#: them) until this fraction of a block was fetched that way; then the block is fetched whole.
PIECE_BUDGET_FRACTION = 0.25
PAGE_SIZE = 4096
#: Fetched blocks waiting for the writer thread (each holds block_size bytes of memory).
MAX_PENDING_WRITES = 4
LOCK_NAME = ".lock"


class FileVersion(NamedTuple):
    """What identifies the bytes of a file: a change of size or etag means new contents."""

    path: str
    size: int
    etag: str  # may be "" (then the caller folds size+mtime into it)


class BlockFetchError(OSError):
    """A fetch returned a different number of bytes than the block holds (the file changed remotely)."""

    def __init__(self, message: str):
        super().__init__(errno.EIO, message)


class _Buffer:
    """A block's bytes in memory, shared by its fetch, the memory tier and readers copying out of it.

    ``refs`` counts the holders; at zero a pooled buffer goes back to the pool.
    """

    __slots__ = ("mem", "length", "refs", "pooled")

    def __init__(self, mem: mmap.mmap | bytes | bytearray, length: int, pooled: bool):
        self.mem = mem
        self.length = length
        self.refs = 0
        self.pooled = pooled


class BufferPool:
    """Reusable page-aligned buffers of one block each.

    Reusing memory matters: a fresh multi-MiB buffer per block means a page fault per 4 KiB on first
    touch, which on virtual machines costs more than receiving the bytes. mmap'd buffers are also
    page-aligned, as ``O_DIRECT`` writes need. At most ``keep`` idle buffers are kept.
    """

    def __init__(self, size: int, keep: int):
        self.size = size
        self.keep = keep
        self._idle: list[mmap.mmap] = []
        self._lock = threading.Lock()
        self.allocated = 0

    def take(self) -> mmap.mmap:
        with self._lock:
            if self._idle:
                return self._idle.pop()
            self.allocated += 1
        return _anonymous_buffer(self.size)

    def give(self, mem: mmap.mmap) -> None:
        """Keep ``mem`` for reuse, or drop it (unmapped once no view of it is left, e.g. in a traceback)."""
        with self._lock:
            if len(self._idle) < self.keep:
                self._idle.append(mem)
            else:
                self.allocated -= 1

    def idle(self) -> int:
        return len(self._idle)

    def drop_idle(self) -> int:
        """Unmap the idle buffers (those still in use come back later and are kept or dropped then)."""
        with self._lock:
            dropped = len(self._idle)
            self._idle.clear()
            self.allocated -= dropped
        return dropped


def _anonymous_buffer(size: int) -> mmap.mmap:
    """Private anonymous memory, backed by huge pages where the kernel allows (``madvise`` mode).

    ``mmap.mmap(-1, n)`` would be *shared* anonymous memory (shmem, 4 KiB pages, counted as Shmem): nothing
    here is shared with another process. Huge pages cut the first-touch faults and the TLB misses of
    copying out of the buffer; on this project's VMs the cold-read gain is within noise (median of 6
    interleaved 1 GiB reads: 1.17 vs 1.22 s).
    """
    mem = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    if hasattr(mmap, "MADV_HUGEPAGE"):
        try:
            mem.madvise(mmap.MADV_HUGEPAGE)
        except OSError:  # THP disabled or not built in: 4 KiB pages it is
            pass
    return mem


class _Block:
    __slots__ = ("key", "name", "path", "length", "pins", "stale", "ram")

    def __init__(self, key: str, name: str, path: str, length: int):
        self.key = key
        self.name = name  # file name: the key plus a serial, so a re-fetch never overwrites a file in use
        self.path = path
        self.length = length
        self.pins = 0
        self.stale = False
        self.ram: _Buffer | None = None  # set while the block is in the memory tier


class _PathState:
    """The version of a path whose blocks are cached, and the keys of those blocks."""

    __slots__ = ("version", "keys", "cached_bytes", "flights", "piece_bytes", "stream_queue")

    def __init__(self, version: FileVersion):
        self.version = version
        self.keys: set[str] = set()
        self.cached_bytes = 0
        self.flights = 0
        self.piece_bytes: dict[int, int] = {}  # block index -> bytes fetched piecewise
        #: Blocks the file's stream worker fetches next, in order; None when no worker runs.
        self.stream_queue: deque[tuple[str, int, _Flight]] | None = None


class _Flight:
    __slots__ = ("future", "prefetch", "state", "name", "joined", "buffer")

    def __init__(self, state: _PathState, prefetch: bool, name: str):
        self.future: Future[_Buffer] = Future()
        self.name = name
        self.prefetch = prefetch
        self.state = state
        self.joined = 0  # readers waiting for the buffer; each is owed one reference
        self.buffer: _Buffer | None = None


def block_key(version: FileVersion, index: int) -> str:
    raw = f"{version.path}\0{version.size}\0{version.etag}\0{index}".encode("utf-8", "surrogatepass")
    return hashlib.blake2b(raw, digest_size=16).hexdigest()


class _BlockFiles:
    """Block files in a private, locked directory: ``<dir>/<name[:2]>/<name>``."""

    def __init__(self, cache_dir: Path):
        cache_dir.mkdir(parents=True, exist_ok=True)
        remove_abandoned_instances(cache_dir)
        self.root = cache_dir / f"{INSTANCE_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
        self.root.mkdir(mode=0o700)
        self._lock_fd = os.open(self.root / LOCK_NAME, os.O_WRONLY | os.O_CREAT, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._subdirs: set[str] = set()
        self.direct_io = True  # until the file system refuses it

    def file(self, name: str) -> str:
        return os.path.join(self.root, name[:2], name)

    def write(self, name: str, buffer: _Buffer) -> None:
        sub = name[:2]
        if sub not in self._subdirs:
            os.makedirs(os.path.join(self.root, sub), exist_ok=True)
            self._subdirs.add(sub)
        path = self.file(name)
        length = buffer.length
        padded = -(-length // DIRECT_IO_ALIGN) * DIRECT_IO_ALIGN
        if self.direct_io and buffer.pooled and padded <= len(buffer.mem):
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_DIRECT, 0o600)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                self.direct_io = False  # tmpfs and some others refuse O_DIRECT
            else:
                try:
                    with memoryview(buffer.mem) as view:
                        _write_all(fd, view[:padded])  # the tail past length is cut off below
                    if padded != length:
                        os.ftruncate(fd, length)
                    return
                except OSError as exc:
                    if exc.errno != errno.EINVAL:
                        raise
                    self.direct_io = False
                finally:
                    os.close(fd)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with memoryview(buffer.mem) as view:
                _write_all(fd, view[:length])
        finally:
            os.close(fd)

    def read_into(self, name: str, offset: int, out: memoryview) -> int:
        fd = os.open(self.file(name), os.O_RDONLY)
        try:
            filled = 0
            while filled < len(out):
                got = os.preadv(fd, [out[filled:]], offset + filled)
                if not got:
                    break
                filled += got
            return filled
        finally:
            os.close(fd)

    def remove(self, name: str) -> None:
        try:
            os.unlink(self.file(name))
        except FileNotFoundError:
            pass

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
        os.close(self._lock_fd)


def remove_abandoned_instances(cache_dir: Path) -> None:
    """Delete block directories whose owner is gone (their lock can be taken)."""
    for entry in cache_dir.glob(INSTANCE_PREFIX + "*"):
        try:
            fd = os.open(entry / LOCK_NAME, os.O_WRONLY | os.O_CREAT, 0o600)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue  # a live cache instance owns it
        shutil.rmtree(entry, ignore_errors=True)
        os.close(fd)


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
        self._files = _BlockFiles(Path(cache_dir))
        self._lock = threading.Lock()
        self._blocks: OrderedDict[str, _Block] = OrderedDict()  # LRU order: oldest first
        self._ram: OrderedDict[str, _Block] = OrderedDict()  # the memory tier, LRU order
        self._paths: dict[str, _PathState] = {}
        self._flights: dict[str, _Flight] = {}
        self._size = 0
        self._hits = 0
        self._ram_hits = 0
        self._misses = 0
        self._bytes_fetched = 0
        self._fetches = 0
        self._piece_fetches = 0
        self._piece_bytes = 0
        self._prefetched = 0
        self._prefetch_scheduled = 0
        self._evicted = 0
        self._prefetch_inflight = 0
        self._max_prefetch_inflight = 2 * readahead_blocks
        self._buffers = BufferPool(block_size, keep=self.ram_blocks + 2)
        self._detector = SequentialDetector()
        self._serial = itertools.count()
        self._pool = (ThreadPoolExecutor(max_workers=max(1, min(readahead_blocks, 4)),
                                         thread_name_prefix="algofs-readahead")
                      if readahead_blocks else None)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="algofs-block-writer")
        self._streams = ParkedStreams()
        self._pending_writes = threading.BoundedSemaphore(MAX_PENDING_WRITES)
        self._closed = False
        self.memory_idle_seconds = memory_idle_seconds
        self._last_read = time.monotonic()
        self._memory_releases = 0
        self._stop = threading.Event()
        if memory_idle_seconds > 0:
            threading.Thread(target=self._release_memory_when_idle, name="algofs-memory-release",
                             daemon=True).start()

    # ----------------------------------------------------------------------------------------- reading
    def read(self, version: FileVersion, offset: int, size: int, fetch: Fetch,
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

    def read_into(self, version: FileVersion, offset: int, out: memoryview, fetch: Fetch,
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
        if access.sequential and self._pool is not None:
            self._schedule_prefetch(version, first, last, fetch)
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
                    fetch: Fetch) -> bool:
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
            self._piece_fetches += 1
            self._piece_bytes += len(data)
            self._bytes_fetched += len(data)
        with memoryview(data) as view:
            out[:] = view[base + lo - start:base + hi - start]
        return True

    def _block_length(self, version: FileVersion, index: int) -> int:
        return min(self.block_size, version.size - index * self.block_size)

    def _read_block_into(self, version: FileVersion, index: int, lo: int, hi: int, out: memoryview,
                         fetch: Fetch) -> None:
        key = block_key(version, index)
        retried_prefetch = False
        while True:
            buffer = None
            with self._lock:
                block = self._blocks.get(key)
                if block is not None and not block.stale:
                    block.pins += 1
                    self._blocks.move_to_end(key)
                    self._hits += 1
                    buffer = block.ram
                    if buffer is not None:
                        buffer.refs += 1
                        self._ram.move_to_end(key)
                        self._ram_hits += 1
                else:
                    block = None
                    flight = self._flights.get(key)
                    owner = flight is None
                    if owner:
                        flight = self._start_flight_locked(key, version, prefetch=False)
                    elif flight.buffer is not None:  # fetched, its disk write still queued
                        flight.buffer.refs += 1
                        self._hits += 1
                        self._ram_hits += 1
                    else:
                        flight.joined += 1
                    if flight.buffer is None:
                        self._misses += 1
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
                _copy_out(buffer, lo, hi, out)
            finally:
                with self._lock:
                    self._unref_locked(buffer)
            return

    def _copy_cached(self, block: _Block, buffer: _Buffer | None, lo: int, hi: int, out: memoryview) -> bool:
        """Copy a pinned block's bytes (memory, else its file) and unpin it; False if the file is gone."""
        ok = False
        try:
            if buffer is not None:
                _copy_out(buffer, lo, hi, out)
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
    def _start_flight_locked(self, key: str, version: FileVersion, prefetch: bool) -> _Flight:
        state = self._paths.get(version.path)
        if state is None:  # evicted since read() noted the version
            state = self._paths[version.path] = _PathState(version)
        elif state.version != version:  # another reader saw a different version last: don't cache ours
            state = _PathState(version)
        flight = _Flight(state, prefetch, f"{key}-{next(self._serial)}")
        state.flights += 1
        self._flights[key] = flight
        return flight

    def _receive(self, fetch: Fetch, start: int, length: int) -> _Buffer:
        """One ranged GET into a pooled buffer (or the fetch's own bytes when it cannot fill one)."""
        into = getattr(fetch, "into", None)
        if into is None:
            data = fetch(start, start + length)
            buffer = _Buffer(data, len(data), pooled=False)
        else:
            mem = self._buffers.take()
            try:
                with memoryview(mem) as view:
                    got = into(start, view[:length])
            except BaseException:
                self._buffers.give(mem)
                raise
            buffer = _Buffer(mem, got, pooled=True)
        if buffer.length != length:
            self._release(buffer)
            raise BlockFetchError(f"asked for bytes {start}-{start + length - 1}, got {buffer.length} bytes "
                                  "(file changed remotely?)")
        return buffer

    def _fetch_block(self, key: str, version: FileVersion, index: int, fetch: Fetch,
                     flight: _Flight, reader: bool = False) -> _Buffer:
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
            self._fetches += 1
            self._bytes_fetched += buffer.length
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

    def _store_and_finish(self, key: str, flight: _Flight, buffer: _Buffer, pending: bool) -> None:
        try:
            self._finish_flight(key, flight, buffer, self._store(flight.name, buffer))
        finally:
            if pending:
                self._pending_writes.release()

    def _store(self, name: str, buffer: _Buffer) -> bool:
        try:
            self._files.write(name, buffer)
            return True
        except OSError as exc:  # disk full, cache dir gone: serve the data uncached
            log.warning("cannot store block %s: %s", name, exc)
            self._files.remove(name)
            return False

    def _finish_flight(self, key: str, flight: _Flight, buffer: _Buffer | None, stored: bool) -> None:
        """Retire a flight; a stored block joins the index and the memory tier with the flight's reference."""
        victims: list[str] = []
        with self._lock:
            if self._flights.get(key) is flight:
                del self._flights[key]
            state = flight.state
            state.flights -= 1
            current = self._paths.get(state.version.path) is state
            if stored and current and key not in self._blocks:
                block = _Block(key, flight.name, state.version.path, buffer.length)
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

    def _schedule_prefetch(self, version: FileVersion, first: int, last: int, fetch: Fetch) -> None:
        """Keep a sequential reader (now reading blocks ``first..last``) ``readahead_blocks`` to twice that
        ahead.

        When a block up to ``readahead_blocks`` past ``last`` is neither cached nor coming, the
        ``readahead_blocks`` blocks from there are fetched. If the fetch can stream (``fetch.stream``), one
        worker per file fetches them in order from one open request (see ``range_streams``); blocks the
        reader needs later join its queue, so the request continues as long as the reader does. Otherwise
        each block is fetched on the pool. A reader that caught up with readahead (its own block is
        missing) joins the first block's flight instead of fetching it alone.
        """
        count = -(-version.size // self.block_size)
        streams = getattr(fetch, "stream", None) is not None
        run: list[tuple[str, int, _Flight]] = []
        start_worker = False
        with self._lock:
            state = self._paths.get(version.path)
            if state is None or state.version != version or self._closed:
                return
            start = next((index for index in range(first, min(last + 1 + self.readahead_blocks, count))
                          if block_key(version, index) not in self._blocks
                          and block_key(version, index) not in self._flights), None)
            if start is None:
                return
            stop = min(start + self.readahead_blocks, count)
            room = self._max_prefetch_inflight - self._prefetch_inflight
            if start > last and self._prefetch_inflight and room < stop - start:
                return  # wait for running prefetches rather than fetch a short run
            for index in range(start, stop):
                key = block_key(version, index)
                if key in self._blocks or key in self._flights:
                    break  # runs are contiguous
                run.append((key, index, self._start_flight_locked(key, version, prefetch=True)))
                self._prefetch_inflight += 1
                self._prefetch_scheduled += 1
            if streams and run:
                queue = state.stream_queue
                if queue is None:
                    state.stream_queue = deque(run)
                    start_worker = True
                    run = []
                elif queue and queue[-1][1] + 1 == start:
                    queue.extend(run)  # the running worker continues its request with these
                    run = []
                # else: not where the worker is heading (another reader of the file): fetch block by block
        jobs: list[tuple[Callable[..., None], tuple]] = [(self._prefetch, (version, job, fetch))
                                                          for job in run]
        if start_worker:
            jobs.insert(0, (self._stream_worker, (version, state, fetch)))
        for method, args in jobs:
            try:
                self._pool.submit(method, *args)
            except RuntimeError:  # pool shut down (closing)
                method(*args)

    def _prefetch(self, version: FileVersion, job: tuple[str, int, _Flight], fetch: Fetch) -> None:
        """Fetch one block ahead of the reader."""
        key, index, flight = job
        try:
            if self._closed:  # resolve the flight quickly so nobody waits on it
                raise OSError(errno.EIO, "block cache is closing")
            self._fetch_block(key, version, index, fetch, flight)
        except Exception as exc:
            self._abandon(version, [job], exc)
            return
        with self._lock:
            self._prefetched += 1
            self._prefetch_inflight -= 1

    def _stream_worker(self, version: FileVersion, state: _PathState, fetch: Fetch) -> None:
        """Fetch the file's queued blocks in order through one open request; when the queue is empty (the
        reader is far enough behind) park the request, so the next blocks continue it."""
        stream: OpenStream | None = None
        job: tuple[str, int, _Flight] | None = None
        try:
            while True:
                with self._lock:
                    queue = state.stream_queue
                    job = queue.popleft() if queue and not self._closed else None
                if job is None:
                    if stream is not None:
                        if stream.offset < version.size and not self._closed:
                            self._streams.park(stream)
                        else:
                            stream.close()
                        stream = None
                    with self._lock:
                        if state.stream_queue and not self._closed:
                            continue  # queued meanwhile
                        leftover, state.stream_queue = list(state.stream_queue or ()), None
                    self._abandon(version, leftover, OSError(errno.EIO, "block cache is closing"))
                    return
                key, index, flight = job
                start = index * self.block_size
                if stream is not None and stream.offset != start:
                    stream.close()
                    stream = None
                stream = stream or self._streams.take(version, start)
                if stream is None:  # ask for the rest of the file: later blocks continue this request
                    stream = OpenStream(version, version.path, start, fetch.stream(start, version.size))
                self._fetch_block(key, version, index, _StreamPart(stream.fill), flight)
                stream.offset += self._block_length(version, index)
                job = None
                with self._lock:
                    self._prefetched += 1
                    self._prefetch_inflight -= 1
        except Exception as exc:
            if stream is not None:
                stream.close()
            with self._lock:
                leftover, state.stream_queue = list(state.stream_queue or ()), None
            self._abandon(version, ([job] if job else []) + leftover, exc)

    def _abandon(self, version: FileVersion, jobs: list[tuple[str, int, _Flight]], exc: Exception) -> None:
        """Prefetches that will not happen: their readers get ``exc`` and fetch on their own."""
        if not jobs:
            return
        log.debug("prefetch of %s blocks %d-%d failed: %s", version.path, jobs[0][1], jobs[-1][1], exc)
        for key, _index, flight in jobs:
            if not flight.future.done():  # a failing _fetch_block resolved its own flight
                self._finish_flight(key, flight, None, False)
                flight.future.set_exception(exc)
        with self._lock:
            self._prefetch_inflight -= len(jobs)

    # ------------------------------------------------------------------------------- memory buffers
    def _unref_locked(self, buffer: _Buffer) -> None:
        buffer.refs -= 1
        if buffer.refs == 0:
            self._release(buffer)

    def _release(self, buffer: _Buffer) -> None:
        if buffer.pooled:
            self._buffers.give(buffer.mem)
        buffer.mem = b""

    def _leave_ram_locked(self, block: _Block) -> None:
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
            self._paths[version.path] = _PathState(version)
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

    def _drop_block_locked(self, block: _Block) -> None:
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
        self._evicted += len(picked)
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
        self._streams.drop(path)

    def release_memory(self) -> None:
        """Let the memory tier and the idle block buffers go; the blocks stay on disk."""
        with self._lock:
            for block in list(self._ram.values()):
                self._leave_ram_locked(block)
        if self._buffers.drop_idle():
            self._memory_releases += 1

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
        self._streams.drop()

    def stats(self) -> dict:
        """Counters and per-file entries, counting blocks whose disk write is still queued.

        The writer thread is FIFO with one worker: a no-op submitted now finishes after every queued block
        write, so a caller who just read a file sees it in ``entries``.
        """
        self._drain_writes()
        with self._lock:
            entries = [{"path": path, "cached_bytes": state.cached_bytes, "size": state.version.size}
                       for path, state in self._paths.items() if state.cached_bytes]
            return {
                "size_bytes": self._size, "limit_bytes": self.limit_bytes, "blocks": len(self._blocks),
                "block_size": self.block_size, "hits": self._hits, "misses": self._misses,
                "memory_hits": self._ram_hits, "memory_blocks": len(self._ram),
                "memory_buffers": self._buffers.allocated, "memory_releases": self._memory_releases,
                "direct_io": self._files.direct_io,
                "bytes_fetched": self._bytes_fetched, "fetches": self._fetches,
                "piece_fetches": self._piece_fetches, "piece_bytes": self._piece_bytes,
                "prefetch_scheduled": self._prefetch_scheduled, "prefetched_blocks": self._prefetched,
                "evicted_blocks": self._evicted, "pending_blocks": len(self._flights),
                "streams_resumed": self._streams.resumed, "streams_parked": len(self._streams),
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
        if self._pool is not None:
            self._pool.shutdown(wait=True)  # queued prefetches fail fast once _closed is set
        self._writer.shutdown(wait=True)
        self._streams.drop()
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


class _StreamPart:
    """The next block of a streamed run, in the shape ``_receive`` expects of a fetch."""

    def __init__(self, fill: Callable[[memoryview], int]):
        self.into = lambda start, out: fill(out)

    def __call__(self, start: int, end: int) -> bytes:
        raise TypeError("stream parts fill buffers")


def _copy_out(buffer: _Buffer, lo: int, hi: int, out: memoryview) -> None:
    with memoryview(buffer.mem) as source:
        out[:hi - lo] = source[lo:hi]


def _write_all(fd: int, view: memoryview) -> None:
    while view:
        view = view[os.write(fd, view):]


def _no_op() -> None:
    pass
