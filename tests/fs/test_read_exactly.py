"""`read_exactly_into` is what every cold block read goes through, including servers that ignore Range."""

import io
from types import SimpleNamespace

from algofs_jupyter.fs.http_body import read_exactly_into


def _response(body: bytes) -> SimpleNamespace:
    return SimpleNamespace(raw=io.BytesIO(body))


def _read(body: bytes, count: int, skip: int) -> bytes:
    out = bytearray(b"\xee" * count)  # stale bytes from an earlier use of the buffer
    filled = read_exactly_into(_response(body), memoryview(out), skip=skip)
    return bytes(out[:filled])


def test_full_body_answer_to_a_range_request_yields_just_the_range():
    body = bytes(range(256)) * 40_000  # ~10 MiB, crosses several download chunks
    start, end = 3_000_001, 7_500_000
    assert _read(body, end - start, skip=start) == body[start:end]


def test_short_only_at_the_end_of_the_body():
    assert _read(b"abcdef", 10, skip=2) == b"cdef"
    assert _read(b"abc", 5, skip=10) == b""
