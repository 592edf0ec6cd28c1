"""Sorted names of local directories for paged listings, remembering large ones between pages.

A page costs a bisect into the directory's sorted names plus one ``stat`` per entry on the page, not a
scan with a ``stat`` of every entry: paging through 50,000 files used to scan and stat all of them for
each of the 50 pages (22 s). ``DirectoryIndex`` keeps the sorted names of a few large directories, keyed
by the directory's ``st_mtime_ns``; it is trusted only when that mtime was over a second old at scan
time, so a change made during or after the scan (which stamps a newer mtime, whatever the clock
granularity) always shows.
"""

from __future__ import annotations

import bisect
import os
import threading
import time
from collections import OrderedDict

from ...names import invalid_name_reason
from .base import SortKey


class DirectoryIndex:
    """Sorted ``(0 = folder / 1 = file, name)`` keys of real directories; large ones are remembered."""

    #: Directories smaller than this are rescanned each time (one page: no repeat scans to save).
    REMEMBER_FROM = 1000
    #: A directory's mtime must be this much older than the scan for the scan to be reused.
    SETTLED_NS = 1_000_000_000

    def __init__(self, max_keys: int = 500_000):
        self.max_keys = max_keys  # about 130 bytes each: ~65 MiB at most
        self._lock = threading.Lock()
        self._remembered: OrderedDict[tuple[int, int], tuple[int, list[SortKey]]] = OrderedDict()
        self._kept = 0

    def sorted_keys(self, directory: int) -> list[SortKey]:
        """The sorted keys of the open directory ``directory`` (a descriptor)."""
        st = os.fstat(directory)
        identity = (st.st_dev, st.st_ino)
        with self._lock:
            remembered = self._remembered.get(identity)
            if remembered is not None and remembered[0] == st.st_mtime_ns:
                self._remembered.move_to_end(identity)
                return remembered[1]
        scanned_at = time.time_ns()
        keys = scan_keys(directory)
        if self.REMEMBER_FROM <= len(keys) <= self.max_keys and st.st_mtime_ns < scanned_at - self.SETTLED_NS:
            with self._lock:
                old = self._remembered.pop(identity, None)
                self._kept += len(keys) - (len(old[1]) if old else 0)
                self._remembered[identity] = (st.st_mtime_ns, keys)
                while self._kept > self.max_keys:
                    _, (_, dropped) = self._remembered.popitem(last=False)
                    self._kept -= len(dropped)
        return keys

    @staticmethod
    def position_after(keys: list[SortKey], after: SortKey | None) -> int:
        return bisect.bisect_right(keys, after) if after is not None else 0


def scan_keys(directory: int) -> list[SortKey]:
    """Names only (``d_type``, no ``stat``), without names the API can't carry."""
    keys = []
    with os.scandir(directory) as it:
        for item in it:
            if invalid_name_reason(item.name):
                continue
            try:
                keys.append((0 if item.is_dir() else 1, item.name))
            except OSError:
                continue
    keys.sort()
    return keys
