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


def test_concurrent_prefetches_reserve_their_bytes_so_the_budget_holds_while_they_run() -> None:
    """Ten prefetches of 100 bytes start together against a 500-byte budget: five are asked for, the rest
    are refused without a request, and no prefetched file is evicted unread (before issue 26's read-many
    work the budget counted a prefetch only once its GET answered: all ten ran, evicting each other's)."""
    store = SmallFiles(500, entry_overhead=0)
    release, calls = threading.Event(), []

    def fetch() -> tuple[bytes, str]:
        calls.append(1)
        release.wait(5)
        return b"x" * 100, ""

    threads = [threading.Thread(target=store.prefetch, args=(FileVersion(f"d/{i}", 100, f"v{i}"), fetch))
               for i in range(10)]
    for thread in threads:
        thread.start()
    release.set()
    for thread in threads:
        thread.join(5)
    stats = store.stats()
    assert len(calls) == 5 and stats["prefetches"] == 5
    assert stats["unread_bytes"] == 500 and stats["prefetch_wasted"] == 0 and stats["evicted"] == 0


def test_many_files_with_one_request_and_each_ones_own_outcome() -> None:
    store = SmallFiles(1 << 20, entry_overhead=0)
    a, b, c = (FileVersion(f"d/{n}", 3, n) for n in "abc")
    asked: list[list[FileVersion]] = []

    def many(versions: list[FileVersion]) -> dict[FileVersion, tuple[bytes, str] | BaseException]:
        asked.append(versions)
        return {a: (b"aaa", '"ea"'), b: (b"bbbbb", ""), c: OSError(errno.EACCES, "no")}

    assert store.read(a, lambda: (b"aaa", "")) == b"aaa"  # already held: not asked for again
    store.invalidate("d/a")
    assert store.prefetch_many([a, b, c], many) == [a]  # b: 5 bytes for a 3-byte version (stale)
    assert asked == [[a, b, c]]
    assert store.stats()["unread_bytes"] == 3  # only what is held counts; the failed ones' reservations end
    calls: list[int] = []
    assert store.read(a, lambda: (calls.append(1), (b"???", ""))[1]) == b"aaa" and not calls
    assert store.read(c, lambda: (b"ccc", "")) == b"ccc"  # a failed prefetch leaves the reader its own GET
    assert store.prefetch_many([a, c], many) == [] and len(asked) == 1  # both held: no request
