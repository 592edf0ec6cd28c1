"""``ContentCache`` on its own (no FUSE, no HTTP): the size decides the cache, ``invalidate`` reaches every
content cache, and the status merges both the way ``algofs status`` shows them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from waiting import wait_until

from algofs_jupyter.mount.block_cache import BlockCache
from algofs_jupyter.mount.content_cache import ContentCache, file_version
from algofs_jupyter.mount.metadata_cache import FILE, Attr
from algofs_jupyter.mount.range_source import FetcherSource, RangeSource

BLOCK = 64 << 10
SMALL = 16 << 10


class Server:
    """Files in memory; counts whole GETs and ranged GETs per path."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.etags: dict[str, str] = {}
        self.wholes: list[str] = []
        self.ranges: list[tuple[str, int, int]] = []

    def put(self, path: str, data: bytes) -> Attr:
        self.files[path] = data
        self.etags[path] = f'"{len(self.wholes) + len(self.ranges)}-{hash(data)}"'
        return Attr(FILE, len(data), 1.0, self.etags[path])

    def whole(self, path: str, etag: str) -> tuple[bytes, str]:
        self.wholes.append(path)
        return self.files[path], self.etags[path]

    def range_source(self, path: str, etag: str, size: int) -> RangeSource:
        def fetch(start: int, end: int) -> bytes:
            self.ranges.append((path, start, end))
            return self.files[path][start:end]

        return FetcherSource(fetch)


@pytest.fixture
def server() -> Server:
    return Server()


@pytest.fixture
def content(server: Server, tmp_path: Path) -> Iterator[ContentCache]:
    listings: dict[str, dict[str, Attr]] = {}
    blocks = BlockCache(tmp_path / "blocks", 64 << 20, block_size=BLOCK, readahead_blocks=0)
    front = ContentCache(blocks, server.range_source, server.whole, listings.get, small_file_size=SMALL,
                         small_files_memory=1 << 20, prefetch_files=4)
    front.listings = listings  # type: ignore[attr-defined]  # the test's metadata cache
    try:
        yield front
    finally:
        front.close()


def test_small_files_are_read_whole_once_and_large_ones_by_block(server: Server,
                                                                 content: ContentCache) -> None:
    small = file_version("c/small.txt", server.put("c/small.txt", b"s" * 100))
    large_data = bytes(range(256)) * (3 * BLOCK // 256)
    large = file_version("c/large.bin", server.put("c/large.bin", large_data))
    assert content.read(small, "", 10, 20) == b"s" * 20
    out = bytearray(30)
    assert content.read_into(small, "", 90, memoryview(out)) == 10 and out[:10] == b"s" * 10
    assert server.wholes == ["c/small.txt"] and server.ranges == []

    assert content.read(large, "", BLOCK - 5, 10) == large_data[BLOCK - 5:BLOCK + 5]
    out = bytearray(7)
    assert content.read_into(large, "", 2 * BLOCK, memoryview(out)) == 7
    assert bytes(out) == large_data[2 * BLOCK:2 * BLOCK + 7]
    assert server.wholes == ["c/small.txt"], "a large file is never fetched whole"
    assert {path for path, _, _ in server.ranges} == {"c/large.bin"}


def test_invalidate_reaches_the_block_cache_and_the_small_files(server: Server,
                                                                content: ContentCache) -> None:
    small = file_version("c/a.txt", server.put("c/a.txt", b"a" * 100))
    large_data = bytes(2 * BLOCK)
    large = file_version("c/b.bin", server.put("c/b.bin", large_data))
    content.read(small, "", 0, 100)
    content.read(large, "", 0, 2 * BLOCK)
    assert wait_until(lambda: content.blocks.stats()["blocks"] == 2)
    paths = {entry["path"] for entry in content.stats()["entries"]}
    assert paths == {"c/a.txt", "c/b.bin"}

    content.invalidate("c/a.txt")
    content.invalidate("c/b.bin")
    assert content.stats()["entries"] == [] and content.small_files.stats()["files"] == 0
    content.read(small, "", 0, 100)
    content.read(large, "", 0, 10)
    assert server.wholes == ["c/a.txt", "c/a.txt"], "the small file was fetched again after the change"
    assert len([r for r in server.ranges if r[1] == 0]) == 2, "the block was fetched again after the change"


def test_the_status_merges_both_caches(server: Server, content: ContentCache) -> None:
    small = file_version("c/a.txt", server.put("c/a.txt", b"a" * 100))
    large = file_version("c/b.bin", server.put("c/b.bin", bytes(BLOCK + 1)))
    content.read(small, "", 0, 100)
    content.read(small, "", 0, 100)  # a hit
    content.read(large, "", 0, 10)
    stats = content.stats()
    blocks = content.blocks.stats()
    small_stats = content.small_files.stats()
    assert stats["hits"] == blocks["hits"] + small_stats["hits"] == 1
    assert stats["misses"] == blocks["misses"] + small_stats["misses"] == 2
    assert stats["bytes_fetched"] == 100 + BLOCK
    assert stats["hit_ratio"] == pytest.approx(1 / 3)
    assert [e["path"] for e in stats["entries"]] == ["c/a.txt", "c/b.bin"]
    files = content.small_files_stats()
    assert files["files"] == 1 and files["prefetch"]["files_ahead"] == 4

    content.clear()
    assert content.stats()["entries"] == [] and content.small_files_stats()["files"] == 0


def test_opening_small_files_of_a_directory_prefetches_the_next_ones(server: Server,
                                                                      content: ContentCache) -> None:
    listing = {f"{i:02d}.txt": server.put(f"d/{i:02d}.txt", bytes([i]) * 50) for i in range(10)}
    listing["big.bin"] = server.put("d/big.bin", bytes(SMALL + 1))
    content.listings["d"] = listing  # type: ignore[attr-defined]
    for name in ("00.txt", "01.txt"):  # a second file of the directory opened: a run starts
        version = file_version(f"d/{name}", listing[name])
        content.opened(version)
        assert content.read(version, "", 0, 50) == bytes([int(name[:2])]) * 50
    assert content.reading_directory("d")
    assert wait_until(lambda: content.small_files_stats()["prefetch"]["requests"] >= 4)
    assert "d/big.bin" not in server.wholes, "a file over the small-file size is never prefetched"
    before = list(server.wholes)
    assert content.read(file_version("d/02.txt", listing["02.txt"]), "", 0, 50) == bytes([2]) * 50
    assert server.wholes == before, "the next file came from the prefetch"
    assert content.small_files_stats()["prefetch_hits"] == 1


def test_a_version_held_in_a_kept_copy_is_read_from_it_and_any_other_from_the_caches(
        server: Server, tmp_path: Path) -> None:
    """Issue 25: the front asks the local copies (write staging's) first, for the exact ETag and size; a
    read with no ETag, another version or no copy goes to the caches as before."""

    class Kept:
        def __init__(self) -> None:
            self.copies: dict[tuple[str, int, str], bytes] = {}
            self.asked = 0

        def read_kept(self, path: str, size: int, etag: str, offset: int, out: memoryview) -> int | None:
            self.asked += 1
            data = self.copies.get((path, size, etag))
            if data is None:
                return None
            got = max(0, min(len(out), size - offset))
            out[:got] = data[offset:offset + got]
            return got

        def kept_copy_counts(self) -> dict[str, int]:
            return {"kept_copy_reads": self.asked, "kept_copy_bytes": 0}

    kept = Kept()
    blocks = BlockCache(tmp_path / "blocks", 64 << 20, block_size=BLOCK, readahead_blocks=0)
    front = ContentCache(blocks, server.range_source, server.whole, {}.get, small_file_size=SMALL, kept=kept)
    try:
        large_data = bytes(range(256)) * (2 * BLOCK // 256)
        attr = server.put("c/large.bin", large_data)
        small_attr = server.put("c/small.txt", b"s" * 100)
        kept.copies[("c/large.bin", attr.size, attr.etag)] = large_data
        kept.copies[("c/small.txt", small_attr.size, small_attr.etag)] = b"s" * 100
        large, small = file_version("c/large.bin", attr), file_version("c/small.txt", small_attr)
        out = bytearray(10)
        assert front.read_into(large, attr.etag, BLOCK - 5, memoryview(out)) == 10
        assert bytes(out) == large_data[BLOCK - 5:BLOCK + 5]
        assert front.read(small, small_attr.etag, 90, 20) == b"s" * 10
        assert server.wholes == [] and server.ranges == [], "a kept version was fetched"
        assert front.read(large, "", 0, 4) == large_data[:4]  # a listing's attributes: no ETag, fetched
        newer = server.put("c/large.bin", large_data[::-1])  # another writer: same size, another ETag
        assert front.read(file_version("c/large.bin", newer), newer.etag, 0, 4) == large_data[::-1][:4]
        assert server.ranges and server.wholes == []
        assert front.stats()["kept_copy_reads"] == kept.asked == 3  # never asked without an ETag
    finally:
        front.close()
