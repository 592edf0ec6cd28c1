"""The small-file store on its own (no FUSE): one GET per version, a byte budget, failed prefetches."""

from __future__ import annotations

import errno
import threading

import pytest

from algofs_jupyter.mount.block_index import FileVersion
from algofs_jupyter.mount.small_files import ENTRY_OVERHEAD, SmallFiles


def test_concurrent_readers_share_one_fetch() -> None:
    store = SmallFiles(1 << 20)
    version = FileVersion("d/a", 3, "size3-mtime1")
    started, release, calls = threading.Event(), threading.Event(), []

    def fetch() -> tuple[bytes, str]:
        calls.append(1)
        started.set()
        release.wait(5)
        return b"abc", '"e1"'

    results: list[bytes] = []
    first = threading.Thread(target=lambda: results.append(store.read(version, fetch)))
    first.start()
    started.wait(5)
    second = threading.Thread(target=lambda: results.append(store.read(version, fetch)))
    second.start()
    release.set()
    first.join(5)
    second.join(5)
    assert results == [b"abc", b"abc"] and len(calls) == 1
    assert store.read(FileVersion("d/a", 3, '"e1"'), fetch) == b"abc"  # the GET's ETag also matches
    assert len(calls) == 1


def test_unread_prefetches_stay_within_the_budget_and_read_files_go_first() -> None:
    store = SmallFiles(10, entry_overhead=0)
    assert store.prefetch(FileVersion("d/a", 4, "a"), lambda: (b"aaaa", ""))
    assert store.prefetch(FileVersion("d/b", 4, "b"), lambda: (b"bbbb", ""))
    assert not store.prefetch(FileVersion("d/c", 4, "c"), lambda: (b"cccc", ""))  # no room: no request
    assert store.read(FileVersion("d/a", 4, "a"), lambda: (b"????", "")) == b"aaaa"
    assert store.prefetch(FileVersion("d/c", 4, "c"), lambda: (b"cccc", ""))
    stats = store.stats()
    assert stats["bytes"] <= 10 and stats["unread_bytes"] == 8 and stats["evicted"] == 1  # "a" went


def test_a_reader_refetches_when_the_prefetch_it_waited_for_failed() -> None:
    store = SmallFiles(1 << 20)
    version = FileVersion("d/a", 2, "v")
    started, release = threading.Event(), threading.Event()

    def failing() -> tuple[bytes, str]:
        started.set()
        release.wait(5)
        raise OSError(5, "backend hiccup")

    prefetch = threading.Thread(target=store.prefetch, args=(version, failing))
    prefetch.start()
    started.wait(5)
    out: list[bytes] = []
    reader = threading.Thread(target=lambda: out.append(store.read(version, lambda: (b"ok", ""))))
    reader.start()
    release.set()
    prefetch.join(5)
    reader.join(5)
    assert out == [b"ok"]


def test_a_changed_size_is_stale() -> None:
    store = SmallFiles(1 << 20)
    with pytest.raises(OSError) as caught:
        store.read(FileVersion("d/a", 4, "v"), lambda: (b"longer now", ""))
    assert caught.value.errno == errno.ESTALE


def test_tiny_files_are_charged_their_bookkeeping_so_the_files_held_are_capped() -> None:
    """100,000 64-byte files read through a 1 MiB store: at most budget / (64 + ENTRY_OVERHEAD) stay held
    (before issue 26 only data bytes counted: all 100,000 entries, ~60 MiB of daemon memory, stayed)."""
    store = SmallFiles(1 << 20)
    for index in range(100_000):
        store.read(FileVersion(f"d/f{index:06d}", 64, f"v{index}"), lambda: (b"x" * 64, ""))
    stats = store.stats()
    assert stats["files"] <= (1 << 20) // (64 + ENTRY_OVERHEAD) and stats["bytes"] <= 1 << 20
    newest = FileVersion("d/f099999", 64, "v99999")
    assert store.read(newest, lambda: (b"?" * 64, "")) == b"x" * 64  # the newest is kept
