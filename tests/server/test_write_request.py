"""``WriteRequest.check``: the one statement of what a write may land on, shared by every storage backend."""

from __future__ import annotations

import pytest

from algofs_jupyter.server.storage import (
    EntryInfo,
    InvalidOperation,
    IsADirectory,
    NotFound,
    OffsetBeyondEnd,
    PreconditionFailed,
    WriteRequest,
)

FILE = EntryInfo(name="x.csv", is_dir=False, size=10, mtime=0.0, etag='"v1"')
FOLDER = EntryInfo(name="x.csv", is_dir=True, size=0, mtime=0.0, etag=None)


def test_a_plain_write_lands_on_a_file_or_on_nothing() -> None:
    WriteRequest().check(FILE)
    WriteRequest().check(None)
    WriteRequest(offset=0).check(None)  # a new file written at offset 0
    assert not WriteRequest(offset=5, truncate=True).conditional


def test_a_directory_is_never_overwritten() -> None:
    with pytest.raises(IsADirectory):
        WriteRequest().check(FOLDER)


@pytest.mark.parametrize("request_, current", [
    (WriteRequest(if_match='"v0"'), FILE),
    (WriteRequest(if_match='"v1"'), None),
    (WriteRequest(if_match="*"), None),
    (WriteRequest(expected_size=9), FILE),
    (WriteRequest(expected_size=1), None),
])
def test_preconditions_say_what_the_file_is_now(request_: WriteRequest, current: EntryInfo | None) -> None:
    assert request_.conditional
    with pytest.raises(PreconditionFailed) as failed:
        request_.check(current)
    now = {"etag": current.etag, "size": current.size} if current else {"etag": None, "size": 0}
    assert failed.value.details == now


def test_matching_preconditions_pass() -> None:
    for request in (WriteRequest(if_match=' "v1" '), WriteRequest(if_match='W/"v1"'),
                    WriteRequest(if_match="*"), WriteRequest(expected_size=10)):
        request.check(FILE)
    WriteRequest(expected_size=0).check(None)  # a missing file has size 0


def test_offsets_need_the_file_and_make_no_holes() -> None:
    WriteRequest(offset=10).check(FILE)  # an append
    with pytest.raises(NotFound):
        WriteRequest(offset=3).check(None)
    with pytest.raises(OffsetBeyondEnd) as beyond:
        WriteRequest(offset=11).check(FILE)
    assert beyond.value.details["size"] == 10
    with pytest.raises(InvalidOperation):
        WriteRequest(offset=-1)
