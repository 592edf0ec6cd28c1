"""Directory listings: entries in a stable order, pages of at most 1000, opaque URL-safe markers.

Order: all folders by name, then all files by name. A marker encodes the last entry returned
(base64url, no padding: only ``A-Za-z0-9-_``), so paging stays correct when entries are added or
removed between pages.

A page of a real directory (``list_directory``) costs a bisect into the directory's sorted names plus
one ``stat`` per entry on the page, not a scan with a ``stat`` of every entry: paging through 50,000
files used to scan and stat all of them for each of the 50 pages (22 s). ``DirectoryIndex`` keeps the
sorted names of a few large directories, keyed by the directory's ``st_mtime_ns``; it is trusted only
when that mtime was over a second old at scan time, so a change made during or after the scan (which
stamps a newer mtime, whatever the clock granularity) always shows.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import os
import stat
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..names import invalid_name_reason
from .errors import ApiError

PAGE_SIZE = 1000


@dataclass(frozen=True)
class Entry:
    is_dir: bool
    name: str
    size: int = 0
    mtime: float = 0.0

    @property
    def sort_key(self) -> tuple[int, str]:
        return (0 if self.is_dir else 1, self.name)


def format_timestamp(mtime: float) -> str:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ`` in UTC: the only format the official client parses."""
    moment = datetime.fromtimestamp(mtime, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def encode_marker(entry: Entry) -> str:
    raw = ("d" if entry.is_dir else "f") + entry.name
    return base64.urlsafe_b64encode(raw.encode("utf-8")).decode("ascii").rstrip("=")


def decode_marker(marker: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(marker + "=" * (-len(marker) % 4)).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ApiError(400, "Invalid marker used", code=5002) from exc
    if not raw or raw[0] not in "df":
        raise ApiError(400, "Invalid marker used", code=5002)
    return (0 if raw[0] == "d" else 1, raw[1:])


def page(entries: list[Entry], marker: str | None, sort: bool = True) -> dict:
    """One page of a listing as the API body (without ``acl``)."""
    ordered = sorted(entries, key=lambda e: e.sort_key) if sort else list(entries)
    if marker:
        after = decode_marker(marker)
        ordered = [e for e in ordered if e.sort_key > after]
    chunk = ordered[:PAGE_SIZE]
    return _body(chunk, after=chunk[-1] if len(ordered) > PAGE_SIZE else None)


SortKey = tuple[int, str]


class DirectoryIndex:
    """Sorted ``(0 = folder / 1 = file, name)`` keys of real directories; large ones are remembered."""

    #: Directories smaller than this are rescanned each time (one page: no repeat scans to save).
    REMEMBER_FROM = PAGE_SIZE
    #: A directory's mtime must be this much older than the scan for the scan to be reused.
    SETTLED_NS = 1_000_000_000

    def __init__(self, max_keys: int = 500_000):
        self.max_keys = max_keys  # about 130 bytes each: ~65 MiB at most
        self._lock = threading.Lock()
        self._remembered: OrderedDict[tuple[int, int], tuple[int, list[SortKey]]] = OrderedDict()
        self._kept = 0

    def sorted_keys(self, path: Path) -> list[SortKey]:
        st = os.stat(path)
        identity = (st.st_dev, st.st_ino)
        with self._lock:
            remembered = self._remembered.get(identity)
            if remembered is not None and remembered[0] == st.st_mtime_ns:
                self._remembered.move_to_end(identity)
                return remembered[1]
        scanned_at = time.time_ns()
        keys = scan_keys(path)
        if self.REMEMBER_FROM <= len(keys) <= self.max_keys and st.st_mtime_ns < scanned_at - self.SETTLED_NS:
            with self._lock:
                old = self._remembered.pop(identity, None)
                self._kept += len(keys) - (len(old[1]) if old else 0)
                self._remembered[identity] = (st.st_mtime_ns, keys)
                while self._kept > self.max_keys:
                    _, (_, dropped) = self._remembered.popitem(last=False)
                    self._kept -= len(dropped)
        return keys


def scan_keys(path: Path) -> list[SortKey]:
    """Names only (``d_type``, no ``stat``), without names the API can't carry."""
    keys = []
    with os.scandir(path) as it:
        for item in it:
            if invalid_name_reason(item.name):
                continue
            try:
                keys.append((0 if item.is_dir() else 1, item.name))
            except OSError:
                continue
    keys.sort()
    return keys


def list_directory(path: Path, marker: str | None, index: DirectoryIndex) -> dict:
    """One page of a real directory: the keys after ``marker``, each ``stat``ed as the page is built.

    Entries that vanished or are neither folder nor regular file (sockets, broken links) are skipped, so
    a page may hold fewer than ``PAGE_SIZE`` entries while a marker says more follow.
    """
    keys = index.sorted_keys(path)
    start = bisect.bisect_right(keys, decode_marker(marker)) if marker else 0
    chunk = keys[start:start + PAGE_SIZE]
    entries = []
    for _kind, name in chunk:
        try:
            st = os.stat(path / name)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode):
            entries.append(Entry(True, name))
        elif stat.S_ISREG(st.st_mode):
            entries.append(Entry(False, name, st.st_size, st.st_mtime))
    more = start + PAGE_SIZE < len(keys)
    # The marker names the last key looked at, even if it was skipped (a page may even come out empty).
    after = Entry(chunk[-1][0] == 0, chunk[-1][1]) if more else None
    return _body(entries, after)


def _body(chunk: list[Entry], after: Entry | None) -> dict:
    """The API body of ``chunk``; ``after``, when more follow, is what the marker continues after."""
    body: dict = {}
    folders = [{"name": e.name} for e in chunk if e.is_dir]
    files = [
        {"filename": e.name, "last_modified": format_timestamp(e.mtime), "size": int(e.size)}
        for e in chunk
        if not e.is_dir
    ]
    if folders:
        body["folders"] = folders
    if files:
        body["files"] = files
    if after is not None:
        body["marker"] = encode_marker(after)
    return body
