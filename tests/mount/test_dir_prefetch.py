"""``DirectoryPrefetcher`` on its own (no FUSE, no HTTP): when a run starts, which files it fetches, how
far ahead, within which memory, and that it stops with its reader."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator

import pytest
from waiting import wait_until

from algofs_jupyter.mount.block_index import FileVersion
from algofs_jupyter.mount.content_cache import file_version
from algofs_jupyter.mount.dir_prefetch import BATCH_FILES, DirectoryPrefetcher
from algofs_jupyter.mount.metadata_cache import DIRECTORY, FILE, Attr
from algofs_jupyter.mount.small_files import SmallFiles, WholeFetch

SMALL = 1000


class Fetches:
    """Whole-file GETs of files whose bytes are their name; records each request; ``gate`` holds them."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.lock = threading.Lock()
        self.gate = threading.Event()
        self.gate.set()

    def of(self, version: FileVersion, attr: Attr) -> WholeFetch:
        def fetch() -> tuple[bytes, str]:
            self.gate.wait(5)
            with self.lock:
                self.requests.append(version.path)
            return b"x" * version.size, ""

        return fetch

    def count(self) -> int:
        with self.lock:
            return len(self.requests)


def listing(count: int, size: int = 10) -> dict[str, Attr]:
    return {f"{i:03d}": Attr(FILE, size, 1.0) for i in range(count)}


@pytest.fixture
def fetches() -> Fetches:
    return Fetches()


def make(fetches: Fetches, budget: int = 1 << 20, files_ahead: int = 4,
         idle_seconds: float = 2.0) -> tuple[SmallFiles, DirectoryPrefetcher]:
    store = SmallFiles(budget, entry_overhead=0)  # these tests count data bytes
    prefetcher = DirectoryPrefetcher(store, file_version, fetches.of, SMALL, files_ahead=files_ahead,
                                     workers=2, idle_seconds=idle_seconds)
    return store, prefetcher


@pytest.fixture
def closing() -> Iterator[list[DirectoryPrefetcher]]:
    made: list[DirectoryPrefetcher] = []
    yield made
    for prefetcher in made:
        prefetcher.close()


def test_one_open_starts_nothing_a_second_one_starts_a_run_ahead_in_listing_order(
        fetches: Fetches, closing: list[DirectoryPrefetcher]) -> None:
    store, prefetcher = make(fetches, files_ahead=4)
    closing.append(prefetcher)
    files = listing(20)
    prefetcher.opened("d", "000", files)
    prefetcher.opened("d", "000", files)  # the same file again is no run
    time.sleep(0.2)
    assert fetches.count() == 0 and not prefetcher.active("d")
    prefetcher.opened("d", "001", files)
    assert prefetcher.active("d")
    # the run keeps files_ahead guesses (fetched, not opened yet): the 4 files after 001
    assert wait_until(lambda: fetches.count() == 4)
    time.sleep(0.2)
    assert sorted(fetches.requests) == [f"d/{i:03d}" for i in range(2, 6)]
    assert prefetcher.stats()["runs_started"] == 1 and prefetcher.stats()["requests"] == 4
    for i in range(2, 6):
        assert store.has(file_version(f"d/{i:03d}", files[f"{i:03d}"]))

    prefetcher.opened("d", "002", files)  # the reader opened a guess: one more ahead
    assert wait_until(lambda: fetches.count() == 5)
    assert fetches.requests[-1] == "d/006"


def test_large_files_directories_and_files_held_are_skipped(fetches: Fetches,
                                                            closing: list[DirectoryPrefetcher]) -> None:
    store, prefetcher = make(fetches, files_ahead=8)
    closing.append(prefetcher)
    files = {"a": Attr(FILE, 10, 1.0), "b": Attr(FILE, 10, 1.0), "c": Attr(FILE, SMALL + 1, 1.0),
             "d": Attr(DIRECTORY), "e": Attr(FILE, 0, 1.0), "f": Attr(FILE, 10, 1.0),
             "g": Attr(FILE, 10, 1.0)}
    store.read(file_version("dir/f", files["f"]), lambda: (b"x" * 10, ""))  # already here
    prefetcher.opened("dir", "a", files)
    prefetcher.opened("dir", "b", files)
    assert wait_until(lambda: fetches.count() == 1)
    time.sleep(0.2)
    assert fetches.requests == ["dir/g"]


def test_unread_prefetched_bytes_stay_within_the_store_budget(fetches: Fetches,
                                                              closing: list[DirectoryPrefetcher]) -> None:
    store, prefetcher = make(fetches, budget=35, files_ahead=50)
    closing.append(prefetcher)
    files = listing(30)
    prefetcher.opened("d", "000", files)
    prefetcher.opened("d", "001", files)
    assert wait_until(lambda: fetches.count() == 3)
    time.sleep(0.2)
    assert fetches.count() == 3 and store.unread_bytes <= 35

    store.read(file_version("d/002", files["002"]), lambda: (b"?", ""))  # read: room again
    prefetcher.opened("d", "002", files)
    assert wait_until(lambda: fetches.count() == 4)
    assert store.unread_bytes <= 35


def test_a_run_ends_with_its_reader_and_queued_fetches_are_dropped_without_a_request(
        fetches: Fetches, closing: list[DirectoryPrefetcher]) -> None:
    store, prefetcher = make(fetches, files_ahead=10, idle_seconds=0.3)
    closing.append(prefetcher)
    files = listing(40)
    fetches.gate.clear()  # the two workers hold their first fetch; the rest wait in the queue
    prefetcher.opened("d", "000", files)
    prefetcher.opened("d", "001", files)
    time.sleep(0.5)  # the reader stopped: the run is idle
    assert not prefetcher.active("d")
    fetches.gate.set()
    time.sleep(0.3)
    assert fetches.count() <= 2, f"{fetches.requests}: fetches of an idle run went out"
    assert prefetcher.stats()["runs"] == 1  # ended runs are replaced on the next open, not swept

    prefetcher.opened("d", "030", files)  # after the idle time: a first open again, no run
    time.sleep(0.2)
    assert fetches.count() <= 2


def test_shuffled_readers_get_files_from_where_the_prefetcher_got_to(
        fetches: Fetches, closing: list[DirectoryPrefetcher]) -> None:
    store, prefetcher = make(fetches, files_ahead=3)
    closing.append(prefetcher)
    files = listing(50)
    prefetcher.opened("d", "020", files)
    prefetcher.opened("d", "005", files)  # further than files_ahead from the cursor: not followed
    assert wait_until(lambda: fetches.count() == 3)
    time.sleep(0.2)
    assert sorted(fetches.requests) == [f"d/{i:03d}" for i in range(3)]
    prefetcher.opened("d", "040", files)  # not a guess: earns nothing
    time.sleep(0.2)
    assert fetches.count() == 3
    prefetcher.opened("d", "001", files)  # a guess: the run goes on from its cursor, skipping opened files
    assert wait_until(lambda: fetches.count() == 4)
    assert fetches.requests[-1] == "d/003"
    prefetcher.opened("d", "002", files)
    prefetcher.opened("d", "003", files)
    assert wait_until(lambda: fetches.count() == 6)
    assert fetches.requests[-2:] == ["d/004", "d/006"]  # 005 was opened: never fetched


def test_shuffled_readers_of_part_of_a_directory_leave_at_most_files_ahead_unread(
        fetches: Fetches, closing: list[DirectoryPrefetcher]) -> None:
    """Readers open a shuffled third of a directory: the guesses nobody opens stay within files_ahead
    (before issue 26 the run fetched files_ahead more than the opens, in listing order: ~2/3 unread)."""
    store, prefetcher = make(fetches, files_ahead=8)
    closing.append(prefetcher)
    files = listing(600)
    names = sorted(files)
    wanted = random.Random(3).sample(names, 200)
    for name in wanted:
        version = file_version(f"d/{name}", files[name])
        prefetcher.opened("d", name, files)
        store.read(version, fetches.of(version, files[name]))
    time.sleep(0.3)
    small = store.stats()
    never_read = small["prefetches"] - small["prefetch_hits"]
    assert never_read <= 8, f"{never_read} prefetched files never read ({small})"
    assert fetches.count() <= 200 + 8


def test_a_run_whose_guesses_are_dropped_unread_stops_fetching(fetches: Fetches,
                                                               closing: list[DirectoryPrefetcher]) -> None:
    """Guesses evicted before anyone read them are waste: past a tenth of the run's guesses it stops."""
    store, prefetcher = make(fetches, budget=1 << 20, files_ahead=4)
    closing.append(prefetcher)
    files = listing(100)
    prefetcher.opened("d", "050", files)
    prefetcher.opened("d", "060", files)
    assert wait_until(lambda: fetches.count() == 4)  # 000..003
    for i in range(4):
        store.invalidate(f"d/{i:03d}")  # dropped unread (as an eviction would)
    prefetcher.opened("d", "070", files)  # the run hears of its waste here
    time.sleep(0.3)
    stats = prefetcher.stats()
    assert stats["wasted"] == 4 and stats["runs_stopped"] == 1
    assert store.stats()["prefetch_wasted"] == 4
    for name in ("071", "072", "073", "074", "075"):
        prefetcher.opened("d", name, files)
    time.sleep(0.3)
    assert fetches.count() == 4, f"a stopped run fetched {fetches.requests[4:]}"


class ManyFetches:
    """One request for many files (read-many): records the paths of each request."""

    def __init__(self) -> None:
        self.requests: list[list[str]] = []
        self.lock = threading.Lock()

    def __call__(self, versions: list[FileVersion]) -> dict[FileVersion, tuple[bytes, str] | BaseException]:
        with self.lock:
            self.requests.append([v.path for v in versions])
        return {v: (v.path.encode().ljust(v.size, b"."), "") for v in versions}

    def files(self) -> list[str]:
        with self.lock:
            return [path for request in self.requests for path in request]


def make_many(fetches: Fetches, many: ManyFetches, files_ahead: int = 64,
              budget: int = 1 << 20) -> tuple[SmallFiles, DirectoryPrefetcher]:
    store = SmallFiles(budget, entry_overhead=0)
    prefetcher = DirectoryPrefetcher(store, file_version, fetches.of, SMALL, files_ahead=files_ahead,
                                     workers=2, many_of=lambda directory: many if directory == "d" else None)
    return store, prefetcher


def test_with_read_many_a_run_fetches_whole_batches(fetches: Fetches,
                                                    closing: list[DirectoryPrefetcher]) -> None:
    many = ManyFetches()
    store, prefetcher = make_many(fetches, many, files_ahead=64)
    closing.append(prefetcher)
    files = listing(200)
    prefetcher.opened("d", "000", files)
    prefetcher.opened("d", "001", files)
    assert wait_until(lambda: len(many.files()) == 64)
    assert [len(r) for r in many.requests] == [BATCH_FILES, BATCH_FILES] and fetches.count() == 0
    for name in ("002", "003"):  # two guesses opened: room for 2, not for a batch
        prefetcher.opened("d", name, files)
        version = file_version(f"d/{name}", files[name])
        assert store.read(version, fetches.of(version, files[name])).startswith(version.path.encode())
    time.sleep(0.2)
    assert len(many.requests) == 2 and fetches.count() == 0


def test_a_readers_miss_takes_the_runs_next_files_along_in_one_request(
        fetches: Fetches, closing: list[DirectoryPrefetcher]) -> None:
    """Shuffled readers mostly open files no one fetched yet: each such miss is one request that brings
    its file and the next BATCH_FILES - 1 of the listing (over files_ahead), so a shuffled pass over N
    files costs about N / BATCH_FILES requests; a miss outside a run, or in a stopped one, is a GET."""
    many = ManyFetches()
    store, prefetcher = make_many(fetches, many, files_ahead=4)
    closing.append(prefetcher)
    files = listing(300)
    names = sorted(files)
    shuffled = names[:]
    random.Random(5).shuffle(shuffled)
    for name in shuffled:
        version = file_version(f"d/{name}", files[name])
        prefetcher.opened("d", name, files)
        fetch = fetches.of(version, files[name])

        def miss(v: FileVersion = version, f: WholeFetch = fetch) -> tuple[bytes, str]:
            return prefetcher.fetch_along(v) or f()

        assert store.read(version, miss) in (version.path.encode().ljust(version.size, b"."),
                                             b"x" * version.size)
    time.sleep(0.2)
    small = store.stats()
    requests = len(many.requests) + fetches.count()
    assert requests <= len(names) // 8, f"{requests} requests for {len(names)} files ({small})"
    assert sorted(set(many.files()) | set(fetches.requests)) == [f"d/{n}" for n in names]
    assert len(many.files()) + fetches.count() == len(names), "a file was fetched twice"
    assert small["prefetch_wasted"] == 0
    other = file_version("e/x", files["000"])  # a directory without a run: the reader GETs it
    assert prefetcher.fetch_along(other) is None


def test_the_files_a_miss_takes_along_fit_in_one_answer(fetches: Fetches, closing: list[DirectoryPrefetcher],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The server answers at most 2 MiB per read-many: a miss takes along only what fits with its file."""
    from algofs_jupyter.mount import dir_prefetch

    monkeypatch.setattr(dir_prefetch, "BATCH_BYTES", 3 * SMALL)
    many = ManyFetches()
    store, prefetcher = make_many(fetches, many, files_ahead=1)
    closing.append(prefetcher)
    files = listing(50, size=SMALL)
    prefetcher.opened("d", "010", files)
    prefetcher.opened("d", "020", files)  # a run: its first guess ("000") goes alone
    assert wait_until(lambda: len(many.requests) == 1)
    version = file_version("d/030", files["030"])
    prefetcher.opened("d", "030", files)
    assert prefetcher.fetch_along(version) == (version.path.encode().ljust(SMALL, b"."), "")
    assert many.requests[-1] == ["d/030", "d/001", "d/002"]  # 3 x SMALL bytes: the reader's and two more
    assert store.has(file_version("d/002", files["002"]))
    assert not store.has(file_version("d/003", files["003"]))


class Lister:
    """``list_of`` for the prefetcher: records each directory asked for; ``gate`` holds the listing."""

    def __init__(self, fail: bool = False) -> None:
        self.listed: list[str] = []
        self.gate = threading.Event()
        self.gate.set()
        self.fail = fail

    def __call__(self, directory: str) -> None:
        self.gate.wait(5)
        self.listed.append(directory)
        if self.fail:
            raise OSError(5, "listing failed")


def test_an_unlisted_directory_is_listed_at_its_second_open_and_the_run_starts_after(
        fetches: Fetches, closing: list[DirectoryPrefetcher]) -> None:
    """A loader that takes its names from an index lists nothing: the prefetcher lists the directory once
    (not again within LIST_AGAIN_SECONDS) and the opens after the listing start the run."""
    lister = Lister()
    store = SmallFiles(1 << 20, entry_overhead=0)
    prefetcher = DirectoryPrefetcher(store, file_version, fetches.of, SMALL, files_ahead=4, workers=2,
                                     list_of=lister)
    closing.append(prefetcher)
    prefetcher.opened("d", "000", None)
    prefetcher.opened("d", "000", None)  # the same file again: no listing
    time.sleep(0.1)
    assert lister.listed == [] and prefetcher.stats()["listings"] == 0
    prefetcher.opened("d", "001", None)
    assert wait_until(lambda: lister.listed == ["d"])
    for name in ("002", "003", "004"):  # still unlisted (the cache dropped it, say): no second listing
        prefetcher.opened("d", name, None)
    time.sleep(0.1)
    assert lister.listed == ["d"] and fetches.count() == 0 and prefetcher.stats()["listings"] == 1
    files = listing(20)  # the listing is in: the next open starts the run (its seed: the open before)
    prefetcher.opened("d", "005", files)
    assert prefetcher.active("d")
    assert wait_until(lambda: fetches.count() == 4)
    time.sleep(0.1)
    # the files opened before the listing are the readers' already: not fetched again
    assert sorted(fetches.requests) == [f"d/{i:03d}" for i in range(6, 10)]
    assert prefetcher.stats()["runs_started"] == 1


def test_without_a_lister_or_with_a_failing_one_readers_go_on_unprefetched(
        fetches: Fetches, closing: list[DirectoryPrefetcher]) -> None:
    store, plain = make(fetches)
    closing.append(plain)
    failing = Lister(fail=True)
    broken = DirectoryPrefetcher(store, file_version, fetches.of, SMALL, files_ahead=4, workers=2,
                                 list_of=failing)
    closing.append(broken)
    for prefetcher in (plain, broken):
        for name in ("000", "001", "002"):
            prefetcher.opened("d", name, None)
    assert wait_until(lambda: failing.listed == ["d"])
    time.sleep(0.1)
    assert fetches.count() == 0 and not plain.active("d") and not broken.active("d")
    assert plain.stats()["listings"] == 0 and broken.stats()["listings"] == 1
