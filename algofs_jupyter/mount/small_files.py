"""Whole small files in memory: one GET per cold file, shared by the reader and the directory prefetcher.

A file up to ``--small-file-size`` is fetched whole with one GET (no ranged block fetch, no block file on
disk: for a 4 KiB file those cost more than the bytes). The bytes stay here, least recently used first,
within ``budget`` bytes: files fetched ahead and not read yet (``unread_bytes``, counted from the moment a
prefetch is asked for, so concurrent prefetches cannot overshoot it) are what the prefetcher may add to,
files already read are the first to go (the kernel's page cache keeps them across opens).

An entry answers a ``FileVersion`` whose size matches and whose etag is one of the entry's validators:
the ETag the GET answered and the version the listing described (size + mtime), so a strict-mode open
(HEAD etag) and a ttl-mode open (listing attributes) both find the prefetched bytes.

Every file held is charged its bytes plus ``ENTRY_OVERHEAD`` against the budget (``charge``): the entry's
bookkeeping (path, both validators, the entry, its LRU slot, the bytes object's header: ~515 bytes measured
with tracemalloc in the daemon's own shapes, ~690 before the entry had slots and a tuple of validators)
outweighs a 64-byte file, and a budget of data bytes alone let a walk over 1,000,000 tiny files keep every
one of them (issue 26). So at most ``budget / ENTRY_OVERHEAD`` files are held, whatever their size.

A prefetched file dropped before any reader read it (evicted, invalidated, replaced) is *wasted*: counted
(``prefetch_wasted``) and its path queued for the directory prefetcher (``take_wasted``), which stops a run
whose guesses go unread (dir_prefetch.py). The queue is bounded (``WASTED_QUEUE``, oldest dropped).

Single flight: a reader of a file whose GET is running (a prefetch, another reader) waits for it
instead of asking again, so a cold file costs at most one request.

Locks (names of docs/architecture.md's *mount lock order*):
``SmallFiles._lock`` guards ``_entries``, ``_unread``, ``_flights``, ``_wasted``, ``unread_bytes``,
``size_bytes`` and the counters; a leaf (never held across a fetch or a wait on a flight).
"""

from __future__ import annotations

import contextlib
import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

from ..fs.api_errors import StaleFile
from .block_index import FileVersion

#: A whole-file GET: the body and the ETag the server answered with ("" if none).
WholeFetch = Callable[[], tuple[bytes, str]]
#: One request for many whole files: each version's body and ETag, or the error it got.
ManyFetch = Callable[[list[FileVersion]], "dict[FileVersion, tuple[bytes, str] | BaseException]"]
#: Bytes charged per file held on top of its data (what an entry costs in the daemon, measured ~515).
ENTRY_OVERHEAD = 576
#: Paths of wasted prefetches kept for ``take_wasted`` (more are dropped, oldest first; still counted).
WASTED_QUEUE = 4096


class _Flight(Future["_Entry"]):
    """A whole-file GET in progress; ``prefetch`` when no reader asked for it."""

    def __init__(self, prefetch: bool = False):
        super().__init__()
        self.prefetch = prefetch


class _PrefetchFailed(Exception):
    """A reader waited for a prefetch that failed: it fetches the file itself."""


@dataclass(slots=True)  # slots and a tuple of validators: ~210 bytes less per file than a dict + frozenset
class _Entry:
    size: int
    validators: tuple[str, ...]  # the GET's ETag and the version's etag (one when equal)
    data: bytes
    read: bool = False


@dataclass
class SmallFileCounters:
    hits: int = 0
    misses: int = 0
    joined: int = 0  # readers that waited for a GET already running
    fetches: int = 0
    bytes_fetched: int = 0
    prefetches: int = 0
    prefetch_hits: int = 0  # first reads served by a prefetch
    prefetch_wasted: int = 0  # prefetched files dropped unread
    evicted: int = 0


class SmallFiles:
    def __init__(self, budget: int, entry_overhead: int = ENTRY_OVERHEAD):
        self.budget = budget
        self.entry_overhead = entry_overhead
        self._lock = threading.Lock()
        # path -> entry, each in one of two: read files in LRU order, prefetched ones no reader read yet in
        # fetch order (trimming drops read files first without walking past thousands of unread ones)
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._unread: OrderedDict[str, _Entry] = OrderedDict()
        self._flights: dict[FileVersion, _Flight] = {}
        self.size_bytes = 0
        self.unread_bytes = 0
        self.counters = SmallFileCounters()
        self._wasted: deque[str] = deque(maxlen=WASTED_QUEUE)

    def read(self, version: FileVersion, fetch: WholeFetch) -> bytes:
        """The bytes of ``version``: from memory, from a GET already running, else one GET now (also when
        the running GET was a prefetch that failed: its error is not the reader's)."""
        try:
            return self._read(version, fetch)
        except _PrefetchFailed:
            return self._read(version, fetch)

    def _read(self, version: FileVersion, fetch: WholeFetch) -> bytes:
        with self._lock:
            entry = self._match_locked(version)
            if entry is not None:
                self.counters.hits += 1
                if not entry.read:
                    self._mark_read_locked(version.path, entry)
                return entry.data
            flight = self._flights.get(version)
            owner = flight is None
            if owner:
                flight = self._flights[version] = _Flight()
                self.counters.misses += 1
            else:
                self.counters.joined += 1
        assert flight is not None
        if not owner:
            try:
                entry = flight.result()
            except Exception as exc:
                if flight.prefetch:
                    raise _PrefetchFailed from exc
                raise
            with self._lock:
                if not entry.read and self._unread.get(version.path) is entry:
                    self._mark_read_locked(version.path, entry)
            return entry.data
        return self._fetch(version, fetch, flight, read=True).data

    def prefetch(self, version: FileVersion, fetch: WholeFetch) -> bool:
        """Fetch ``version`` into memory unless it is here or coming; False if nothing was fetched."""
        with self._lock:
            if self._match_locked(version, touch=False) is not None or version in self._flights:
                return False
            if self.unread_bytes + self.charge(version.size) > self.budget:
                return False
            flight = self._flights[version] = _Flight(prefetch=True)
            self.unread_bytes += self.charge(version.size)  # reserved while the GET runs
            self.counters.prefetches += 1
        try:
            self._fetch(version, fetch, flight, read=False)
        except OSError:
            return False  # a reader that needs it fetches it itself
        return True

    def prefetch_many(self, versions: list[FileVersion], fetch: ManyFetch) -> list[FileVersion]:
        """``prefetch`` for many files with one request: ``fetch`` gets those neither here nor coming
        (within the budget) and answers each one's bytes and ETag, or its error. Returns those kept."""
        claimed: list[tuple[FileVersion, _Flight]] = []
        with self._lock:
            for version in versions:
                if self._match_locked(version, touch=False) is not None or version in self._flights:
                    continue
                if self.unread_bytes + self.charge(version.size) > self.budget:
                    break
                self.unread_bytes += self.charge(version.size)  # reserved while the request runs
                flight = self._flights[version] = _Flight(prefetch=True)
                claimed.append((version, flight))
            self.counters.prefetches += len(claimed)
        if not claimed:
            return []
        try:
            answers = fetch([version for version, _ in claimed])
        except BaseException as exc:
            for version, flight in claimed:
                self._fail(version, flight, exc)
            if isinstance(exc, OSError):
                return []  # readers that need the files fetch them themselves
            raise
        kept = []
        for version, flight in claimed:
            answer = answers.get(version)
            if not isinstance(answer, tuple):
                self._fail(version, flight, answer or OSError(5, f"{version.path}: not answered"))
                continue
            with contextlib.suppress(OSError):
                self._settle(version, flight, *answer, read=False)
                kept.append(version)
        return kept

    def charge(self, size: int) -> int:
        """What a file of ``size`` bytes counts against the budget while held."""
        return size + self.entry_overhead

    def take_wasted(self) -> list[str]:
        """Paths of prefetched files dropped unread since the last call (the prefetcher's feedback)."""
        with self._lock:
            if not self._wasted:
                return []
            paths = list(self._wasted)
            self._wasted.clear()
            return paths

    def has(self, version: FileVersion) -> bool:
        with self._lock:
            return version in self._flights or self._match_locked(version, touch=False) is not None

    def invalidate(self, path: str) -> None:
        with self._lock:
            self._drop_locked(path)

    def clear(self) -> None:
        with self._lock:
            for path in [*self._entries, *self._unread]:
                self._drop_locked(path)

    def stats(self) -> dict[str, int]:
        with self._lock:
            c = self.counters
            return {"files": len(self._entries) + len(self._unread), "bytes": self.size_bytes,
                    "unread_bytes": self.unread_bytes,
                    "budget": self.budget, "hits": c.hits, "misses": c.misses, "joined": c.joined,
                    "fetches": c.fetches, "bytes_fetched": c.bytes_fetched, "prefetches": c.prefetches,
                    "prefetch_hits": c.prefetch_hits, "prefetch_wasted": c.prefetch_wasted,
                    "evicted": c.evicted, "in_flight": len(self._flights)}

    def entries(self) -> list[dict[str, int | str]]:
        """The files held, in the block cache's entry shape (``path``, ``cached_bytes``, ``size``)."""
        with self._lock:
            return [{"path": path, "cached_bytes": len(entry.data), "size": entry.size}
                    for held in (self._entries, self._unread) for path, entry in held.items()]

    # -- internals --------------------------------------------------------------------------------

    def _fetch(self, version: FileVersion, fetch: WholeFetch, flight: _Flight, read: bool) -> _Entry:
        try:
            data, etag = fetch()
        except BaseException as exc:
            self._fail(version, flight, exc)
            raise
        return self._settle(version, flight, data, etag, read)

    def _fail(self, version: FileVersion, flight: _Flight, exc: BaseException) -> None:
        with self._lock:
            self._flights.pop(version, None)
            if flight.prefetch:
                self.unread_bytes -= self.charge(version.size)  # its reservation
        flight.set_exception(exc)

    def _settle(self, version: FileVersion, flight: _Flight, data: bytes, etag: str, read: bool) -> _Entry:
        """Keep what a GET answered for ``version`` and hand it to the flight's waiters."""
        if len(data) != version.size:
            exc = StaleFile(f"{version.path}: {len(data)} bytes on the server, {version.size} expected "
                            "(changed remotely)")
            self._fail(version, flight, exc)
            raise exc
        validators = tuple(v for v in {etag: None, version.etag: None} if v)  # both, once each
        entry = _Entry(version.size, validators, data, read)
        with self._lock:
            self._flights.pop(version, None)
            self.counters.fetches += 1
            self.counters.bytes_fetched += len(data)
            self._drop_locked(version.path)
            (self._entries if read else self._unread)[version.path] = entry
            self.size_bytes += self.charge(entry.size)  # unread: reserved by the prefetch already
            self._trim_locked()
        flight.set_result(entry)
        return entry

    def _match_locked(self, version: FileVersion, touch: bool = True) -> _Entry | None:
        entry = self._entries.get(version.path) or self._unread.get(version.path)
        if entry is None or entry.size != version.size or version.etag not in entry.validators:
            return None
        if touch and entry.read:
            self._entries.move_to_end(version.path)
        return entry

    def _mark_read_locked(self, path: str, entry: _Entry) -> None:
        """A reader read a prefetched file: it joins the read files (most recently used)."""
        del self._unread[path]
        entry.read = True
        self._entries[path] = entry
        self.unread_bytes -= self.charge(entry.size)
        self.counters.prefetch_hits += 1

    def _drop_locked(self, path: str) -> None:
        entry = self._entries.pop(path, None) or self._unread.pop(path, None)
        if entry is not None:
            self.size_bytes -= self.charge(entry.size)
            if not entry.read:  # only a prefetch is held unread
                self.unread_bytes -= self.charge(entry.size)
                self.counters.prefetch_wasted += 1
                self._wasted.append(path)

    def _trim_locked(self) -> None:
        """Over budget: drop files already read (oldest first), then the oldest unread ones."""
        for held in (self._entries, self._unread):
            while self.size_bytes > self.budget and held:
                self._drop_locked(next(iter(held)))
                self.counters.evicted += 1
