"""``Readahead`` on its own (no FUSE, no HTTP, no block cache): a ``BlockIndex``, an in-memory source that
counts its requests, and a ``fetch_block`` that puts the bytes straight into the index."""

from __future__ import annotations

import errno
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from waiting import wait_until

from algofs_jupyter.mount.block_buffers import Buffer, BufferPool
from algofs_jupyter.mount.block_index import BlockIndex, FileVersion, Flight, block_key
from algofs_jupyter.mount.block_readahead import Readahead
from algofs_jupyter.mount.range_streams import Fill

BLOCK = 4096


class Source:
    """A ``RangeSource`` over bytes in memory; ``streams`` records each request opened by ``stream``."""

    def __init__(self, data: bytes, fail_from: int | None = None):
        self.data = data
        self.fail_from = fail_from
        self.streams: list[tuple[int, int]] = []
        self.intos: list[int] = []
        self.lock = threading.Lock()

    def __call__(self, start: int, end: int) -> bytes:
        return self.data[start:end]

    def into(self, start: int, out: memoryview) -> int:
        with self.lock:
            self.intos.append(start)
        chunk = self.data[start:start + len(out)]
        out[:len(chunk)] = chunk
        return len(chunk)

    @contextmanager
    def stream(self, start: int, end: int) -> Iterator[Fill]:
        with self.lock:
            self.streams.append((start, end))
        position = start

        def fill(out: memoryview) -> int:
            nonlocal position
            if self.fail_from is not None and position >= self.fail_from:
                raise OSError(errno.EIO, "transfer interrupted")
            chunk = self.data[position:min(position + len(out), end)]
            out[:len(chunk)] = chunk
            position += len(chunk)
            return len(chunk)

        yield fill


class Harness:
    def __init__(self, readahead_blocks: int = 3):
        self.index = BlockIndex(1 << 30, 64, BufferPool(BLOCK, keep=2))
        self.fetched: list[int] = []
        self.readahead = Readahead(self.index, self.fetch_block, BLOCK, readahead_blocks)

    def fetch_block(self, key: str, version: FileVersion, index: int, fill: Fill, flight: Flight,
                    reader: bool = False) -> Buffer:
        """As ``BlockCache.fetch_block``, without disk: the block joins the index from memory."""
        mem = bytearray(min(BLOCK, version.size - index * BLOCK))
        try:
            got = fill(memoryview(mem))
        except BaseException as exc:
            self.index.finish_flight(key, flight, None, False)
            flight.future.set_exception(exc)
            raise
        buffer = Buffer(mem, got, pooled=False)
        buffer.refs = 1
        self.fetched.append(index)
        flight.future.set_result(buffer)
        self.index.finish_flight(key, flight, buffer, True)
        return buffer

    def cached(self, version: FileVersion) -> set[int]:
        with self.index.lock:
            count = -(-version.size // BLOCK)
            return {i for i in range(count) if block_key(version, i) in self.index.blocks}

    def idle(self) -> bool:
        with self.index.lock:
            return self.readahead.inflight == 0 and not self.index.flights

    def close(self) -> None:
        self.index.closed = True
        self.readahead.close()


@pytest.fixture
def harness() -> Iterator[Harness]:
    made = Harness()
    try:
        yield made
    finally:
        made.close()


def seen(harness: Harness, version: FileVersion) -> None:
    """What ``BlockCache.read_into`` does first: the reader's version becomes the path's."""
    assert harness.index.note_version(version) == []


def test_a_run_of_blocks_ahead_comes_through_one_request(harness: Harness) -> None:
    data = bytes(range(256)) * (20 * BLOCK // 256)
    version = FileVersion("d/f", len(data), "e1")
    source = Source(data)
    seen(harness, version)
    harness.readahead.schedule(version, 0, 0, source)  # the reader is in block 0 and missing it
    assert wait_until(lambda: harness.cached(version) == {0, 1, 2})
    assert wait_until(harness.idle)
    assert source.streams == [(0, len(data))], "one request for the rest of the file"
    assert harness.fetched == [0, 1, 2]
    assert harness.index.counters.prefetch_scheduled == 3
    assert harness.index.counters.prefetched_blocks == 3
    with harness.index.lock:
        block = harness.index.blocks[block_key(version, 1)]
        assert block.ram is not None and bytes(block.ram.mem) == data[BLOCK:2 * BLOCK]
    assert wait_until(lambda: len(harness.readahead.streams) == 1), "the request is parked for the next run"

    harness.readahead.schedule(version, 1, 1, source)  # the reader moved on: the next run
    assert wait_until(lambda: harness.cached(version) >= {3, 4, 5})
    assert source.streams == [(0, len(data))], "the next run continued the parked request"
    assert harness.readahead.streams.resumed == 1


def test_readahead_stays_within_twice_its_reach_and_skips_what_is_there(harness: Harness) -> None:
    data = bytes(40 * BLOCK)
    version = FileVersion("d/g", len(data), "e1")
    source = Source(data)
    seen(harness, version)
    harness.readahead.schedule(version, 0, 0, source)
    assert wait_until(lambda: harness.cached(version) == {0, 1, 2})
    harness.readahead.schedule(version, 0, 0, source)  # blocks 0..3 considered: only 3 is missing
    assert wait_until(lambda: harness.cached(version) == {0, 1, 2, 3, 4, 5})
    harness.readahead.schedule(version, 0, 0, source)  # 0..3 all there: nothing to do
    assert wait_until(harness.idle)
    assert harness.cached(version) == {0, 1, 2, 3, 4, 5}
    assert harness.index.counters.prefetch_scheduled == 6


def test_a_failed_stream_resolves_its_flights_with_the_error_and_leaves_nothing_behind(
        harness: Harness) -> None:
    data = bytes(10 * BLOCK)
    version = FileVersion("d/h", len(data), "e1")
    source = Source(data, fail_from=BLOCK)  # block 0 arrives, then the transfer breaks
    seen(harness, version)
    harness.readahead.schedule(version, 0, 0, source)
    assert wait_until(harness.idle)
    assert harness.cached(version) == {0}
    assert harness.index.counters.prefetched_blocks == 1
    with harness.index.lock:
        assert not harness.index.flights and harness.readahead.inflight == 0
        state = harness.index.paths[version.path]
        assert state.stream_queue is None and state.flights == 0
    assert len(harness.readahead.streams) == 0, "a broken request is closed, not parked"


def test_a_reader_waiting_on_a_readahead_block_gets_its_error() -> None:
    harness = Harness(readahead_blocks=2)
    gate = threading.Event()
    data = bytes(8 * BLOCK)
    version = FileVersion("d/i", len(data), "e1")

    class Slow(Source):
        @contextmanager
        def stream(self, start: int, end: int) -> Iterator[Fill]:
            gate.wait(5)
            raise OSError(errno.EIO, "server went away")
            yield  # pragma: no cover

    try:
        seen(harness, version)
        harness.readahead.schedule(version, 0, 0, Slow(data))
        with harness.index.lock:
            flight = harness.index.flights[block_key(version, 1)]
            assert flight.readahead
        gate.set()
        with pytest.raises(OSError) as info:
            flight.future.result(5)
        assert info.value.errno == errno.EIO
        assert wait_until(harness.idle)
    finally:
        harness.close()


def test_another_reader_of_the_file_gets_its_run_block_by_block(harness: Harness) -> None:
    data = bytes(30 * BLOCK)
    version = FileVersion("d/j", len(data), "e1")
    gate = threading.Event()

    class Held(Source):
        @contextmanager
        def stream(self, start: int, end: int) -> Iterator[Fill]:
            gate.wait(5)  # the first reader's request is slow to start: its worker is busy
            with super().stream(start, end) as fill:
                yield fill

    source = Held(data)
    seen(harness, version)
    harness.readahead.schedule(version, 0, 0, source)  # worker heads for block 3 next
    harness.readahead.schedule(version, 20, 20, source)  # a second reader far ahead: 20, 21, 22
    gate.set()
    assert wait_until(lambda: harness.cached(version) >= {0, 1, 2, 20, 21, 22})
    assert sorted(source.intos) == [20 * BLOCK, 21 * BLOCK, 22 * BLOCK]
    assert source.streams == [(0, len(data))]


def test_nothing_is_scheduled_for_an_old_version_or_a_closed_cache(harness: Harness) -> None:
    data = bytes(10 * BLOCK)
    old, new = FileVersion("d/k", len(data), "e1"), FileVersion("d/k", len(data), "e2")
    source = Source(data)
    seen(harness, new)
    harness.readahead.schedule(old, 0, 0, source)  # another reader saw a newer version since
    harness.index.closed = True
    harness.readahead.schedule(new, 0, 0, source)
    assert harness.index.counters.prefetch_scheduled == 0 and not source.streams
