"""The ``posix`` and ``exclusive-create`` parts of the storage contract (server/storage/base.py), as
tests every backend that lists the capability must pass; imported like ``storage_contract.py`` by the
modules that provide a ``backend`` fixture (test_storage_local.py, test_s3_backend.py)."""

from __future__ import annotations

import stat
import threading

import pytest

from algofs_jupyter.server.storage import (
    EXCLUSIVE_CREATE,
    POSIX,
    AlreadyExists,
    AttrChange,
    CreateRefused,
    InvalidOperation,
    StorageBackend,
)

from .storage_contract import content, needs, store

NS = 10**9


def posix(backend: StorageBackend, key: tuple[str, ...]):
    info = backend.info(key)
    assert info.posix is not None, "a backend with POSIX fills EntryInfo.posix"
    return info.posix


def listed(backend: StorageBackend, key: tuple[str, ...]) -> dict:
    entries = backend.list_page(key).entries
    return {e.name: e for e in backend.with_posix(key, entries)}


def test_exclusive_create_refuses_anything_at_the_name(backend):
    needs(backend, EXCLUSIVE_CREATE)
    store(backend, ("new",), b"first", exclusive=True)
    backend.mkdir(("folder",))
    for name in ("new", "folder"):
        with pytest.raises(CreateRefused) as refused:
            store(backend, (name,), b"second", exclusive=True)
        assert refused.value.errno == "EEXIST"
    assert content(backend, ("new",)) == b"first"


def test_exclusive_create_is_checked_again_at_commit(backend):
    needs(backend, EXCLUSIVE_CREATE)
    upload = backend.write(("late",), exclusive=True)
    try:
        upload.write(b"loser")
        store(backend, ("late",), b"winner")  # another writer lands first
        with pytest.raises(CreateRefused):
            upload.commit()
    finally:
        upload.abort()
    assert content(backend, ("late",)) == b"winner"


def test_concurrent_exclusive_creates_one_wins(backend):
    needs(backend, EXCLUSIVE_CREATE)
    outcomes: list[str] = []
    start = threading.Barrier(8)

    def create(number: int) -> None:
        upload = backend.write(("race",), exclusive=True)
        try:
            upload.write(f"writer {number}".encode())
            start.wait()
            upload.commit()
            outcomes.append(f"writer {number}")
        except CreateRefused:
            outcomes.append("EEXIST")
        finally:
            upload.abort()

    threads = [threading.Thread(target=create, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [o for o in outcomes if o != "EEXIST"]
    assert len(outcomes) == 8 and len(winners) == 1
    assert content(backend, ("race",)) == winners[0].encode()


def test_modes_owners_and_times_are_kept(backend):
    needs(backend, POSIX)
    info = store(backend, ("script",), b"#!/bin/sh\n", mode=0o750)
    assert info.posix.mode == stat.S_IFREG | 0o750 and info.posix.uid is None
    backend.mkdir(("dir",), mode=0o700)
    assert posix(backend, ("dir",)).mode == stat.S_IFDIR | 0o700
    changed = backend.set_attributes(("script",), AttrChange(mode=0o4755, uid=1234, gid=5678,
                                                             mtime_ns=-NS * 315532800 + 123456789,
                                                             atime_ns=1_000_000_000_987654321))
    expected = (stat.S_IFREG | 0o4755, 1234, 5678, -NS * 315532800 + 123456789, 1_000_000_000_987654321)
    got = posix(backend, ("script",))
    assert (got.mode, got.uid, got.gid, got.mtime_ns, got.atime_ns) == expected
    assert changed.posix == got and got.ctime_ns > 1_700_000_000 * NS  # ctime: now
    entry = listed(backend, ())["script"]
    assert (entry.posix.mode, entry.posix.uid, entry.posix.mtime_ns) == expected[:2] + expected[3:4]
    # replacing the content keeps mode and owner; mtime and ctime are now
    store(backend, ("script",), b"#!/bin/sh\necho new\n")
    after = posix(backend, ("script",))
    assert (after.mode, after.uid, after.gid) == expected[:3] and after.mtime_ns > 1_700_000_000 * NS
    backend.set_attributes(("dir",), AttrChange(mode=0o755, uid=None))
    assert posix(backend, ("dir",)).mode == stat.S_IFDIR | 0o755 and posix(backend, ("dir",)).uid is None


def test_setattr_refuses_type_bits_and_bad_values(backend):
    for bad in ({"mode": stat.S_IFREG | 0o644}, {"mode": -1}, {"uid": -1}, {"uid": 2**32}, {"gid": "0"},
                {"mtime_ns": 1.5}, {"atime_ns": 2**63}):
        with pytest.raises(InvalidOperation):
            AttrChange(**bad)


def test_defaults_for_entries_written_without_metadata(backend):
    needs(backend, POSIX)
    info = store(backend, ("plain",), b"x")
    backend.mkdir(("folder",))
    file_posix, folder_posix = posix(backend, ("plain",)), posix(backend, ("folder",))
    assert (file_posix.mode, file_posix.uid, file_posix.gid) == (0o100644, None, None)
    assert file_posix.mtime_ns == file_posix.atime_ns == file_posix.ctime_ns
    assert abs(file_posix.mtime_ns - info.mtime * NS) < 2 * NS
    assert (folder_posix.mode, folder_posix.uid) == (0o040755, None)


def test_symlinks_are_entries_never_followed(backend):
    needs(backend, POSIX)
    backend.mkdir(("d",))
    store(backend, ("d", "real"), b"the real content")
    link = backend.symlink(("d", "link"), "real")
    assert link.posix.mode == stat.S_IFLNK | 0o777 and link.posix.target == "real"
    assert link.size == 4 and not link.is_dir and link.is_link
    assert content(backend, ("d", "link")) == b"real"  # its content is the target: never followed
    dangling = backend.symlink(("d", "dangling"), "../nowhere/ü x")
    assert dangling.posix.target == "../nowhere/ü x"
    entries = listed(backend, ("d",))
    assert entries["link"].posix.target == "real" and stat.S_ISLNK(entries["link"].posix.mode)
    assert not stat.S_ISLNK(entries["real"].posix.mode)
    with pytest.raises(AlreadyExists):
        backend.symlink(("d", "real"), "x")
    with pytest.raises(AlreadyExists):
        backend.symlink(("d", "link"), "x")
    for bad in ("", "a\x00b", "x" * 4096):
        with pytest.raises(InvalidOperation):
            backend.symlink(("d", "bad"), bad)
    # setattr on a link changes the link (lchown / utimensat(AT_SYMLINK_NOFOLLOW)), not the file it names
    backend.set_attributes(("d", "link"), AttrChange(uid=7, mtime_ns=5 * NS))
    assert posix(backend, ("d", "link")).uid == 7 and posix(backend, ("d", "real")).uid is None
    assert posix(backend, ("d", "link")).target == "real"
    # rename moves the link, copy copies the link, delete removes only the link
    backend.move(("d", "link"), ("d", "moved"))
    assert posix(backend, ("d", "moved")).target == "real" and posix(backend, ("d", "moved")).uid == 7
    backend.copy(("d", "moved"), ("d", "copied"))
    assert posix(backend, ("d", "copied")).target == "real"
    backend.delete_file(("d", "moved"))
    assert content(backend, ("d", "real")) == b"the real content"
    # a whole-file write replaces the link with a plain file; a write at an offset is refused
    with pytest.raises(InvalidOperation):
        store(backend, ("d", "copied"), b"x", offset=0)
    store(backend, ("d", "copied"), b"a file now")
    assert posix(backend, ("d", "copied")).mode == 0o100644 and posix(backend, ("d", "copied")).target is None


__all__ = [name for name in dir() if name.startswith("test_")]
