"""Per-file state stays within its cap and costs what docs/filesystem.md says (issue 26: a walk over
1,000,000 files in bounded memory). Each structure the daemon keeps per file is filled past its cap with
more files than it may hold, in the shapes the daemon gives it (paths, etags and listing entries as the
mount makes them), and its real memory (tracemalloc) is checked against the cap and the per-file bytes
documented. No mount: the classes the daemon uses, directly."""

from __future__ import annotations

import gc
import hashlib
import json
import threading
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from algofs_jupyter.fs.posix_meta import Posix, seconds
from algofs_jupyter.mount.content_cache import file_version
from algofs_jupyter.mount.dir_prefetch import MAX_RUNS, UNLISTED_NAMES, DirectoryPrefetcher
from algofs_jupyter.mount.metadata_cache import FILE, Attr, MetadataCache, compact
from algofs_jupyter.mount.node_limit import NodeLimit
from algofs_jupyter.mount.small_files import ENTRY_OVERHEAD, SmallFiles


@contextmanager
def traced() -> Iterator[Callable[[], int]]:
    """``grown()``: bytes allocated and still alive since the block started."""
    gc.collect()
    tracemalloc.start()
    start = tracemalloc.get_traced_memory()[0]

    def grown() -> int:
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - start

    try:
        yield grown
    finally:
        tracemalloc.stop()


def listing_page(directory: int, count: int) -> list[dict[str, Any]]:
    """A listing page as the data client turns the server's JSON into infos (posix extension on)."""
    when = 1_700_000_000_123_456_789
    body = json.dumps([{"name": f"data/demo/many/d{directory:05d}/f{index:07d}", "size": 64,
                        "posix": {"mode": 0o100644, "uid": 1000, "gid": 1000, "mtime_ns": when + index,
                                  "atime_ns": when + index, "ctime_ns": when + index}}
                       for index in range(count)])
    infos = []
    for entry in json.loads(body):
        posix = Posix.from_json(entry["posix"])
        assert posix is not None
        infos.append({"name": entry["name"], "type": "file", "size": entry["size"], "etag": "",
                      "mtime": seconds(posix.mtime_ns), "posix": posix})
    return infos


def test_small_file_store_real_memory_stays_within_its_budget() -> None:
    """64-byte files with both validators (the listing's and the GET's ETag), read through a 4 MiB store:
    the files held stay within budget / charge, and what they really take stays within the budget (before
    the entry had slots: ~750 bytes per file against 704 charged, so the store outgrew its budget)."""
    budget = 4 << 20
    with traced() as grown:
        store = SmallFiles(budget)
        for index in range(3 * budget // (64 + ENTRY_OVERHEAD)):
            path = f"data/demo/many/d{index // 1000:05d}/f{index:07d}"
            version = file_version(path, Attr(FILE, 64, 1.7e9 + index / 1000))
            etag = '"' + hashlib.md5(path.encode()).hexdigest() + '"'
            store.read(version, lambda etag=etag: (bytes(64), etag))
            del version, etag, path
        stats = store.stats()
        used = grown()
    assert stats["evicted"] > 0
    assert stats["files"] <= budget // (64 + ENTRY_OVERHEAD) and stats["bytes"] <= budget
    assert used <= budget, f"{used / stats['files']:.0f} bytes per file held, {64 + ENTRY_OVERHEAD} charged"


def test_metadata_cache_listed_children_within_the_cap_and_bytes_documented() -> None:
    """Listings of 1,000 files each (posix extension) past ``max_entries``: the attributes held stay within
    the cap, and each costs at most the ~330 bytes docs/filesystem.md gives (~460 before ``compact``)."""
    cap = 20_000
    with traced() as grown:
        cache = MetadataCache(max_entries=cap)
        for directory in range(3 * cap // 1000):
            children = {info["name"].rpartition("/")[2]: compact(Attr.from_info(info))
                        for info in listing_page(directory, 1000)}
            cache.put_listing(f"data/demo/many/d{directory:05d}", children)
            del children
        stats = cache.stats()
        used = grown()
    assert stats["entries"] + stats["listed_entries"] <= cap
    assert stats["listed_entries"] >= cap // 2
    assert used / stats["listed_entries"] <= 330, f"{used / stats['listed_entries']:.0f} bytes per entry"


def test_compact_keeps_every_attribute() -> None:
    info = listing_page(0, 1)[0]
    attr = Attr.from_info(info)
    assert compact(attr) == attr
    assert compact(Attr(FILE, 3, 1.0, "e")) == Attr(FILE, 3, 1.0, "e")
    other = Attr(FILE, 3, 1.0, "", Posix(0o100600, None, 5, 10, 11, 12, "t"))
    assert compact(other) == other


def test_node_paths_swept_within_the_soft_limit_and_bytes_documented() -> None:
    """Paths up to the soft limit cost at most the ~130 bytes per path documented (~180 in an
    ``OrderedDict``); ten times the limit seen, swept as they come: at most the limit stays recorded, each
    path invalidated once, least recently seen first."""
    limit = 20_000
    with traced() as grown:
        nodes = NodeLimit(limit)
        for index in range(limit):
            nodes.seen(f"/data/demo/many/d{index // 1000:05d}/f{index:07d}".encode())
        used = grown()
    assert used / limit <= 130, f"{used / limit:.0f} bytes per path"
    invalidated: list[bytes] = []
    nodes._invalidate = lambda path: invalidated.append(path) or 0
    nodes.seen(b"/data/demo/many/d00000/f0000000")  # seen again: now the most recent
    for index in range(limit, 10 * limit):
        nodes.seen(f"/data/demo/many/d{index // 1000:05d}/f{index:07d}".encode())
        if index % 1000 == 999:
            nodes.sweep()
        assert nodes.stats()["paths"] <= limit + 1000
    nodes.sweep()
    assert nodes.stats()["paths"] <= limit
    assert len(invalidated) == len(set(invalidated)) == 10 * limit - nodes.stats()["paths"]
    assert invalidated[0] == b"/data/demo/many/d00000/f0000001"
    assert invalidated.index(b"/data/demo/many/d00000/f0000000") > invalidated.index(
        f"/data/demo/many/d{(limit - 1) // 1000:05d}/f{limit - 1:07d}".encode())


def test_prefetcher_state_bounded_by_runs_not_directories() -> None:
    """Opens in 2,000 directories (two files each, so each starts a run): at most ``MAX_RUNS`` runs and
    ``4 * MAX_RUNS`` seeds are kept, whatever the number of directories read."""
    store = SmallFiles(1 << 20)
    prefetcher = DirectoryPrefetcher(store, file_version, lambda version, attr: lambda: (b"", ""), 1 << 20,
                                     files_ahead=1, workers=1, idle_seconds=60)
    try:
        for directory in range(2000):
            listing = {f"f{index}": Attr(FILE, 0, 1.0) for index in range(4)}  # empty files: nothing fetched
            prefetcher.opened(f"d{directory}", "f0", listing)
            prefetcher.opened(f"d{directory}", "f1", listing)
        assert prefetcher.stats()["runs"] <= MAX_RUNS
        assert prefetcher.stats()["runs_started"] == 2000
        assert len(prefetcher._first_open) <= 4 * MAX_RUNS
    finally:
        prefetcher.close()


def test_prefetcher_state_of_unlisted_directories_is_capped() -> None:
    """Opens of 600 names in each of 200 directories nobody lists, whose listings never arrive: at most
    ``UNLISTED_NAMES`` names for at most ``4 * MAX_RUNS`` directories, and ``_listed`` as many."""
    store = SmallFiles(1 << 20)
    gate = threading.Event()  # the listings never come in
    prefetcher = DirectoryPrefetcher(store, file_version, lambda version, attr: lambda: (b"", ""), 1 << 20,
                                     files_ahead=1, workers=1, idle_seconds=60,
                                     list_of=lambda directory: gate.wait(5))
    try:
        for directory in range(200):
            for index in range(600):
                prefetcher.opened(f"d{directory}", f"f{index}", None)
        assert len(prefetcher._opened_unlisted) <= 4 * MAX_RUNS
        assert max(len(names) for names in prefetcher._opened_unlisted.values()) <= UNLISTED_NAMES
        assert len(prefetcher._first_open) <= 4 * MAX_RUNS and len(prefetcher._listed) <= 4 * MAX_RUNS
        assert prefetcher.stats()["listings"] == 200  # one listing asked per directory, not per open
    finally:
        gate.set()
        prefetcher.close()
