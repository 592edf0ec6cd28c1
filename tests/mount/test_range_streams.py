"""Parked range streams: found again only at the offset they stopped at, and always closed in the end."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from algofs_jupyter.mount.range_streams import OpenStream, ParkedStreams


class Body:
    """A fake response: ``closed`` tells whether its context was left."""

    def __init__(self) -> None:
        self.closed = False

    @contextlib.contextmanager
    def context(self) -> Iterator:
        try:
            yield lambda out: 0
        finally:
            self.closed = True


def open_stream(key: str, offset: int) -> tuple[OpenStream, Body]:
    body = Body()
    return OpenStream(key, key.split("@")[0], offset, body.context()), body


def test_a_parked_stream_is_found_only_at_its_offset_and_version() -> None:
    parked = ParkedStreams(limit=4, idle_seconds=60)
    stream, body = open_stream("/a@v1", 100)
    parked.park(stream)
    assert parked.take("/a@v1", 99) is None
    assert parked.take("/a@v2", 100) is None
    assert parked.take("/a@v1", 100) is stream and parked.resumed == 1
    assert parked.take("/a@v1", 100) is None  # taken means owned by the taker
    assert not body.closed
    stream.close()
    assert body.closed


def test_the_oldest_streams_close_beyond_the_limit_and_drop_closes_a_path() -> None:
    parked = ParkedStreams(limit=2, idle_seconds=60)
    opened = [open_stream(f"/f{i}@v", 0) for i in range(3)]
    for stream, _ in opened:
        parked.park(stream)
    assert [body.closed for _, body in opened] == [True, False, False] and len(parked) == 2
    parked.drop("/f1")
    assert opened[1][1].closed and not opened[2][1].closed and len(parked) == 1
    parked.drop()
    assert opened[2][1].closed and len(parked) == 0


def test_idle_streams_are_closed_by_the_reaper() -> None:
    parked = ParkedStreams(limit=4, idle_seconds=0.2)
    stream, body = open_stream("/idle@v", 0)
    parked.park(stream)
    deadline = time.monotonic() + 5
    while not body.closed and time.monotonic() < deadline:
        time.sleep(0.05)
    assert body.closed and len(parked) == 0
