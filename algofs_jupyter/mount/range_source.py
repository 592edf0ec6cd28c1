"""The block cache's one fetch contract: ``RangeSource``, ranged reads of one file version.

Its first method is fsspec ``caching.py``'s ``Fetcher(start, end) -> bytes``; ``into`` and ``stream`` are
the same reads without an allocation per block and as one open request for a run of blocks (readahead).
The data client's range reader (``fs/data_api.RangeReader``) is one; ``FetcherSource`` makes one of a plain
``Fetcher`` (tests, simple callers): it copies what the fetcher returns and asks it once per piece.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

from .range_streams import Fill

#: fsspec's ``Fetcher``: the bytes ``[start, end)`` of one file version.
Fetcher = Callable[[int, int], bytes | bytearray]


class RangeSource(Protocol):
    def __call__(self, start: int, end: int) -> bytes | bytearray:
        """The bytes ``[start, end)`` (short only at EOF)."""
        ...

    def into(self, start: int, out: memoryview) -> int:
        """Fill ``out`` (a buffer of the cache's) with the bytes from ``start`` on; returns the count."""
        ...

    def stream(self, start: int, end: int) -> AbstractContextManager[Fill]:
        """One open request for ``[start, end)``: ``fill(out)`` reads its next bytes (``range_streams``)."""
        ...


class FetcherSource:
    """A ``RangeSource`` over a plain ``Fetcher``: one fetcher call per ``into`` and per ``fill``."""

    def __init__(self, fetch: Fetcher):
        self.fetch = fetch

    def __call__(self, start: int, end: int) -> bytes | bytearray:
        return self.fetch(start, end)

    def into(self, start: int, out: memoryview) -> int:
        if not len(out):
            return 0
        data = self.fetch(start, start + len(out))
        count = min(len(data), len(out))
        with memoryview(data) as view:
            out[:count] = view[:count]
        return count

    @contextmanager
    def stream(self, start: int, end: int) -> Iterator[Fill]:
        position = start

        def fill(out: memoryview) -> int:
            nonlocal position
            count = self.into(position, out[:max(0, end - position)])
            position += count
            return count

        yield fill
