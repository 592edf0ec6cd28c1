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
* **Hot path:** a dictionary lookup under one lock, then ``os.pread`` on the block file outside it.
  A block being read is pinned and never evicted.
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
import os
import secrets
import shutil
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent import futures
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

from .readahead import SequentialDetector

log = logging.getLogger(__name__)

Fetch = Callable[[int, int], bytes | bytearray]
INSTANCE_PREFIX = "blocks-"
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


class _Block:
    __slots__ = ("key", "name", "path", "length", "pins", "stale")

    def __init__(self, key: str, name: str, path: str, length: int):
        self.key = key
        self.name = name  # file name: the key plus a serial, so a re-fetch never overwrites a file in use
        self.path = path
        self.length = length
        self.pins = 0
        self.stale = False


class _PathState:
    """The version of a path whose blocks are cached, and the keys of those blocks."""

    __slots__ = ("version", "keys", "cached_bytes", "flights")

    def __init__(self, version: FileVersion):
        self.version = version
        self.keys: set[str] = set()
        self.cached_bytes = 0
        self.flights = 0


class _Flight:
    __slots__ = ("future", "prefetch", "state", "name")

    def __init__(self, state: _PathState, prefetch: bool, name: str):
        self.future: Future[bytes] = Future()
        self.name = name
        self.prefetch = prefetch
        self.state = state


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

    def file(self, name: str) -> str:
        return os.path.join(self.root, name[:2], name)

    def write(self, name: str, data: bytes) -> None:
        sub = name[:2]
        if sub not in self._subdirs:
            os.makedirs(os.path.join(self.root, sub), exist_ok=True)
            self._subdirs.add(sub)
        fd = os.open(self.file(name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)

    def pread(self, name: str, start: int, stop: int) -> bytes:
        fd = os.open(self.file(name), os.O_RDONLY)
        try:
            return os.pread(fd, stop - start, start)
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
                 readahead_blocks: int = 4):
        if block_size <= 0 or limit_bytes < 0 or readahead_blocks < 0:
            raise ValueError("block_size must be > 0, limit_bytes and readahead_blocks >= 0")
        self.block_size = block_size
        self.limit_bytes = limit_bytes
        self.readahead_blocks = readahead_blocks
        self._files = _BlockFiles(Path(cache_dir))
        self._lock = threading.Lock()
        self._blocks: OrderedDict[str, _Block] = OrderedDict()  # LRU order: oldest first
        self._paths: dict[str, _PathState] = {}
        self._flights: dict[str, _Flight] = {}
        self._size = 0
        self._hits = 0
        self._misses = 0
        self._bytes_fetched = 0
        self._fetches = 0
        self._prefetched = 0
        self._prefetch_scheduled = 0
        self._evicted = 0
        self._prefetch_inflight = 0
        self._max_prefetch_inflight = 2 * readahead_blocks
        self._detector = SequentialDetector()
        self._serial = itertools.count()
        self._pool = (ThreadPoolExecutor(max_workers=max(1, min(readahead_blocks, 4)),
                                         thread_name_prefix="algofs-readahead")
                      if readahead_blocks else None)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="algofs-block-writer")
        self._pending_writes = threading.BoundedSemaphore(MAX_PENDING_WRITES)
        self._closed = False

    # ----------------------------------------------------------------------------------------- reading
    def read(self, version: FileVersion, offset: int, size: int, fetch: Fetch,
             stream_id: Hashable | None = None) -> bytes:
        """Bytes [offset, offset+size) clamped to version.size; short only at EOF.

        ``fetch(start, end_exclusive)`` performs the ranged GET; its errors reach the readers that needed
        the block.
        """
        if offset < 0 or size < 0:
            raise ValueError("offset and size must be >= 0")
        end = min(offset + size, version.size)
        if offset >= end:
            return b""
        self._note_version(version)
        bs = self.block_size
        first, last = offset // bs, (end - 1) // bs
        if self._pool is not None and self._detector.observe(
                version.path if stream_id is None else stream_id, offset, end):
            self._schedule_prefetch(version, last + 1, fetch)
        if first == last:
            base = first * bs
            return self._read_block(version, first, offset - base, end - base, fetch)
        parts = []
        for index in range(first, last + 1):
            base = index * bs
            parts.append(self._read_block(version, index, max(offset, base) - base,
                                          min(end, base + bs) - base, fetch))
        return b"".join(parts)

    def _block_length(self, version: FileVersion, index: int) -> int:
        return min(self.block_size, version.size - index * self.block_size)

    def _read_block(self, version: FileVersion, index: int, lo: int, hi: int, fetch: Fetch) -> bytes:
        key = block_key(version, index)
        retried_prefetch = False
        while True:
            with self._lock:
                block = self._blocks.get(key)
                if block is not None and not block.stale:
                    block.pins += 1
                    self._blocks.move_to_end(key)
                    self._hits += 1
                    flight = None
                else:
                    block = None
                    self._misses += 1
                    flight = self._flights.get(key)
                    owner = flight is None
                    if owner:
                        flight = self._start_flight_locked(key, version, prefetch=False)
            if block is not None:
                data = self._read_cached(block, lo, hi)
                if data is not None:
                    return data
                continue  # block file vanished or was cut short: fetch again
            if owner:
                data = self._fetch_block(key, version, index, fetch, flight, background_store=True)
                return _slice(data, lo, hi)
            try:
                return _slice(flight.future.result(), lo, hi)
            except Exception:
                if not flight.prefetch or retried_prefetch:
                    raise
                retried_prefetch = True  # the prefetch failed; try once with our own fetch

    def _read_cached(self, block: _Block, lo: int, hi: int) -> bytes | None:
        """Read a pinned block's file and unpin it; None if the file vanished or is short."""
        data: bytes | None = None
        try:
            data = self._files.pread(block.name, lo, hi)
        except FileNotFoundError:
            pass
        finally:
            with self._lock:
                block.pins -= 1
                broken = data is None or len(data) != hi - lo
                if broken and self._blocks.get(block.key) is block:
                    log.warning("block file %s missing or short; fetching it again", block.name)
                    self._drop_block_locked(block)
                victims = self._collect_victims_locked()
                if block.pins == 0 and block.stale:
                    victims.append(block.name)
            self._remove_files(victims)
        return None if broken else data

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

    def _fetch_block(self, key: str, version: FileVersion, index: int, fetch: Fetch,
                     flight: _Flight, background_store: bool = False) -> bytes:
        """Fetch a block, hand it to waiters at once, then write it to disk.

        The flight stays registered until the block is on disk, so readers arriving meanwhile take the
        bytes from memory instead of fetching again. A demand reader leaves the (slow, first-touch page
        cache) disk write to the writer thread unless too many writes are pending.
        """
        start = index * self.block_size
        length = self._block_length(version, index)
        try:
            data = fetch(start, start + length)
            if not isinstance(data, (bytes, bytearray)):
                data = bytes(data)
            if len(data) != length:
                raise BlockFetchError(f"{version.path}: asked for bytes {start}-{start + length - 1}, "
                                      f"got {len(data)} bytes (file changed remotely?)")
        except BaseException as exc:
            self._finish_flight(key, flight, None, False)
            flight.future.set_exception(exc)
            raise
        with self._lock:
            self._fetches += 1
            self._bytes_fetched += length
        flight.future.set_result(data)
        if background_store and self._pending_writes.acquire(blocking=False):
            try:
                self._writer.submit(self._store_and_finish, key, flight, data, True)
                return data
            except RuntimeError:  # closing
                self._pending_writes.release()
        self._store_and_finish(key, flight, data, False)
        return data

    def _store_and_finish(self, key: str, flight: _Flight, data: bytes, pending: bool) -> None:
        try:
            self._finish_flight(key, flight, data, self._store(flight.name, data))
        finally:
            if pending:
                self._pending_writes.release()

    def _store(self, name: str, data: bytes) -> bool:
        try:
            self._files.write(name, data)
            return True
        except OSError as exc:  # disk full, cache dir gone: serve the data uncached
            log.warning("cannot store block %s: %s", name, exc)
            self._files.remove(name)
            return False

    def _finish_flight(self, key: str, flight: _Flight, data: bytes | None, stored: bool) -> None:
        victims: list[str] = []
        with self._lock:
            if self._flights.get(key) is flight:
                del self._flights[key]
            state = flight.state
            state.flights -= 1
            current = self._paths.get(state.version.path) is state
            if stored and current and key not in self._blocks:
                block = _Block(key, flight.name, state.version.path, len(data))
                self._blocks[key] = block
                state.keys.add(key)
                state.cached_bytes += block.length
                self._size += block.length
                victims = self._collect_victims_locked()
            elif stored:
                victims.append(flight.name)  # invalidated meanwhile: don't keep it
            if not state.keys and not state.flights and current:
                del self._paths[state.version.path]
        self._remove_files(victims)

    def _schedule_prefetch(self, version: FileVersion, first: int, fetch: Fetch) -> None:
        last = min(first + self.readahead_blocks, -(-version.size // self.block_size))
        jobs = []
        with self._lock:
            state = self._paths.get(version.path)
            if state is None or state.version != version or self._closed:
                return
            for index in range(first, last):
                if self._prefetch_inflight >= self._max_prefetch_inflight:
                    break
                key = block_key(version, index)
                if key in self._blocks or key in self._flights:
                    continue
                flight = self._start_flight_locked(key, version, prefetch=True)
                self._prefetch_inflight += 1
                self._prefetch_scheduled += 1
                jobs.append((key, index, flight))
        for key, index, flight in jobs:
            try:
                self._pool.submit(self._prefetch, key, version, index, fetch, flight)
            except RuntimeError:  # pool shut down (closing)
                self._prefetch(key, version, index, fetch, flight)

    def _prefetch(self, key: str, version: FileVersion, index: int, fetch: Fetch, flight: _Flight) -> None:
        if self._closed:
            fetch = _closed_fetch  # resolve the flight quickly so nobody waits on it
        try:
            self._fetch_block(key, version, index, fetch, flight)
            with self._lock:
                self._prefetched += 1
        except Exception as exc:
            log.debug("prefetch of %s block %d failed: %s", version.path, index, exc)
        finally:
            with self._lock:
                self._prefetch_inflight -= 1

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
                "bytes_fetched": self._bytes_fetched, "fetches": self._fetches,
                "prefetch_scheduled": self._prefetch_scheduled, "prefetched_blocks": self._prefetched,
                "evicted_blocks": self._evicted, "pending_blocks": len(self._flights),
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
        if self._pool is not None:
            self._pool.shutdown(wait=True)  # queued prefetches fail fast once _closed is set
        self._writer.shutdown(wait=True)
        with self._lock:
            self._blocks.clear()
            self._paths.clear()
            self._size = 0
        self._files.close()

    def __enter__(self) -> BlockCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _slice(data: bytes | bytearray, lo: int, hi: int) -> bytes:
    """``bytes`` of ``data[lo:hi]`` in one copy (FUSE hands the result to ctypes, which wants bytes)."""
    if isinstance(data, bytes):
        return data[lo:hi]
    with memoryview(data) as view:
        return bytes(view[lo:hi])


def _no_op() -> None:
    pass


def _closed_fetch(start: int, end: int) -> bytes:
    raise OSError(errno.EIO, "block cache is closing")
