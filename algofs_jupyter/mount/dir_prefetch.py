"""Fetching the next small files of a directory ahead of a reader that goes through its files.

Data loaders open the files of one directory one after another (in listing order, or shuffled). Each
cold file is one GET (``small_files``); served one at a time that is one round trip per file. Once a
second file of the same listed directory is opened within ``idle_seconds`` of the first (a *run*), the
prefetcher fetches files of that directory's listing ahead, on ``workers`` threads.

A directory nobody listed (a loader that takes its file names from an index, not from a walk) has no
listing to go by, and each of its cold files cost a HEAD (the lookup) and a GET. There the second open
lists the directory in the background (``list_of``: one request per 1,000 names; a directory is listed
so at most once per ``LIST_AGAIN_SECONDS``), and the opens after the listing has arrived start the run
as in a listed one; the listing also answers the lookups. So:

* **which files**: listing order, starting after the file just opened when the reader moves forward
  (sequential reader), else from where the prefetcher got to (shuffled readers); files larger than the
  small-file size, directories and files already in memory are skipped;
* **how far**: a run keeps at most ``files_ahead`` *guesses* (files it fetched that no reader opened yet)
  outstanding, and never more unread bytes than the small-file budget. Only a guess a reader opens makes
  room for the next one: opens of other files earn nothing. A sequential reader opens every guess, so the
  run stays ``files_ahead`` in front of it; shuffled readers open few of them, so the run sits still with
  its ``files_ahead`` guesses instead of fetching the listing in order at the readers' pace (what issue 26
  measured: 12,206 requests for 10,000 files, the readers evicting each other's prefetches). A name a
  reader opened or the run fetched is never fetched again by the run (``seen``, one byte per listed file);
* **how**, with the server's ``read-many`` extension (docs/api-extensions.md §12): ``BATCH_FILES`` files
  (at most ``BATCH_BYTES``) per request, picked once a whole batch fits in ``files_ahead``; and a reader's
  *miss* (a file of the run's directory no one fetched yet: what shuffled readers mostly open) fetches its
  file and the run's next ``BATCH_FILES - 1`` files in one request (``fetch_along``), over ``files_ahead``:
  the request is made anyway, and the files along cost bytes, not requests. One GET per small file cost
  the server ~0.8 ms and the mount ~0.9 ms of CPU (issue 26), more than the file's bytes. A reader that
  stops after *k* misses leaves at most ``files_ahead`` + 31 *k* files unread (and the tenth rule below
  stops a run whose guesses are evicted unread). Without the extension, one GET per file;
* **when it stops guessing**: a guess dropped from the store unread (evicted, invalidated: *wasted*,
  ``SmallFiles.take_wasted``) counts against the run; once more than a tenth of its resolved guesses
  (opened or wasted, at least ``MIN_WASTED``) were wasted, the run stops fetching and its readers fetch
  their own files;
* **when it ends**: ``idle_seconds`` after the last open in the directory (an exhausted listing just leaves
  it idle); queued fetches of an ended run are dropped without a request.

Attributes come from the listing, so a prefetched file costs one request and its open none.

Locks (names of docs/architecture.md's *mount lock order*): ``DirectoryPrefetcher._lock`` guards ``_runs``,
``_first_open``, ``_listed``, the counters and every field of ``_Run``; never held across a fetch, a listing
or a pool submit.
``DirectoryPrefetcher._lock`` before ``SmallFiles._lock`` (small_files.py, a leaf): ``SmallFiles.has``
while picking files.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from .block_index import FileVersion
from .metadata_cache import FILE, Attr
from .small_files import ManyFetch, SmallFiles, WholeFetch

log = logging.getLogger(__name__)

#: At most this many directories have a run at once (the oldest is ended first).
MAX_RUNS = 16


#: A directory listed for a run (``list_of``) is not listed for one again sooner than this: a listing
#: too large for the metadata cache (or a failed one) would otherwise be made again at every second open.
LIST_AGAIN_SECONDS = 60.0
#: Names remembered per unlisted directory until its run starts (``_opened_unlisted``).
UNLISTED_NAMES = 256
#: Wasted guesses a run may have before the tenth rule can stop it.
MIN_WASTED = 4
#: A file a run fetches: its index in the run's names, path, version and attributes.
Job = tuple[int, str, FileVersion, Attr]
#: Files, and bytes, per read-many request of a run.
BATCH_FILES = 32
BATCH_BYTES = 2 << 20


@dataclass
class _Run:
    listing: dict[str, Attr]  # the metadata cache's own dict (no copy)
    names: list[str]  # the small files of the listing, sorted
    last_open: float
    cursor: int = 0  # index in ``names`` the prefetcher continues from
    ended: bool = False
    stopped: bool = False  # too many guesses went unread: no more fetches
    seen: bytearray = field(default_factory=bytearray)  # per name: 1 = opened or fetched by the run
    guesses: set[int] = field(default_factory=set)  # indices fetched (or being fetched), not opened yet
    confirmed: int = 0  # guesses a reader opened
    wasted: int = 0  # guesses dropped unread
    many: ManyFetch | None = None  # the read-many of the directory's storage, if it has one

    def __post_init__(self) -> None:
        self.seen = bytearray(len(self.names))

    def index(self, name: str) -> int | None:
        position = bisect.bisect_left(self.names, name)
        return position if position < len(self.names) and self.names[position] == name else None


class DirectoryPrefetcher:
    def __init__(self, store: SmallFiles, version_of: Callable[[str, Attr], FileVersion],
                 fetch_of: Callable[[FileVersion, Attr], WholeFetch], small_file_size: int,
                 files_ahead: int = 64, workers: int = 8, idle_seconds: float = 2.0,
                 many_of: Callable[[str], ManyFetch | None] | None = None,
                 list_of: Callable[[str], object] | None = None):
        """``many_of(directory)``: one request for many of its files, None where the storage has none.
        ``list_of(directory)``: list it into the metadata cache (where ``opened``'s listing comes from);
        None: runs start in listed directories only."""
        self.store = store
        self.version_of = version_of
        self.fetch_of = fetch_of
        self.many_of = many_of
        self.list_of = list_of
        self.small_file_size = small_file_size
        self.files_ahead = files_ahead
        self.idle_seconds = idle_seconds
        self._lock = threading.Lock()
        self._runs: dict[str, _Run] = {}
        self._first_open: dict[str, tuple[str, float]] = {}  # directory -> (name, when): a run's seed
        self._listed: dict[str, float] = {}  # directory -> when a listing of it was asked for (list_of)
        #: directory -> names opened while it had no listing (at most UNLISTED_NAMES): readers have them
        #: (by a version from their lookup's HEAD, which the listing's does not match), so the run skips them
        self._opened_unlisted: dict[str, set[str]] = {}
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="algofs-dir-prefetch")
        self.runs_started = 0
        self.runs_stopped = 0
        self.listings = 0  # directories listed for a run (list_of)
        self.requests = 0
        self.confirmed = 0
        self.wasted = 0
        self._closed = False

    @property
    def enabled(self) -> bool:
        return self.files_ahead > 0 and not self._closed

    def opened(self, directory: str, name: str, listing: dict[str, Attr] | None) -> None:
        """A reader opened ``directory/name``; ``listing`` is the directory's fresh listing (or None)."""
        if not self.enabled:
            return
        now = time.monotonic()
        if listing is None:
            if self.list_of is not None and self._second_open(directory, name, now):
                self._pool.submit(self._list, directory)
            return
        wasted = self.store.take_wasted()
        with self._lock:
            for path in wasted:
                self._wasted_locked(path)
            run = self._runs.get(directory)
            if run is not None and now - run.last_open > self.idle_seconds:
                run = None
                del self._runs[directory]
            if run is None:
                first = self._second_open_locked(directory, name, now)
                if first is None:
                    return
                del self._first_open[directory]
                run = self._start_run_locked(directory, listing, now)
                self._opened_locked(run, first)
            elif run.listing is not listing:  # listed again since (the TTL ran out): new attributes
                run.listing = listing
                names = self._small_names(listing)
                if names != run.names:  # changed: start over (files already here are skipped)
                    run.names, run.cursor, run.guesses = names, 0, set()
                    run.seen = bytearray(len(names))
            run.last_open = now
            if run.many is None and self.many_of is not None:  # capabilities learnt since the run began
                run.many = self.many_of(directory)
            self._opened_locked(run, name)
            position = bisect.bisect_right(run.names, name)
            if position > run.cursor and position - run.cursor <= self.files_ahead:
                run.cursor = position  # a reader ahead of us: continue after it
            jobs = self._pick_locked(directory, run)
        if run.many is None:
            for index, path, version, attr in jobs:
                self._pool.submit(self._prefetch, run, index, path, version, attr)
            return
        for batch in _batches(jobs):
            self._pool.submit(self._prefetch_many, run, run.many, batch)

    def _second_open_locked(self, directory: str, name: str, now: float) -> str | None:
        """The name of ``directory``'s seed when this open is a second one (another file, within
        ``idle_seconds`` of it); else None, and this open is the seed now."""
        seed = self._first_open.get(directory)
        if seed is not None and seed[0] != name and now - seed[1] <= self.idle_seconds:
            return seed[0]
        if len(self._first_open) >= 4 * MAX_RUNS and seed is None:
            self._first_open.clear()
            self._opened_unlisted.clear()
        self._first_open[directory] = (name, now)
        return None

    def _second_open(self, directory: str, name: str, now: float) -> bool:
        """Whether this open of an unlisted ``directory`` is the second (of another file, within
        ``idle_seconds``) and it is time to list it; the open is then the seed of the coming run."""
        with self._lock:
            second = self._second_open_locked(directory, name, now) is not None
            self._first_open[directory] = (name, now)
            opened = self._opened_unlisted.setdefault(directory, set())
            if len(opened) < UNLISTED_NAMES:
                opened.add(name)
            if not second:
                return False
            if now - self._listed.get(directory, -LIST_AGAIN_SECONDS) < LIST_AGAIN_SECONDS:
                return False
            if len(self._listed) >= 4 * MAX_RUNS:  # the oldest go first (insertion order)
                self._listed = {d: t for d, t in self._listed.items() if now - t < LIST_AGAIN_SECONDS}
                while len(self._listed) >= 4 * MAX_RUNS:
                    del self._listed[next(iter(self._listed))]
            self._listed[directory] = now
            self.listings += 1
            return True

    def _list(self, directory: str) -> None:
        assert self.list_of is not None
        if self._closed:
            return
        try:
            self.list_of(directory)
        except Exception:  # noqa: BLE001 - the readers go on as before: a lookup and a GET per file
            log.debug("listing %s for a prefetch run failed", directory, exc_info=True)

    def active(self, directory: str) -> bool:
        """Whether readers are going through ``directory`` (a run that is not idle)."""
        with self._lock:
            run = self._runs.get(directory)
            return run is not None and time.monotonic() - run.last_open <= self.idle_seconds

    def end_all(self) -> None:
        with self._lock:
            for run in self._runs.values():
                run.ended = True
            self._runs.clear()
            self._first_open.clear()
            self._listed.clear()
            self._opened_unlisted.clear()

    def close(self) -> None:
        self._closed = True
        self.end_all()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"runs": len(self._runs), "runs_started": self.runs_started,
                    "runs_stopped": self.runs_stopped, "listings": self.listings, "requests": self.requests,
                    "confirmed": self.confirmed, "wasted": self.wasted, "files_ahead": self.files_ahead}

    # -- internals --------------------------------------------------------------------------------

    def _start_run_locked(self, directory: str, listing: dict[str, Attr], now: float) -> _Run:
        if len(self._runs) >= MAX_RUNS:
            oldest = min(self._runs, key=lambda d: self._runs[d].last_open)
            self._runs.pop(oldest).ended = True
        run = self._runs[directory] = _Run(listing, self._small_names(listing), now)
        for name in self._opened_unlisted.pop(directory, ()):
            index = run.index(name)
            if index is not None:
                run.seen[index] = 1
        run.many = self.many_of(directory) if self.many_of is not None else None
        self.runs_started += 1
        return run

    def _small_names(self, listing: dict[str, Attr]) -> list[str]:
        return sorted(n for n, a in listing.items() if a.kind == FILE and 0 < a.size <= self.small_file_size)

    def _opened_locked(self, run: _Run, name: str) -> None:
        index = run.index(name)
        if index is None:
            return
        run.seen[index] = 1
        if index in run.guesses:
            run.guesses.discard(index)
            run.confirmed += 1
            self.confirmed += 1

    def _wasted_locked(self, path: str) -> None:
        """A guess of ``path`` left the store unread: it counts against its run (the tenth rule)."""
        directory, _, name = path.rpartition("/")
        run = self._runs.get(directory)
        index = run.index(name) if run is not None else None
        if run is None or index is None or index not in run.guesses:
            return
        run.guesses.discard(index)
        run.wasted += 1
        self.wasted += 1
        if not run.stopped and run.wasted >= MIN_WASTED and 10 * run.wasted > run.wasted + run.confirmed:
            run.stopped = True
            self.runs_stopped += 1
            log.info("prefetch in %s stopped: %d of %d guesses went unread", directory, run.wasted,
                     run.wasted + run.confirmed)

    def _pick_locked(self, directory: str, run: _Run, limit: int = 0, room: int = 0) -> list[Job]:
        """The next files to fetch, within the run's allowance (files) and the memory budget (bytes); with
        read-many, only once a whole batch fits (or the listing's end does). ``limit``: at most that many
        files, of at most ``room`` bytes in all, whether a batch fits or not (a reader's miss takes them
        along)."""
        jobs: list[Job] = []
        allowance = self.files_ahead
        batch = min(BATCH_FILES, self.files_ahead, len(run.names) - run.cursor)
        if limit:  # the request is made anyway: files along cost bytes, not requests
            allowance = len(run.guesses) + limit
        elif run.many is not None and allowance - len(run.guesses) < batch:
            return jobs
        unread = self.store.unread_bytes  # a snapshot: the store re-checks its budget per fetch
        while not run.stopped and len(run.guesses) < allowance:
            index = run.seen.find(0, run.cursor)
            if index < 0 and limit:  # names the cursor jumped over (a reader ahead of it, or shuffled)
                index = run.seen.find(0)
            if index < 0:
                run.cursor = len(run.names)
                break
            name = run.names[index]
            run.cursor = index + 1
            attr = run.listing.get(name)
            if attr is None:
                run.seen[index] = 1
                continue
            path = f"{directory}/{name}"
            version = self.version_of(path, attr)
            if self.store.has(version):
                run.seen[index] = 1
                continue
            too_big = limit and version.size > room  # for the request it would go in
            if too_big or unread + self.store.charge(version.size) > self.store.budget:
                run.cursor = index  # no room now; retry on the next open
                break
            room -= version.size
            unread += self.store.charge(version.size)
            run.seen[index] = 1
            run.guesses.add(index)
            jobs.append((index, path, version, attr))
        return jobs  # an exhausted run stays until idle: no rescans of the listing per open

    def fetch_along(self, version: FileVersion) -> tuple[bytes, str] | None:
        """A reader's miss in a directory a read-many run goes through: its file and the run's next files
        in one request (its answer, or its error raised). None: no such run, or nothing to take along
        (the reader GETs its file)."""
        directory = version.path.rpartition("/")[0]
        with self._lock:
            run = self._runs.get(directory)
            if run is None or run.many is None or run.ended or run.stopped:
                return None
            jobs = self._pick_locked(directory, run, limit=BATCH_FILES - 1, room=BATCH_BYTES - version.size)
        if not jobs:
            return None
        many, answer = run.many, None

        def fetch(versions: list[FileVersion]) -> dict[FileVersion, tuple[bytes, str] | BaseException]:
            nonlocal answer
            answers = many([version, *versions])
            answer = answers.get(version)
            return answers

        self._prefetch_many(run, fetch, jobs)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def _prefetch_many(self, run: _Run, many: ManyFetch, batch: list[Job]) -> None:
        kept: list[FileVersion] = []
        if not (run.ended or run.stopped or self._closed
                or time.monotonic() - run.last_open > self.idle_seconds):  # else the readers stopped
            try:
                kept = self.store.prefetch_many([version for _, _, version, _ in batch], many)
            except Exception:  # noqa: BLE001 - readers that need the files fetch them themselves
                log.debug("prefetch of %d files failed", len(batch), exc_info=True)
        with self._lock:
            self.requests += 1 if kept else 0
            held = set(kept)
            for index, _, version, _ in batch:
                if version not in held:  # not ours to wait for: no guess (an open still finds it seen)
                    run.guesses.discard(index)

    def _prefetch(self, run: _Run, index: int, path: str, version: FileVersion, attr: Attr) -> None:
        fetched = False
        try:
            if not (run.ended or run.stopped or self._closed
                    or time.monotonic() - run.last_open > self.idle_seconds):  # else the reader stopped
                fetched = self.store.prefetch(version, self.fetch_of(version, attr))
        except Exception:  # noqa: BLE001 - a reader that needs the file fetches it itself
            log.debug("prefetch of %s failed", path, exc_info=True)
        with self._lock:
            if fetched:
                self.requests += 1
            else:  # nothing of ours is held: the guess is no guess (a reader's open still finds it seen)
                run.guesses.discard(index)


def _batches(jobs: list[Job]) -> list[list[Job]]:
    """``jobs`` cut into read-many requests of at most ``BATCH_FILES`` files and ``BATCH_BYTES`` bytes."""
    batches: list[list[Job]] = []
    size = 0
    for job in jobs:
        if not batches or len(batches[-1]) >= BATCH_FILES or size + job[3].size > BATCH_BYTES:
            batches.append([])
            size = 0
        batches[-1].append(job)
        size += job[3].size
    return batches
