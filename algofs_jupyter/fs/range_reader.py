"""``RangeReader``: how a cache reads one file version's bytes (fsspec caching.py's ``Fetcher``)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Protocol

from .http_body import Fill


class RangeReads(Protocol):
    """What a ``RangeReader`` asks of its client (``DataClient``'s ranged reads)."""

    def read_block(self, path: str, start: int, end: int, etag: str = "", size: int = -1) -> bytearray: ...

    def read_block_into(self, path: str, start: int, out: memoryview, etag: str = "", size: int = -1
                        ) -> int: ...

    def open_range(self, path: str, start: int, end: int, etag: str = "", size: int = -1
                   ) -> contextlib.AbstractContextManager[Fill]: ...


@dataclass(frozen=True)
class RangeReader:
    """Ranged GETs of one file version, for a cache: ``reader(start, end) -> bytes`` (fsspec's
    ``Fetcher``), ``into`` (fills the cache's own buffers) and ``stream`` (one GET for many blocks).

    ``etag`` is the server's ETag when known (from a HEAD or an upload); attributes from a listing carry
    none, and then the server's size must match ``size``. A changed file raises StaleFile.
    """

    client: RangeReads
    path: str
    etag: str = ""
    size: int = -1

    def __call__(self, start: int, end: int) -> bytes | bytearray:
        return self.client.read_block(self.path, start, end, etag=self.etag, size=self.size)

    def into(self, start: int, out: memoryview) -> int:
        return self.client.read_block_into(self.path, start, out, etag=self.etag, size=self.size)

    def stream(self, start: int, end: int) -> contextlib.AbstractContextManager[Fill]:
        return self.client.open_range(self.path, start, end, etag=self.etag, size=self.size)
