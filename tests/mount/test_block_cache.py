"""The block cache against real HTTP Range servers: a small in-test server (to count and break requests)
and the embedded ``algofs serve`` (the server the mount talks to)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import re
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from waiting import wait_until

from algofs_jupyter.mount.block_cache import BlockCache, FileVersion
from algofs_jupyter.mount.range_source import FetcherSource

KiB = 1 << 10
BLOCK = 64 * KiB


class RangeServer:
    """Serves in-memory files with single-range GETs; logs (path, start, end_exclusive); can fail paths."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.log: list[tuple[str, int, int]] = []
        self.failing: dict[str, Callable[[int], bool]] = {}  # path -> predicate(start) -> fail?
        self.cut: dict[str, Callable[[int, int], bool]] = {}  # path -> predicate(start, end) -> break body?
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.handle_error = self._handle_error
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @staticmethod
    def _handle_error(request: object, client_address: object) -> None:
        """A client that closes a ranged GET early (readahead parks, then closes it) is no error."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            traceback.print_exc()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # http.server API
                data = server.files.get(self.path)
                if data is None:
                    return self._reply(404, b"not found")
                match = re.fullmatch(r"bytes=(\d+)-(\d+)", self.headers.get("Range", ""))
                if not match:
                    return self._reply(400, b"range required")
                start, end = int(match[1]), min(int(match[2]) + 1, len(data))
                fail = server.failing.get(self.path)
                if fail and fail(start):
                    return self._reply(500, b"injected failure")
                with server.lock:
                    server.log.append((self.path, start, end))
                cut = server.cut.get(self.path)
                if cut and cut(start, end):  # promise the range, send half a block, hang up
                    self.send_response(206)
                    self.send_header("Content-Length", str(end - start))
                    self.end_headers()
                    self.wfile.write(data[start:start + BLOCK // 2])
                    self.close_connection = True
                    return
                self._reply(206, data[start:end])

            def _reply(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler

    def put(self, path: str, data: bytes) -> FileVersion:
        self.files[path] = data
        return FileVersion(path, len(data), hashlib.md5(data).hexdigest())

    def fetcher(self, path: str, http: requests.Session | None = None) -> FetcherSource:
        """One ranged GET per call: a plain ``Fetcher`` as a ``RangeSource``."""
        http = http or requests.Session()

        def fetch(start: int, end: int) -> bytes:
            response = http.get(self.url + path, headers={"Range": f"bytes={start}-{end - 1}"}, timeout=10)
            response.raise_for_status()
            return response.content

        return FetcherSource(fetch)

    def stream_fetcher(self, path: str) -> StreamingFetch:
        return StreamingFetch(self.url + path)

    def fetched(self, path: str) -> list[tuple[int, int]]:
        with self.lock:
            return [(start, end) for p, start, end in self.log if p == path]


class StreamingFetch:
    """A ``RangeSource`` whose ``into`` and ``stream`` are real streamed GETs, as the data client's."""

    def __init__(self, url: str):
        self.url = url
        self.http = requests.Session()

    def __call__(self, start: int, end: int) -> bytes:
        response = self.http.get(self.url, headers={"Range": f"bytes={start}-{end - 1}"}, timeout=10)
        response.raise_for_status()
        return response.content

    def into(self, start: int, out: memoryview) -> int:
        with self.stream(start, start + len(out)) as fill:
            return fill(out)

    @contextlib.contextmanager
    def stream(self, start: int, end: int) -> Iterator[Callable[[memoryview], int]]:
        response = self.http.get(self.url, headers={"Range": f"bytes={start}-{end - 1}"}, timeout=10,
                                 stream=True)
        response.raise_for_status()

        def fill(out: memoryview) -> int:
            filled = 0
            try:
                while filled < len(out):
                    got = response.raw.readinto(out[filled:])
                    if not got:
                        break
                    filled += got
            except Exception as exc:  # urllib3: the body ended before Content-Length
                raise OSError(5, f"transfer interrupted: {exc}") from exc
            return filled

        try:
            yield fill
        finally:
            response.close()


@pytest.fixture
def range_server() -> Iterator[RangeServer]:
    server = RangeServer()
    server.thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()


@pytest.fixture
def make_cache(tmp_path: Path) -> Iterator[Callable[..., BlockCache]]:
    caches: list[BlockCache] = []

    def make(limit_bytes: int = 64 << 20, block_size: int = BLOCK, readahead_blocks: int = 4,
             **options: float) -> BlockCache:
        cache = BlockCache(tmp_path / "cache", limit_bytes, block_size=block_size,
                           readahead_blocks=readahead_blocks, **options)
        caches.append(cache)
        return cache

    try:
        yield make
    finally:
        for cache in caches:
            cache.close()


def block_files(cache_dir: Path) -> list[Path]:
    return [p for p in cache_dir.rglob("*") if p.is_file() and p.name != ".lock"]


def test_concurrent_random_reads_match_source_and_fetch_each_block_once(range_server, make_cache):
    data = os.urandom(40 * BLOCK + 1234)  # the last block is short
    version = range_server.put("/f.bin", data)
    cache = make_cache()
    fetch = range_server.fetcher("/f.bin")
    failures: list[str] = []

    def reader(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(150):
            offset = rng.randrange(len(data))
            size = rng.choice([1, 4 * KiB, BLOCK, 3 * BLOCK + 7])
            got = cache.read(version, offset, size, fetch, stream_id=seed)
            if got != data[offset:offset + size]:
                failures.append(f"offset {offset} size {size}: {len(got)} bytes, content differs")

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(reader, range(16)))
    assert not failures
    assert wait_until(lambda: cache.stats()["fetches"] + cache.stats()["piece_fetches"]
                      == len(range_server.fetched("/f.bin")))
    fetched = range_server.fetched("/f.bin")
    whole = [(start, end) for start, end in fetched if end - start == BLOCK]
    pieces = [(start, end) for start, end in fetched if end - start < BLOCK]
    assert len(whole) == len(set(whole)), "a block was fetched whole more than once"
    assert all(start % BLOCK == 0 for start, _ in whole)
    assert all(start % 4096 == 0 and start // BLOCK == (end - 1) // BLOCK for start, end in pieces), \
        "pieces are page-aligned and within one block"
    stats = cache.stats()
    assert stats["bytes_fetched"] == sum(end - start for start, end in fetched)
    assert stats["entries"] == [{"path": "/f.bin", "cached_bytes": stats["size_bytes"], "size": len(data)}]


def test_random_small_reads_fetch_only_the_pages_they_touch(range_server, make_cache):
    data = os.urandom(256 * BLOCK)
    version = range_server.put("/big.bin", data)
    cache = make_cache(block_size=16 * BLOCK)  # 1 MiB: a quarter of a block is plenty for these reads
    fetch = range_server.fetcher("/big.bin")
    rng = random.Random(7)
    for _ in range(60):
        offset = rng.randrange(len(data) - 4 * KiB)
        assert cache.read(version, offset, 4 * KiB, fetch, stream_id=1) == data[offset:offset + 4 * KiB]
    stats = cache.stats()
    assert stats["piece_fetches"] == 60 and stats["fetches"] == 0, "a random read fetched a whole block"
    assert stats["bytes_fetched"] <= 2 * 60 * 4 * KiB, "more than twice the bytes read"
    assert all(end - start <= 8 * KiB for start, end in range_server.fetched("/big.bin"))


def test_random_reads_fetch_a_block_whole_once_a_quarter_of_it_was_fetched_in_pieces(range_server,
                                                                                     make_cache):
    data = os.urandom(4 * BLOCK)
    version = range_server.put("/dense.bin", data)
    cache = make_cache(readahead_blocks=0)
    fetch = range_server.fetcher("/dense.bin")
    rng = random.Random(11)
    for _ in range(40):  # 4 KiB reads all over block 2, never two in a row
        offset = 2 * BLOCK + rng.randrange(BLOCK // 4096) * 4096
        assert cache.read(version, offset, 4 * KiB, fetch, stream_id=1) == data[offset:offset + 4 * KiB]
        assert cache.read(version, 0, 1, fetch, stream_id=1) == data[:1]  # a jump away each time
    stats = cache.stats()
    assert stats["fetches"] == 2, "blocks 0 and 2 should each end up fetched whole, once"
    assert stats["piece_bytes"] <= BLOCK // 4 + 4 * KiB
    assert stats["bytes_fetched"] <= 2 * BLOCK + BLOCK // 4 + 8 * KiB


def test_footer_read_fetches_only_its_last_page(range_server, make_cache):
    data = os.urandom(100 * BLOCK + 999)
    version = range_server.put("/table.parquet", data)
    cache = make_cache()
    fetch = range_server.fetcher("/table.parquet")
    assert cache.read(version, len(data) - 8, 8, fetch) == data[-8:]
    assert cache.read(version, len(data) - 8, 100, fetch) == data[-8:]  # clamped at EOF
    assert cache.read(version, len(data), 10, fetch) == b""
    # the kernel's page cache keeps what a read fetched; this cache doesn't, so the re-read asks again
    assert range_server.fetched("/table.parquet") == [(100 * BLOCK, len(data))] * 2
    assert cache.stats()["bytes_fetched"] == 2 * 999


def test_sequential_reads_prefetch_and_recover_after_a_random_read(range_server, make_cache):
    data = os.urandom(64 * BLOCK)
    version = range_server.put("/seq.bin", data)
    cache = make_cache(readahead_blocks=3)
    fetch = range_server.fetcher("/seq.bin")
    step = 16 * KiB

    def fetched_blocks() -> set[int]:
        return {start // BLOCK for start, _ in range_server.fetched("/seq.bin")}

    for offset in range(0, 2 * BLOCK, step):  # sequential through blocks 0 and 1
        assert cache.read(version, offset, step, fetch, stream_id="h") == data[offset:offset + step]
    assert wait_until(lambda: {2, 3, 4} <= fetched_blocks()), "sequential reads did not prefetch ahead"
    assert wait_until(lambda: cache.stats()["prefetched_blocks"] >= 3)

    scheduled = cache.stats()["prefetch_scheduled"]
    far = 40 * BLOCK + 5 * KiB
    assert cache.read(version, far, step, fetch, stream_id="h") == data[far:far + step]
    assert cache.stats()["prefetch_scheduled"] == scheduled, "a random read must not prefetch"

    for offset in range(far + step, far + 4 * step, step):  # sequential again from there
        assert cache.read(version, offset, step, fetch, stream_id="h") == data[offset:offset + step]
    assert wait_until(lambda: {41, 42, 43} <= fetched_blocks()), "readahead did not recover"
    # Readahead keeps a reader up to 2 x readahead_blocks ahead (of block 1 here): never further.
    assert not fetched_blocks() & set(range(1 + 2 * 3 + 1, 40)), "blocks nobody read near were fetched"

    # Prefetched blocks are served from the cache: reading 2..4 fetches nothing more.
    before = len(range_server.fetched("/seq.bin"))
    for offset in range(2 * BLOCK, 5 * BLOCK, BLOCK):
        assert cache.read(version, offset, BLOCK, fetch, stream_id="other") == data[offset:offset + BLOCK]
    assert wait_until(lambda: cache.stats()["fetches"] == len(range_server.fetched("/seq.bin")))
    new = range_server.fetched("/seq.bin")[before:]
    assert not {start // BLOCK for start, _ in new} & {2, 3, 4}


def test_eviction_keeps_the_cache_under_its_limit_in_lru_order(range_server, make_cache, tmp_path):
    data = os.urandom(20 * BLOCK)
    version = range_server.put("/e.bin", data)
    cache = make_cache(limit_bytes=4 * BLOCK, readahead_blocks=0)
    fetch = range_server.fetcher("/e.bin")
    for index in range(20):
        if index % 2:  # keep block 0 recently used
            assert cache.read(version, 10, 10, fetch) == data[10:20]
        offset = index * BLOCK
        assert cache.read(version, offset, BLOCK, fetch) == data[offset:offset + BLOCK]
        assert wait_until(lambda: cache.stats()["pending_blocks"] == 0)  # written to disk
        assert cache.stats()["size_bytes"] <= 4 * BLOCK
        assert sum(p.stat().st_size for p in block_files(tmp_path / "cache")) == cache.stats()["size_bytes"]
    assert cache.stats()["evicted_blocks"] >= 15
    fetched_starts = [start for start, _ in range_server.fetched("/e.bin")]
    assert fetched_starts.count(0) == 1, "the recently used block was evicted"
    cache.read(version, 5 * BLOCK, 1, fetch)  # long evicted: fetched again
    assert [start for start, _ in range_server.fetched("/e.bin")].count(5 * BLOCK) == 2


def test_a_new_version_invalidates_old_blocks(range_server, make_cache, tmp_path):
    old = os.urandom(3 * BLOCK)
    v1 = range_server.put("/v.bin", old)
    cache = make_cache(readahead_blocks=0)
    fetch = range_server.fetcher("/v.bin")
    assert cache.read(v1, 0, len(old), fetch) == old
    assert wait_until(lambda: len(block_files(tmp_path / "cache")) == 3)

    new = os.urandom(2 * BLOCK + 5)
    v2 = range_server.put("/v.bin", new)
    assert cache.read(v2, 0, len(new), fetch) == new
    assert wait_until(lambda: cache.stats()["blocks"] == 3)
    assert len(block_files(tmp_path / "cache")) == 3, "old version's block files were not removed"
    assert cache.stats()["entries"] == [{"path": "/v.bin", "cached_bytes": len(new), "size": len(new)}]

    assert cache.stats()["entries"] == [{"path": "/v.bin", "cached_bytes": len(new), "size": len(new)}]
    cache.invalidate("/v.bin")
    assert cache.stats()["size_bytes"] == 0 and not block_files(tmp_path / "cache")
    before = len(range_server.fetched("/v.bin"))
    assert cache.read(v2, BLOCK, 10, fetch) == new[BLOCK:BLOCK + 10]
    assert len(range_server.fetched("/v.bin")) == before + 1

    cache.clear()
    assert cache.stats()["blocks"] == 0 and not block_files(tmp_path / "cache")


def test_fetch_errors_reach_every_waiting_reader_and_are_not_cached(range_server, make_cache):
    data = os.urandom(8 * BLOCK)
    version = range_server.put("/x.bin", data)
    cache = make_cache()
    gate = threading.Event()
    http = requests.Session()
    plain = range_server.fetcher("/x.bin", http)

    def slow_failing_fetch(start: int, end: int) -> bytes:
        gate.wait(10)
        return plain(start, end)

    range_server.failing["/x.bin"] = lambda start: True
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(cache.read, version, 100 * i, 10, FetcherSource(slow_failing_fetch), i)
                   for i in range(4)]
        time.sleep(0.2)  # let all four queue up behind one fetch
        gate.set()
        errors = [f.exception(timeout=10) for f in futures]
    assert all(isinstance(e, requests.HTTPError) for e in errors), errors

    del range_server.failing["/x.bin"]
    assert cache.read(version, 0, 10, plain) == data[:10]


def test_prefetch_errors_are_swallowed(range_server, make_cache):
    data = os.urandom(16 * BLOCK)
    version = range_server.put("/p.bin", data)
    cache = make_cache(readahead_blocks=4)
    fetch = range_server.fetcher("/p.bin")
    range_server.failing["/p.bin"] = lambda start: start >= 2 * BLOCK
    step = 16 * KiB
    for offset in range(0, 2 * BLOCK, step):  # triggers prefetches of blocks 2.. that fail
        assert cache.read(version, offset, step, fetch, stream_id=1) == data[offset:offset + step]
    with pytest.raises(requests.HTTPError):
        cache.read(version, 2 * BLOCK, step, fetch, stream_id=1)
    del range_server.failing["/p.bin"]
    assert cache.read(version, 2 * BLOCK, BLOCK, fetch, stream_id=1) == data[2 * BLOCK:3 * BLOCK]


def test_short_fetch_is_an_io_error(range_server, make_cache):
    version = FileVersion("/short.bin", 3 * BLOCK, "e")
    range_server.put("/short.bin", os.urandom(BLOCK))  # the server has less than the version claims
    cache = make_cache(readahead_blocks=0)
    with pytest.raises(OSError) as info:
        cache.read(version, BLOCK, 10, range_server.fetcher("/short.bin"))
    assert info.value.errno == 5  # EIO


def test_close_removes_files_and_a_new_cache_wipes_abandoned_ones(tmp_path, range_server):
    data = os.urandom(2 * BLOCK)
    version = range_server.put("/c.bin", data)
    first = BlockCache(tmp_path / "cache", 1 << 20, block_size=BLOCK)
    second = BlockCache(tmp_path / "cache", 1 << 20, block_size=BLOCK)  # a second live mount
    try:
        first.read(version, 0, len(data), range_server.fetcher("/c.bin"))
        assert wait_until(lambda: first.stats()["blocks"] == 2)
        third = BlockCache(tmp_path / "cache", 1 << 20, block_size=BLOCK)
        third.close()
        assert len(block_files(tmp_path / "cache")) == 2, "a live instance's blocks were wiped"
        assert second.read(version, 0, 10, range_server.fetcher("/c.bin")) == data[:10]
    finally:
        first.close()
        second.close()
    assert not block_files(tmp_path / "cache")


def test_reads_from_the_embedded_api_server(api_server, tmp_path):
    """The cache over the real server's ranged GETs; a re-upload is a new version with new bytes."""
    import Algorithmia

    client = Algorithmia.client(api_key=api_server.api_key, api_address=api_server.url)
    name = "bc" + os.urandom(4).hex()
    client.dir(f"data://.my/{name}").create()
    http = requests.Session()
    http.headers["Authorization"] = api_server.api_key
    url = f"{api_server.url}/v1/data/.my/{name}/blob.bin"

    def fetch(start: int, end: int) -> bytes:
        response = http.get(url, headers={"Range": f"bytes={start}-{end - 1}"}, timeout=10)
        assert response.status_code == 206
        return response.content

    def current_version() -> FileVersion:
        head = http.head(url, timeout=10)
        head.raise_for_status()
        return FileVersion(url, int(head.headers["Content-Length"]), head.headers.get("ETag", ""))

    cache = BlockCache(tmp_path / "cache", 64 << 20, block_size=256 * KiB)
    source = FetcherSource(fetch)
    try:
        first = os.urandom(3 << 20)
        client.file(f"data://.my/{name}/blob.bin").putFile(_write(tmp_path / "a", first))
        v1 = current_version()
        with ThreadPoolExecutor(8) as pool:
            chunks = list(pool.map(lambda off: cache.read(v1, off, 100_000, source, off),
                                   range(0, len(first), 100_000)))
        assert b"".join(chunks) == first

        second = os.urandom(1 << 20)
        client.file(f"data://.my/{name}/blob.bin").putFile(_write(tmp_path / "b", second))
        v2 = current_version()
        assert v2 != v1
        assert cache.read(v2, 0, 2 << 20, source) == second
        assert cache.stats()["entries"][0]["size"] == len(second)
    finally:
        cache.close()
        client.dir(f"data://.my/{name}").delete(force=True)


def _write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def test_sequential_readahead_streams_runs_of_blocks_in_one_request(range_server, make_cache):
    data = os.urandom(32 * BLOCK + 123)
    version = range_server.put("/run.bin", data)
    cache = make_cache(readahead_blocks=4)
    fetch = range_server.stream_fetcher("/run.bin")
    step = 16 * KiB
    for offset in range(0, len(data), step):
        assert cache.read(version, offset, step, fetch, stream_id="h") == data[offset:offset + step]
    fetched = range_server.fetched("/run.bin")
    assert any(end - start > BLOCK for start, end in fetched), "readahead never streamed a run of blocks"
    assert len(fetched) <= 4, f"{len(fetched)} requests for 33 blocks: {fetched}"
    assert wait_until(lambda: cache.stats()["pending_blocks"] == 0)
    stats = cache.stats()
    assert stats["bytes_fetched"] == len(data), "some block was fetched twice"
    assert stats["memory_hits"] > 0, "reads right behind the readahead should be served from memory"


def test_readahead_runs_continue_one_open_request_until_the_file_changes(range_server, make_cache):
    data = os.urandom(40 * BLOCK)
    version = range_server.put("/long.bin", data)
    cache = make_cache(readahead_blocks=4)
    fetch = range_server.stream_fetcher("/long.bin")
    step = 16 * KiB
    for offset in range(0, 20 * BLOCK, step):  # half the file, then the reader stops
        assert cache.read(version, offset, step, fetch, stream_id="h") == data[offset:offset + step]
    assert wait_until(lambda: cache.stats()["pending_blocks"] == 0)
    streams = [(start, end) for start, end in range_server.fetched("/long.bin") if end - start > BLOCK]
    assert 1 <= len(streams) <= 2 and all(end == len(data) for _, end in streams), streams
    stats = cache.stats()
    assert stats["bytes_fetched"] <= 30 * BLOCK, "readahead ran far past the reader"
    assert stats["streams_parked"] == 1  # waiting for the reader to go on
    cache.invalidate("/long.bin")  # e.g. the file changed on the server
    assert cache.stats()["streams_parked"] == 0


def test_a_broken_readahead_stream_falls_back_to_block_fetches(range_server, make_cache):
    data = os.urandom(24 * BLOCK)
    version = range_server.put("/cut.bin", data)
    range_server.cut["/cut.bin"] = lambda start, end: end - start > BLOCK  # every multi-block stream breaks
    cache = make_cache(readahead_blocks=4)
    fetch = range_server.stream_fetcher("/cut.bin")
    step = 32 * KiB
    for offset in range(0, len(data), step):
        assert cache.read(version, offset, step, fetch, stream_id="h") == data[offset:offset + step]
    assert any(end - start > BLOCK for start, end in range_server.fetched("/cut.bin")), "no stream was tried"
    # the bytes that did arrive before the break were never served as a block's contents
    assert cache.read(version, 0, len(data), fetch, stream_id="check") == data


def test_idle_memory_is_let_go_and_reads_continue_from_disk(range_server, make_cache):
    data = os.urandom(12 * BLOCK)
    version = range_server.put("/idle.bin", data)
    cache = make_cache(memory_idle_seconds=0.3)
    fetch = range_server.stream_fetcher("/idle.bin")
    assert cache.read(version, 0, len(data), fetch) == data
    held = cache.stats()
    assert held["memory_blocks"] > 0 and held["memory_buffers"] > 0
    deadline = time.monotonic() + 5
    while cache.stats()["memory_buffers"] and time.monotonic() < deadline:
        time.sleep(0.1)
    released = cache.stats()
    assert released["memory_blocks"] == 0 and released["memory_buffers"] == 0
    assert released["memory_releases"] >= 1 and released["blocks"] == held["blocks"]
    fetched = len(range_server.fetched("/idle.bin"))
    assert cache.read(version, 5 * BLOCK - 10, 3 * BLOCK, fetch) == data[5 * BLOCK - 10:8 * BLOCK - 10]
    assert len(range_server.fetched("/idle.bin")) == fetched  # served from the block files


def test_a_busy_cache_keeps_its_memory(range_server, make_cache):
    data = os.urandom(6 * BLOCK)
    version = range_server.put("/busy.bin", data)
    cache = make_cache(memory_idle_seconds=0.6)
    fetch = range_server.stream_fetcher("/busy.bin")
    cache.read(version, 0, len(data), fetch)
    for _ in range(10):  # 1 s of reads, never idle for 0.6 s
        cache.read(version, 0, KiB, fetch)
        time.sleep(0.1)
    assert cache.stats()["memory_blocks"] > 0


def test_block_files_lie_flat_in_the_instance_directory(range_server, make_cache, tmp_path):
    """No sub-directory per block name: each one was a mkdir (a new inode) during a cold read (issue 26)."""
    data = os.urandom(24 * BLOCK)
    version = range_server.put("/flat.bin", data)
    cache = make_cache(readahead_blocks=0)
    assert cache.read(version, 0, len(data), range_server.fetcher("/flat.bin")) == data
    assert wait_until(lambda: cache.stats()["blocks"] == 24)
    files = block_files(tmp_path / "cache")
    assert len(files) == 24 and len({p.parent for p in files}) == 1
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_dir() and not p.name.startswith("blocks-")]
