"""Readahead for the block cache: keep a sequential reader's next blocks coming.

``Prefetcher`` is part of ``BlockCache`` (it works on the cache's index under the cache's lock, see the
lock order in ``block_cache``); it owns what only readahead uses: the thread pool, the parked streams and
the count of prefetches in flight.

When a block up to ``readahead_blocks`` past the reader is neither cached nor coming, the
``readahead_blocks`` blocks from there are fetched. If the fetch can stream (``RangeStreamer``), one
worker per file fetches them in order from one open request (see ``range_streams``); blocks the reader
needs later join its queue, so the request continues as long as the reader does. Otherwise each block is
fetched on the pool. Prefetch errors are swallowed: a reader that waited on a failed prefetch fetches the
block itself.
"""

from __future__ import annotations

import errno
import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from .block_index import FileVersion, PathState, PrefetchJob, block_key
from .range_source import RangeReader, RangeStreamer, StreamPart
from .range_streams import OpenStream, ParkedStreams

if TYPE_CHECKING:
    from .block_cache import BlockCache

log = logging.getLogger(__name__)


class Prefetcher:
    def __init__(self, cache: BlockCache, readahead_blocks: int):
        self.cache = cache
        self.readahead_blocks = readahead_blocks
        #: Guarded by ``cache._lock``.
        self.inflight = 0
        self.max_inflight = 2 * readahead_blocks
        self.streams = ParkedStreams()
        self.pool = (ThreadPoolExecutor(max_workers=max(1, min(readahead_blocks, 4)),
                                        thread_name_prefix="algofs-readahead")
                     if readahead_blocks else None)

    @property
    def enabled(self) -> bool:
        return self.pool is not None

    def schedule(self, version: FileVersion, first: int, last: int, fetch: RangeReader) -> None:
        """Keep a sequential reader (now reading blocks ``first..last``) ``readahead_blocks`` to twice that
        ahead. A reader that caught up with readahead (its own block is missing) joins the first block's
        flight instead of fetching it alone."""
        cache = self.cache
        assert self.pool is not None
        count = -(-version.size // cache.block_size)
        streams = isinstance(fetch, RangeStreamer)
        run: list[PrefetchJob] = []
        start_worker = False
        with cache._lock:
            state = cache._paths.get(version.path)
            if state is None or state.version != version or cache._closed:
                return
            start = next((index for index in range(first, min(last + 1 + self.readahead_blocks, count))
                          if block_key(version, index) not in cache._blocks
                          and block_key(version, index) not in cache._flights), None)
            if start is None:
                return
            stop = min(start + self.readahead_blocks, count)
            room = self.max_inflight - self.inflight
            if start > last and self.inflight and room < stop - start:
                return  # wait for running prefetches rather than fetch a short run
            for index in range(start, stop):
                key = block_key(version, index)
                if key in cache._blocks or key in cache._flights:
                    break  # runs are contiguous
                run.append((key, index, cache._start_flight_locked(key, version, prefetch=True)))
                self.inflight += 1
                cache.counters.prefetch_scheduled += 1
            if streams and run:
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
        jobs: list[tuple[Callable[..., None], tuple]] = [(self._prefetch, (version, job, fetch))
                                                          for job in run]
        if start_worker:
            jobs.insert(0, (self._stream_worker, (version, state, fetch)))
        for method, args in jobs:
            try:
                self.pool.submit(method, *args)
            except RuntimeError:  # pool shut down (closing)
                method(*args)

    def _prefetch(self, version: FileVersion, job: PrefetchJob, fetch: RangeReader) -> None:
        """Fetch one block ahead of the reader."""
        cache = self.cache
        key, index, flight = job
        try:
            if cache._closed:  # resolve the flight quickly so nobody waits on it
                raise OSError(errno.EIO, "block cache is closing")
            cache._fetch_block(key, version, index, fetch, flight)
        except Exception as exc:
            self._abandon(version, [job], exc)
            return
        with cache._lock:
            cache.counters.prefetched_blocks += 1
            self.inflight -= 1

    def _stream_worker(self, version: FileVersion, state: PathState, fetch: RangeStreamer) -> None:
        """Fetch the file's queued blocks in order through one open request; when the queue is empty (the
        reader is far enough behind) park the request, so the next blocks continue it."""
        cache = self.cache
        stream: OpenStream | None = None
        job: PrefetchJob | None = None
        try:
            while True:
                with cache._lock:
                    queue = state.stream_queue
                    job = queue.popleft() if queue and not cache._closed else None
                if job is None:
                    if stream is not None:
                        if stream.offset < version.size and not cache._closed:
                            self.streams.park(stream)
                        else:
                            stream.close()
                        stream = None
                    with cache._lock:
                        if state.stream_queue and not cache._closed:
                            continue  # queued meanwhile
                        leftover, state.stream_queue = list(state.stream_queue or ()), None
                    self._abandon(version, leftover, OSError(errno.EIO, "block cache is closing"))
                    return
                key, index, flight = job
                start = index * cache.block_size
                if stream is not None and stream.offset != start:
                    stream.close()
                    stream = None
                stream = stream or self.streams.take(version, start)
                if stream is None:  # ask for the rest of the file: later blocks continue this request
                    stream = OpenStream(version, version.path, start, fetch.stream(start, version.size))
                cache._fetch_block(key, version, index, StreamPart(stream.fill), flight)
                stream.offset += cache._block_length(version, index)
                job = None
                with cache._lock:
                    cache.counters.prefetched_blocks += 1
                    self.inflight -= 1
        except Exception as exc:
            if stream is not None:
                stream.close()
            with cache._lock:
                leftover, state.stream_queue = list(state.stream_queue or ()), None
            self._abandon(version, ([job] if job else []) + leftover, exc)

    def _abandon(self, version: FileVersion, jobs: list[PrefetchJob], exc: Exception) -> None:
        """Prefetches that will not happen: their readers get ``exc`` and fetch on their own."""
        if not jobs:
            return
        cache = self.cache
        log.debug("prefetch of %s blocks %d-%d failed: %s", version.path, jobs[0][1], jobs[-1][1], exc)
        for key, _index, flight in jobs:
            if not flight.future.done():  # a failing _fetch_block resolved its own flight
                cache._finish_flight(key, flight, None, False)
                flight.future.set_exception(exc)
        with cache._lock:
            self.inflight -= len(jobs)

    def forget(self, path: str | None = None) -> None:
        """Close the parked streams of ``path`` (all when None)."""
        self.streams.drop(path)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)  # queued prefetches fail fast once the cache is closed
        self.streams.drop()
