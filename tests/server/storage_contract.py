"""The contract of ``StorageBackend`` (server/storage/base.py) as tests any backend must pass.

A backend's test module imports these and provides a ``backend`` fixture: an empty backend (its root
exists) that the test may change freely::

    from .storage_contract import *  # noqa: F403

    @pytest.fixture
    def backend(tmp_path): return MyBackend(...)

Optional operations are skipped when the backend does not list their capability.
"""

from __future__ import annotations

import pytest

from algofs_jupyter.server.storage import (
    COPY,
    FOLDER_MTIME,
    MOVE,
    SET_MTIME,
    WRITE_AT_OFFSET,
    AlreadyExists,
    DirectoryNotEmpty,
    InvalidOperation,
    IsADirectory,
    NameTooLong,
    NotADirectory,
    NotFound,
    OffsetBeyondEnd,
    PreconditionFailed,
    StorageBackend,
    Unsatisfiable,
    Usage,
)


def store(backend: StorageBackend, key: tuple[str, ...], data: bytes, **options):
    upload = backend.write(key, **options)
    try:
        upload.write(data)
        return upload.commit()
    finally:
        upload.abort()


def content(backend: StorageBackend, key: tuple[str, ...], start: int = 0,
            length: int | None = None) -> bytes:
    return b"".join(backend.read(key, start, length))


def needs(backend: StorageBackend, capability: str) -> None:
    if capability not in backend.capabilities:
        pytest.skip(f"backend lacks {capability}")


def names(backend: StorageBackend, key: tuple[str, ...]) -> list[str]:
    result, after = [], None
    while True:
        page = backend.list_page(key, after, limit=2)
        result += [e.name for e in page.entries]
        if page.last_key is None:
            return result
        after = page.last_key


def test_write_read_info(backend):
    info = store(backend, ("f",), b"hello world")
    assert (info.name, info.is_dir, info.size) == ("f", False, 11) and info.etag
    assert backend.info(("f",)) == info
    assert content(backend, ("f",)) == b"hello world"
    assert content(backend, ("f",), 6) == b"world"
    assert content(backend, ("f",), 0, 5) == b"hello"
    assert backend.info(()).is_dir


def test_read_file_gives_the_info_and_the_bytes_together(backend):
    backend.mkdir(("c",))
    info = store(backend, ("c", "f.bin"), b"0123456789")
    got, start, chunks = backend.read_file(("c", "f.bin"), 2, 5)
    assert (b"".join(chunks), start) == (b"2345", 2)
    assert (got.size, got.etag, got.is_dir) == (info.size, info.etag, False)
    assert b"".join(backend.read_file(("c", "f.bin"), 8)[2]) == b"89"
    assert b"".join(backend.read_file(("c", "f.bin"), 8, 100)[2]) == b"89"  # clamped to the end
    store(backend, ("c", "empty"), b"")
    for key, first in ((("c", "f.bin"), 10), (("c", "empty"), 0)):
        with pytest.raises(Unsatisfiable):
            backend.read_file(key, first)
    with pytest.raises(IsADirectory):
        backend.read_file(("c",))
    with pytest.raises(NotFound):
        backend.read_file(("c", "missing"))


def test_replacing_changes_the_etag_and_abort_keeps_the_old(backend):
    first = store(backend, ("f",), b"one")
    second = store(backend, ("f",), b"two!")
    assert second.etag != first.etag and content(backend, ("f",)) == b"two!"
    upload = backend.write(("f",))
    upload.write(b"never")
    upload.abort()
    upload.abort()  # idempotent
    assert content(backend, ("f",)) == b"two!" and backend.info(("f",)).etag == second.etag
    assert names(backend, ()) == ["f"]  # no staged leftovers listed


def test_missing_and_kind_errors(backend):
    with pytest.raises(NotFound):
        backend.info(("nope",))
    with pytest.raises(NotFound):
        backend.read(("nope",))
    with pytest.raises(NotFound):
        backend.write(("nodir", "f"))
    backend.mkdir(("d",))
    store(backend, ("f",), b"x")
    with pytest.raises(IsADirectory):
        backend.read(("d",))
    with pytest.raises(IsADirectory):
        backend.write(("d",))
    with pytest.raises(NotADirectory):
        backend.list_page(("f",))
    with pytest.raises((NotADirectory, NotFound)):
        backend.write(("f", "child"))
    with pytest.raises(IsADirectory):
        backend.delete_file(("d",))
    with pytest.raises(NotADirectory):
        backend.delete_dir(("f",))


def test_mkdir_and_empty_directories(backend):
    info = backend.mkdir(("d",))
    assert info.is_dir and backend.info(("d",)).is_dir
    assert names(backend, ("d",)) == []
    with pytest.raises(AlreadyExists):
        backend.mkdir(("d",))
    store(backend, ("f",), b"x")
    with pytest.raises(AlreadyExists):
        backend.mkdir(("f",))
    with pytest.raises(NotFound):
        backend.mkdir(("missing", "d"))


def test_listing_order_and_paging(backend):
    for name in ("b", "a", "c"):
        store(backend, (name,), name.encode())
    for name in ("z", "y"):
        backend.mkdir((name,))
    page = backend.list_page(())
    assert [(e.is_dir, e.name) for e in page.entries] == [
        (True, "y"), (True, "z"), (False, "a"), (False, "b"), (False, "c")]
    assert page.last_key is None
    assert names(backend, ()) == ["y", "z", "a", "b", "c"]
    rest = backend.list_page((), after=(0, "z"))
    assert [e.name for e in rest.entries] == ["a", "b", "c"]
    assert {e.name: e.size for e in page.entries if not e.is_dir} == {"a": 1, "b": 1, "c": 1}


def test_delete_file_and_dir(backend):
    backend.mkdir(("d",))
    backend.mkdir(("d", "e"))
    store(backend, ("d", "e", "f"), b"x")
    store(backend, ("d", "g"), b"x")
    with pytest.raises(DirectoryNotEmpty):
        backend.delete_dir(("d",))
    assert backend.delete_dir(("d",), force=True) == 2
    with pytest.raises(NotFound):
        backend.info(("d",))
    backend.mkdir(("empty",))
    assert backend.delete_dir(("empty",)) == 0
    store(backend, ("f",), b"x")
    backend.delete_file(("f",))
    with pytest.raises(NotFound):
        backend.delete_file(("f",))
    with pytest.raises(InvalidOperation):
        backend.delete_dir((), force=True)


def test_names_too_long_create_nothing(backend):
    with pytest.raises(NameTooLong):
        backend.mkdir(("x" * 256,))
    with pytest.raises(NameTooLong):
        backend.write(("é" * 128,))
    with pytest.raises(NameTooLong):
        backend.info(("d" * 200,) * 21)
    assert names(backend, ()) == []
    store(backend, ("x" * 255,), b"ok")


def test_write_at_offset(backend):
    needs(backend, WRITE_AT_OFFSET)
    first = store(backend, ("f",), b"hello")
    appended = store(backend, ("f",), b" world", offset=5, expected_size=5)
    assert appended.size == 11 and appended.etag != first.etag
    assert content(backend, ("f",)) == b"hello world"
    store(backend, ("f",), b"J", offset=0, if_match=appended.etag)
    assert content(backend, ("f",)) == b"Jello world"
    store(backend, ("f",), b"ELLO", offset=1, truncate=True)
    assert content(backend, ("f",)) == b"JELLO"
    with pytest.raises(OffsetBeyondEnd):
        backend.write(("f",), offset=6)
    with pytest.raises(NotFound):
        backend.write(("new",), offset=1)
    assert store(backend, ("new",), b"n", offset=0).size == 1


def test_preconditions_are_checked_again_at_commit(backend):
    needs(backend, WRITE_AT_OFFSET)
    info = store(backend, ("f",), b"abc")
    with pytest.raises(PreconditionFailed):
        backend.write(("f",), offset=3, expected_size=2)
    with pytest.raises(PreconditionFailed):
        backend.write(("f",), if_match='"other"')
    late = backend.write(("f",), offset=3, expected_size=3, if_match=info.etag)
    late.write(b"d")
    store(backend, ("f",), b"changed meanwhile")
    with pytest.raises(PreconditionFailed) as failure:
        late.commit()
    late.abort()
    assert failure.value.details["size"] == len(b"changed meanwhile")
    assert content(backend, ("f",)) == b"changed meanwhile"


def test_interrupted_offset_write_changes_nothing(backend):
    needs(backend, WRITE_AT_OFFSET)
    info = store(backend, ("f",), b"abc")
    for offset in (3, 1):
        upload = backend.write(("f",), offset=offset)
        upload.write(b"XYZ")
        upload.abort()
    assert content(backend, ("f",)) == b"abc" and backend.info(("f",)).etag == info.etag


def test_move_files_and_directories(backend):
    needs(backend, MOVE)
    backend.mkdir(("d",))
    backend.mkdir(("d", "sub"))
    store(backend, ("d", "sub", "f"), b"f")
    backend.mkdir(("e",))
    assert backend.move(("d",), ("e", "d2")).is_dir
    assert content(backend, ("e", "d2", "sub", "f")) == b"f"
    with pytest.raises(NotFound):
        backend.info(("d",))
    store(backend, ("a",), b"a")
    store(backend, ("b",), b"b")
    with pytest.raises(AlreadyExists):
        backend.move(("a",), ("b",))
    backend.move(("a",), ("b",), overwrite=True)
    assert content(backend, ("b",)) == b"a" and names(backend, ()) == ["e", "b"]
    with pytest.raises(InvalidOperation):
        backend.move(("e",), ("e", "d2", "inside"))
    with pytest.raises(NotFound):
        backend.move(("missing",), ("x",))
    with pytest.raises(IsADirectory):
        backend.move(("b",), ("e",), overwrite=True)


def test_copy(backend):
    needs(backend, COPY)
    store(backend, ("a",), b"data")
    copied = backend.copy(("a",), ("b",))
    assert copied.size == 4 and content(backend, ("b",)) == b"data" and content(backend, ("a",)) == b"data"
    with pytest.raises(AlreadyExists):
        backend.copy(("a",), ("b",))
    backend.mkdir(("d",))
    with pytest.raises(IsADirectory):
        backend.copy(("d",), ("e",))


def test_set_mtime_and_folder_mtimes(backend):
    needs(backend, SET_MTIME)
    store(backend, ("f",), b"x")
    old = backend.info(("f",))
    dated = backend.set_mtime(("f",), 978307200.5)
    assert dated.mtime == pytest.approx(978307200.5) and dated.etag != old.etag
    backend.mkdir(("d",))
    backend.set_mtime(("d",), 978307200.0)
    if FOLDER_MTIME in backend.capabilities:
        store(backend, ("d", "new"), b"n")
        assert backend.info(("d",)).mtime > 978307200.0
        listed = {e.name: e.mtime for e in backend.list_page(()).entries}
        assert listed["d"] > 978307200.0


def test_usage_counts_what_is_below_and_file_at_tells_files(backend):
    backend.mkdir(("a",))
    backend.mkdir(("a", "b"))
    store(backend, ("a", "x"), b"abc")
    store(backend, ("a", "b", "y"), b"hello")
    in_flight = backend.write(("a", "b", "z"))
    try:
        in_flight.write(b"not counted until it lands")
        assert backend.usage(("a",)) == Usage(8, 3)  # b, x, b/y
        assert backend.usage(()) == Usage(8, 4)
        assert backend.usage(("a", "b")) == Usage(5, 1)
    finally:
        in_flight.abort()
    # the interface's own count (by listing every folder) agrees with the backend's faster one
    assert StorageBackend.usage(backend, ("a",)) == backend.usage(("a",))
    with pytest.raises(NotFound):
        backend.usage(("nothing",))
    with pytest.raises(NotADirectory):
        backend.usage(("a", "x"))
    assert backend.file_at(("a", "x")).size == 3
    assert backend.file_at(("a", "b")) is None and backend.file_at(("a", "nothing")) is None


def test_metadata(backend):
    assert backend.read_meta(("acl", "u", "c", "read.json")) is None
    backend.write_meta(("acl", "u", "c", "read.json"), b"{}")
    backend.write_meta(("acl", "u", "c", "read.json"), b'{"read": []}')
    assert backend.read_meta(("acl", "u", "c", "read.json")) == b'{"read": []}'
    assert names(backend, ()) == []  # metadata is not in the key space
    backend.delete_meta(("acl", "u", "c", "read.json"))
    backend.delete_meta(("acl", "u", "c", "read.json"))
    assert backend.read_meta(("acl", "u", "c", "read.json")) is None


__all__ = [name for name in dir() if name.startswith("test_")]
