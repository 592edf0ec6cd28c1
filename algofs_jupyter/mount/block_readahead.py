"""Readahead: the block cache fetches a sequential reader's next blocks of the file before it asks.

``Readahead`` works on the cache's ``BlockIndex`` (block_index.py, under its lock) and fetches through the
``FetchBlock`` it is given (``BlockCache.fetch_block``); it owns what only readahead uses: the thread pool,
the parked streams and the count of readahead blocks in flight. It imports nothing of ``block_cache``.

When a block up to ``readahead_blocks`` past the reader is neither cached nor coming, the
``readahead_blocks`` blocks from there are fetched (a *run*). One worker per file fetches them in order
from one open request (``RangeSource.stream``, see ``range_streams``); blocks the reader needs later join
its queue, so the request continues as long as the reader does. A run that is not where the worker is
heading (another reader of the file) is fetched block by block on the pool. Readahead errors are
swallowed: a reader that waited on a failed readahead block fetches the block itself.
"""

from __future__ import annotations

import errno
import functools
import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from .block_buffers import Buffer
from .block_index import BlockIndex, FileVersion, Flight, PathState, ReadaheadJob, block_key
from .range_source import RangeSource
from .range_streams import Fill, OpenStream, ParkedStreams

log = logging.getLogger(__name__)


class FetchBlock(Protocol):
    def __call__(self, key: str, version: FileVersion, index: int, fill: Fill, flight: Flight,
                 reader: bool = False) -> Buffer:
        """Fill block ``index`` through ``fill``, hand it to the flight's waiters, store it (see
        ``BlockCache.fetch_block``); resolves the flight with the error if it fails."""
        ...


class Readahead:
    def __init__(self, index: BlockIndex, fetch_block: FetchBlock, block_size: int, readahead_blocks: int):
        self.index = index
        self.fetch_block = fetch_block
        self.block_size = block_size
        self.readahead_blocks = readahead_blocks
        #: Readahead blocks being fetched; guarded by ``index.lock``.
        self.inflight = 0
        self.max_inflight = 2 * readahead_blocks
        self.streams = ParkedStreams()
        self.pool = (ThreadPoolExecutor(max_workers=max(1, min(readahead_blocks, 4)),
                                        thread_name_prefix="algofs-readahead")
                     if readahead_blocks else None)

    @property
    def enabled(self) -> bool:
        return self.pool is not None

    def _block_length(self, version: FileVersion, index: int) -> int:
        return min(self.block_size, version.size - index * self.block_size)

    def schedule(self, version: FileVersion, first: int, last: int, source: RangeSource) -> None:
        """Keep a sequential reader (now reading blocks ``first..last``) ``readahead_blocks`` to twice that
        ahead. A reader that caught up with readahead (its own block is missing) joins the first block's
        flight instead of fetching it alone."""
        index = self.index
        assert self.pool is not None
        count = -(-version.size // self.block_size)
        run: list[ReadaheadJob] = []
        start_worker = False
        with index.lock:
            state = index.current_locked(version)
            if state is None or index.closed:
                return
            start = next((i for i in range(first, min(last + 1 + self.readahead_blocks, count))
                          if index.missing_locked(block_key(version, i))), None)
            if start is None:
                return
            stop = min(start + self.readahead_blocks, count)
            room = self.max_inflight - self.inflight
            if start > last and self.inflight and room < stop - start:
                return  # wait for running readahead rather than fetch a short run
            for i in range(start, stop):
                key = block_key(version, i)
                if not index.missing_locked(key):
                    break  # runs are contiguous
                run.append((key, i, index.start_flight_locked(key, version, readahead=True)))
                self.inflight += 1
                index.counters.prefetch_scheduled += 1
            if run:
                queue = state.stream_queue
                if queue is None:
                    state.stream_queue = deque(run)
                    state.stream_next = run[-1][1] + 1
                    start_worker = True
                    run = []
                elif state.stream_next == start:
                    # the running worker continues its request with these (also when it has taken its
                    # last job and the queue is empty: it looks again before it stops)
                    queue.extend(run)
                    state.stream_next = run[-1][1] + 1
                    run = []
                # else: not where the worker is heading (another reader of the file): fetch block by block
        jobs: list[tuple[Callable[..., None], tuple]] = [(self._fetch_one, (version, job, source))
                                                          for job in run]
        if start_worker:
            jobs.insert(0, (self._stream_worker, (version, state, source)))
        for method, args in jobs:
            try:
                self.pool.submit(method, *args)
            except RuntimeError:  # pool shut down (closing)
                method(*args)

    def _fetch_one(self, version: FileVersion, job: ReadaheadJob, source: RangeSource) -> None:
        """Fetch one block ahead of the reader with a request of its own."""
        key, i, flight = job
        try:
            if self.index.closed:  # resolve the flight quickly so nobody waits on it
                raise OSError(errno.EIO, "block cache is closing")
            self.fetch_block(key, version, i, functools.partial(source.into, i * self.block_size), flight)
        except Exception as exc:
            self._abandon(version, [job], exc)
            return
        with self.index.lock:
            self.index.counters.prefetched_blocks += 1
            self.inflight -= 1

    def _stream_worker(self, version: FileVersion, state: PathState, source: RangeSource) -> None:
        """Fetch the file's queued blocks in order through one open request; when the queue is empty (the
        reader is far enough behind) park the request, so the next blocks continue it."""
        index = self.index
        stream: OpenStream | None = None
        job: ReadaheadJob | None = None
        try:
            while True:
                with index.lock:
                    queue = state.stream_queue
                    job = queue.popleft() if queue and not index.closed else None
                if job is None:
                    if stream is not None:
                        if stream.offset < version.size and not index.closed:
                            self.streams.park(stream)
                        else:
                            stream.close()
                        stream = None
                    with index.lock:
                        if state.stream_queue and not index.closed:
                            continue  # queued meanwhile
                        leftover, state.stream_queue = list(state.stream_queue or ()), None
                    self._abandon(version, leftover, OSError(errno.EIO, "block cache is closing"))
                    return
                key, i, flight = job
                start = i * self.block_size
                if stream is not None and stream.offset != start:
                    stream.close()
                    stream = None
                stream = stream or self.streams.take(version, start)
                if stream is None:  # ask for the rest of the file: later blocks continue this request
                    stream = OpenStream(version, version.path, start, source.stream(start, version.size))
                self.fetch_block(key, version, i, stream.fill, flight)
                stream.offset += self._block_length(version, i)
                job = None
                with index.lock:
                    index.counters.prefetched_blocks += 1
                    self.inflight -= 1
        except Exception as exc:
            if stream is not None:
                stream.close()
            with index.lock:
                leftover, state.stream_queue = list(state.stream_queue or ()), None
            self._abandon(version, ([job] if job else []) + leftover, exc)

    def _abandon(self, version: FileVersion, jobs: list[ReadaheadJob], exc: Exception) -> None:
        """Readahead blocks that will not come: their readers get ``exc`` and fetch on their own."""
        if not jobs:
            return
        log.debug("readahead of %s blocks %d-%d failed: %s", version.path, jobs[0][1], jobs[-1][1], exc)
        for key, _i, flight in jobs:
            if not flight.future.done():  # a failing fetch_block resolved its own flight
                self.index.finish_flight(key, flight, None, False)  # no block stored: no file to delete
                flight.future.set_exception(exc)
        with self.index.lock:
            self.inflight -= len(jobs)

    def forget(self, path: str | None = None) -> None:
        """Close the parked streams of ``path`` (all when None)."""
        self.streams.drop(path)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)  # queued readahead fails fast once the index is closed
        self.streams.drop()
