"""What the block cache fetches file bytes through: a ranged GET, optionally into its own buffers, and
optionally as an open stream (``RangeFetch`` in ``operations`` offers all three; a plain function
``fetch(start, end) -> bytes`` is enough for tests and simple callers)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol, runtime_checkable

from .range_streams import Fill


class RangeReader(Protocol):
    def __call__(self, start: int, end: int) -> bytes | bytearray:
        """The bytes ``[start, end)`` of the file version."""
        ...


@runtime_checkable
class BufferFiller(Protocol):
    """A reader that can fill a buffer the cache provides (no allocation per block)."""

    def __call__(self, start: int, end: int) -> bytes | bytearray: ...

    def into(self, start: int, out: memoryview) -> int:
        """Fill ``out`` with the bytes from ``start`` on; returns the count."""
        ...


@runtime_checkable
class RangeStreamer(Protocol):
    """A reader that can keep one request open for a run of blocks (see ``range_streams``)."""

    def __call__(self, start: int, end: int) -> bytes | bytearray: ...

    def stream(self, start: int, end: int) -> AbstractContextManager[Fill]:
        """An open ranged GET of ``[start, end)``: ``fill(out)`` reads its next bytes."""
        ...


class StreamPart:
    """The next block of a streamed run, in the shape ``BlockCache._receive`` expects of a fetch."""

    def __init__(self, fill: Fill):
        self._fill = fill

    def into(self, start: int, out: memoryview) -> int:
        return self._fill(out)

    def __call__(self, start: int, end: int) -> bytes:
        raise TypeError("stream parts fill buffers")
