"""Fetching the next small files of a directory ahead of a reader that goes through its files.

Data loaders open the files of one directory one after another (in listing order, or shuffled). Each
cold file is one GET (``small_files``); served one at a time that is one round trip per file. Once a
second file of the same listed directory is opened within ``idle_seconds`` of the first (a *run*), the
prefetcher fetches files of that directory's listing ahead, on ``workers`` threads:

* **which files**: listing order, starting after the file just opened when the reader moves forward
  (sequential reader), else from where the prefetcher got to (shuffled readers); files larger than the
  small-file size, directories and files already in memory are skipped;
* **how far**: the run may fetch at most ``files_ahead`` files more than its readers opened, and never
  more unread bytes than the small-file budget: the memory and the wasted requests after the reader
  stops are bounded by that;
* **when it stops**: the run ends ``idle_seconds`` after the last open in the directory (an exhausted
  listing just leaves it idle); queued fetches of an ended run are dropped without a request.

Attributes come from the listing, so a prefetched file costs one request and its open none.

Locks (names of docs/architecture.md's *mount lock order*): ``DirectoryPrefetcher._lock`` guards ``_runs``,
``_first_open``, the counters and every field of ``_Run``; never held across a fetch or a pool submit.
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
from .small_files import SmallFiles, WholeFetch

log = logging.getLogger(__name__)

#: At most this many directories have a run at once (the oldest is ended first).
MAX_RUNS = 16


@dataclass
class _Run:
    listing: dict[str, Attr]  # the metadata cache's own dict (no copy)
    names: list[str]  # the small files of the listing, sorted
    last_open: float
    opened: int = 1
    scheduled: int = 0
    cursor: int = 0  # index in ``names`` the prefetcher continues from
    ended: bool = False
    recent: set[str] = field(default_factory=set)  # names opened (bounded: cleared when large)


class DirectoryPrefetcher:
    def __init__(self, store: SmallFiles, version_of: Callable[[str, Attr], FileVersion],
                 fetch_of: Callable[[FileVersion, Attr], WholeFetch], small_file_size: int,
                 files_ahead: int = 64, workers: int = 8, idle_seconds: float = 2.0):
        self.store = store
        self.version_of = version_of
        self.fetch_of = fetch_of
        self.small_file_size = small_file_size
        self.files_ahead = files_ahead
        self.idle_seconds = idle_seconds
        self._lock = threading.Lock()
        self._runs: dict[str, _Run] = {}
        self._first_open: dict[str, tuple[str, float]] = {}  # directory -> (name, when): a run's seed
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="algofs-dir-prefetch")
        self.runs_started = 0
        self.requests = 0
        self._closed = False

    @property
    def enabled(self) -> bool:
        return self.files_ahead > 0 and not self._closed

    def opened(self, directory: str, name: str, listing: dict[str, Attr] | None) -> None:
        """A reader opened ``directory/name``; ``listing`` is the directory's fresh listing (or None)."""
        if not self.enabled or listing is None:
            return
        now = time.monotonic()
        with self._lock:
            run = self._runs.get(directory)
            if run is not None and now - run.last_open > self.idle_seconds:
                run = None
                del self._runs[directory]
            if run is None:
                seed = self._first_open.get(directory)
                if seed is None or seed[0] == name or now - seed[1] > self.idle_seconds:
                    if len(self._first_open) >= 4 * MAX_RUNS:
                        self._first_open.clear()
                    self._first_open[directory] = (name, now)
                    return
                del self._first_open[directory]
                run = self._start_run_locked(directory, listing, now)
                run.recent.add(seed[0])
            elif run.listing is not listing:  # listed again since (the TTL ran out): new attributes
                run.listing = listing
                names = self._small_names(listing)
                if names != run.names:  # changed: start over (files already here are skipped)
                    run.names, run.cursor = names, 0
            run.last_open = now
            if name not in run.recent:
                run.opened += 1
                if len(run.recent) > 4 * self.files_ahead + 1024:
                    run.recent.clear()
                run.recent.add(name)
            position = bisect.bisect_right(run.names, name)
            if position > run.cursor and position - run.cursor <= self.files_ahead:
                run.cursor = position  # a reader ahead of us: continue after it
            jobs = self._pick_locked(directory, run)
        for path, version, attr in jobs:
            self._pool.submit(self._prefetch, directory, run, path, version, attr)

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

    def close(self) -> None:
        self._closed = True
        self.end_all()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"runs": len(self._runs), "runs_started": self.runs_started, "requests": self.requests,
                    "files_ahead": self.files_ahead}

    # -- internals --------------------------------------------------------------------------------

    def _start_run_locked(self, directory: str, listing: dict[str, Attr], now: float) -> _Run:
        if len(self._runs) >= MAX_RUNS:
            oldest = min(self._runs, key=lambda d: self._runs[d].last_open)
            self._runs.pop(oldest).ended = True
        run = self._runs[directory] = _Run(listing, self._small_names(listing), now)
        self.runs_started += 1
        return run

    def _small_names(self, listing: dict[str, Attr]) -> list[str]:
        return sorted(n for n, a in listing.items() if a.kind == FILE and 0 < a.size <= self.small_file_size)

    def _pick_locked(self, directory: str, run: _Run) -> list[tuple[str, FileVersion, Attr]]:
        """The next files to fetch, within the run's lead (files) and the memory budget (bytes)."""
        jobs: list[tuple[str, FileVersion, Attr]] = []
        unread = self.store.unread_bytes  # a snapshot: the store re-checks its budget per fetch
        while run.scheduled < run.opened + self.files_ahead and run.cursor < len(run.names):
            name = run.names[run.cursor]
            run.cursor += 1
            attr = run.listing.get(name)
            if attr is None or name in run.recent:
                continue
            path = f"{directory}/{name}"
            version = self.version_of(path, attr)
            if self.store.has(version):
                continue
            if unread + attr.size > self.store.budget:
                run.cursor -= 1  # no room now; retry on the next open
                break
            unread += attr.size
            run.scheduled += 1
            jobs.append((path, version, attr))
        return jobs  # an exhausted run stays until idle: no rescans of the listing per open

    def _prefetch(self, directory: str, run: _Run, path: str, version: FileVersion, attr: Attr) -> None:
        if run.ended or self._closed or time.monotonic() - run.last_open > self.idle_seconds:
            return  # the reader stopped: no request
        try:
            if self.store.prefetch(version, self.fetch_of(version, attr)):
                with self._lock:
                    self.requests += 1
        except Exception:  # noqa: BLE001 - a reader that needs the file fetches it itself
            log.debug("prefetch of %s failed", path, exc_info=True)
