"""``BlockCache.read_spans``: a read's bytes as ranges of memfd-backed block buffers, which libfuse splices
into the reply instead of the daemon copying them (issue 26)."""

from __future__ import annotations

import os

import pytest
import requests
from waiting import wait_until

from .test_block_cache import BLOCK, KiB, make_cache, range_server  # noqa: F401 - fixtures used by name


def spanned_bytes(spans) -> bytes:
    """What a splice of ``spans`` sends: each part read through its buffer's memfd."""
    return b"".join(os.pread(buffer.fd, length, start) for buffer, start, length in spans.parts)


def test_read_spans_name_the_bytes_in_memfds_and_hold_them_until_released(range_server, make_cache):  # noqa: F811
    """What libfuse splices a reply from (issue 26): every kind of part, each buffer kept until release."""
    data = os.urandom(12 * BLOCK + 777)
    version = range_server.put("/s.bin", data)
    cache = make_cache(readahead_blocks=2, ram_blocks=2)
    if not cache.zero_copy:
        pytest.skip("no memfd_create here")
    fetch = range_server.fetcher("/s.bin")
    step = 48 * KiB  # parts across block boundaries
    held = []
    for offset in range(0, len(data), step):  # sequential: fetched, in flight or in memory
        spans = cache.read_spans(version, offset, step, fetch, stream_id="seq")
        want = data[offset:offset + step]
        assert spanned_bytes(spans) == want and spans.size == len(want)
        assert all(buffer.refs > 0 for buffer, _, _ in spans.parts)
        held.append(spans)
    assert cache.read_spans(version, len(data), step, fetch).parts == []  # at EOF
    for spans in held:
        spans.release()
    assert wait_until(lambda: cache.stats()["pending_blocks"] == 0)
    cache.release_memory()  # blocks now only on disk: read into a pooled buffer
    spans = cache.read_spans(version, BLOCK - 100, 200, fetch, stream_id="disk")
    assert spanned_bytes(spans) == data[BLOCK - 100:BLOCK + 100]
    spans.release()
    assert cache.stats()["memory_buffers"] <= cache.ram_blocks + 2, "released buffers went back to the pool"


def test_read_spans_of_random_reads_fetch_only_pages(range_server, make_cache):  # noqa: F811
    data = os.urandom(40 * BLOCK)
    version = range_server.put("/r.bin", data)
    cache = make_cache(readahead_blocks=0)
    if not cache.zero_copy:
        pytest.skip("no memfd_create here")
    fetch = range_server.fetcher("/r.bin")
    for offset in (30 * BLOCK + 123, 5 * BLOCK + 4000, 18 * BLOCK - 10):  # far apart: no sequence
        spans = cache.read_spans(version, offset, 100, fetch, stream_id="random")
        assert spanned_bytes(spans) == data[offset:offset + 100]
        spans.release()
    assert cache.stats()["piece_fetches"] >= 2 and cache.stats()["fetches"] == 0


def test_read_spans_errors_release_what_was_taken(range_server, make_cache):  # noqa: F811
    data = os.urandom(4 * BLOCK)
    version = range_server.put("/e2.bin", data)
    cache = make_cache(readahead_blocks=0)
    fetch = range_server.fetcher("/e2.bin")
    assert cache.read(version, 0, BLOCK, fetch) == data[:BLOCK]  # block 0 cached
    range_server.failing["/e2.bin"] = lambda start: start >= BLOCK
    with pytest.raises(requests.HTTPError):
        cache.read_spans(version, BLOCK - 10, 20, fetch)  # block 0's part taken, block 1 fails
    del range_server.failing["/e2.bin"]
    spans = cache.read_spans(version, BLOCK - 10, 20, fetch)
    assert spanned_bytes(spans) == data[BLOCK - 10:BLOCK + 10]
    spans.release()
