"""Write staging's registry (mount/staging.py), its staged files, spare files and claims on their own:
no /dev/fuse, no server (the bytes a download would bring are written by the ``fill`` given to ``open``)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from waiting import wait_until

from algofs_jupyter.mount import staging as staging_module
from algofs_jupyter.mount.claims import claim_of, empty_claim, write_claim
from algofs_jupyter.mount.recovery import RecoveryStore
from algofs_jupyter.mount.spare_files import SpareFiles
from algofs_jupyter.mount.staged_file import UNCHANGED, StagedFile
from algofs_jupyter.mount.staging import WriteStaging


@pytest.fixture
def staging(tmp_path: Path) -> Iterator[WriteStaging]:
    registry = WriteStaging(tmp_path / "staging" / "1", RecoveryStore(tmp_path / "recovery", "http://api"))
    try:
        yield registry
    finally:
        registry.close()


def claimed(staged: StagedFile) -> dict | None:
    """What the staged file's claim says (None: no claim, or an empty one)."""
    try:
        text = staged.claim.read_text()
    except FileNotFoundError:
        return None
    return json.loads(text) if text else None


def filler(data: bytes):
    def fill(local: Path) -> None:
        local.write_bytes(data)
    return fill


# claims


def test_a_claim_names_the_path_and_api_and_an_emptied_claim_names_nothing(tmp_path: Path) -> None:
    local = tmp_path / "staged-7"
    claim = claim_of(local)
    assert claim == tmp_path / "staged-7.claim"
    write_claim(claim, "data/u/c/x", "http://api")
    assert json.loads(claim.read_text()) == {"path": "data/u/c/x", "api_address": "http://api"}
    empty_claim(claim)
    assert claim.read_text() == ""
    claim.unlink()
    empty_claim(claim)  # a missing claim stays missing
    assert not claim.exists()


def test_a_staged_file_is_claimed_before_its_first_change_and_unclaimed_when_clean(tmp_path: Path) -> None:
    staged = StagedFile("data/u/c/x", tmp_path / "staged-1", "http://api")
    assert claimed(staged) is None
    staged.pwrite(b"abc", 0)
    assert staged.dirty and claimed(staged) == {"path": "data/u/c/x", "api_address": "http://api"}
    staged.mark_clean()
    assert not staged.dirty and claimed(staged) is None and staged.claim.exists()
    staged.unlinked = True
    staged.truncate(1)  # an unlinked file's bytes are nobody's: no claim
    assert staged.dirty and claimed(staged) is None
    staged.close()
    assert not staged.local.exists() and not staged.claim.exists()


def test_a_staged_file_knows_where_a_tail_upload_starts(tmp_path: Path) -> None:
    staged = StagedFile("data/u/c/x", tmp_path / "staged-1")
    staged.pwrite(b"0123456789", 0)
    assert staged.tail_start(10) is None  # no server version known
    staged.record_server_version({"size": 10, "etag": "e1"})
    assert (staged.remote_size, staged.remote_etag, staged.changed_from) == (10, "e1", UNCHANGED)
    staged.append(b"ab")
    assert staged.size() == 12 and staged.tail_start(12) == 10
    staged.pwrite(b"X", 4)
    assert staged.tail_start(12) == 4
    staged.record_server_version({"size": 99, "etag": "e2"})  # not these bytes: a whole-file PUT next
    assert staged.remote_size is None and staged.tail_start(12) is None
    staged.close()


# spare files


def test_spare_files_are_made_ahead_empty_with_an_empty_claim(tmp_path: Path) -> None:
    spares = SpareFiles(tmp_path, iter(range(1, 1000)), keep=4)
    try:
        assert wait_until(lambda: len(spares._free) >= 2, timeout=5)
        local, fd = spares.take()  # type: ignore[misc]
        assert local.parent == tmp_path and local.name.startswith("staged-")
        assert os.fstat(fd).st_size == 0 and claim_of(local).read_text() == ""
        os.close(fd)
    finally:
        spares.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [local.name, local.name + ".claim"]


def test_a_clean_released_file_is_recycled_and_a_full_or_closed_pool_takes_nothing(tmp_path: Path) -> None:
    spares = SpareFiles(tmp_path, iter(range(100, 1000)), keep=2)
    assert wait_until(lambda: len(spares._free) >= 1, timeout=5)
    staged = StagedFile("data/u/c/x", tmp_path / "staged-1")
    staged.pwrite(b"bytes", 0)
    staged.mark_clean()
    with spares._lock:
        room = len(spares._free) < spares.keep
    staged.close(spares)
    if room:
        assert staged.local.exists() and staged.local.stat().st_size == 0
        assert staged.claim.read_text() == ""
    assert wait_until(lambda: len(spares._free) >= 1, timeout=5)
    while len(spares._free) < spares.keep:  # fill the pool
        extra = StagedFile("data/u/c/y", tmp_path / f"extra-{len(spares._free)}")
        assert spares.give(extra.local, extra.fd, extra.claim)
    full = StagedFile("data/u/c/z", tmp_path / "full")
    assert not spares.give(full.local, full.fd, full.claim)
    full.close()
    assert not full.local.exists()
    spares.close()
    assert spares.take() is None
    after = StagedFile("data/u/c/w", tmp_path / "after")
    assert not spares.give(after.local, after.fd, after.claim)
    after.close()
    assert list(tmp_path.iterdir()) == []


def test_a_dirty_file_is_never_recycled(tmp_path: Path) -> None:
    spares = SpareFiles(tmp_path, iter(range(100, 1000)), keep=4)
    try:
        staged = StagedFile("data/u/c/x", tmp_path / "staged-1")
        staged.pwrite(b"unsent", 0)
        staged.close(spares)
        assert not staged.local.exists() and not staged.claim.exists()
    finally:
        spares.close()


# the registry


def test_handles_of_one_path_share_its_staged_file(staging: WriteStaging) -> None:
    first = staging.open("data/u/c/x", filler(b"old"), truncate=False, remote=(3, "e1"))
    second = staging.open("data/u/c/x", filler(b"never called"), truncate=False)
    assert second is first and first.opens == 2 and first.pread(10, 0) == b"old"
    assert (first.remote_size, first.remote_etag) == (3, "e1") and not first.dirty
    assert staging.get("data/u/c/x") is first
    assert staging.paths_under("data/u/c") == {"x": first} and staging.paths_under("data/u") == {}
    staging.release(second)
    assert staging.get("data/u/c/x") is first
    staging.release(first)
    assert staging.get("data/u/c/x") is None


def test_truncate_and_new_mark_the_file_dirty_and_claimed(staging: WriteStaging) -> None:
    new = staging.open("data/u/c/new", None, truncate=True, new=True)
    assert new.dirty and claimed(new) == {"path": "data/u/c/new", "api_address": "http://api"}
    old = staging.open("data/u/c/old", filler(b"abc"), truncate=True, remote=(3, "e1"))
    assert old.size() == 0 and old.dirty and old.changed_from == 0
    assert staging.stats()["in_flight"] == 2
    staging.release(new)
    staging.release(old)
    assert staging.stats()["in_flight"] == 0  # dirty files without a handle are gone from the registry


def test_a_failed_fill_drops_the_reference(staging: WriteStaging) -> None:
    def fail(local: Path) -> None:
        raise OSError("download failed")
    with pytest.raises(OSError):
        staging.open("data/u/c/x", fail, truncate=False, remote=(3, "e1"))
    assert staging.get("data/u/c/x") is None


def test_a_clean_copy_is_kept_and_reused_for_the_same_server_version(staging: WriteStaging) -> None:
    staged = staging.open("data/u/c/x", filler(b"abc"), truncate=False, remote=(3, "e1"))
    staging.release(staged)
    assert staging.kept_version("data/u/c/x") == (3, "e1") and staging.stats()["retained"] == 1
    again = staging.open("data/u/c/x", filler(b"not used"), truncate=False, remote=(3, "e1"))
    assert again is staged and staging.reused_copies == 1 and again.pread(3, 0) == b"abc"
    staging.release(again)
    changed = staging.open("data/u/c/x", filler(b"newer"), truncate=False, remote=(5, "e2"))
    assert changed is not staged and changed.pread(5, 0) == b"newer" and staged.fd == -1
    staging.release(changed)
    assert staging.drop_retained("data/u/c/x") == 1 and staging.kept_version("data/u/c/x") is None


def kept_read(staging: WriteStaging, path: str, size: int, etag: str, offset: int = 0,
              count: int = 64) -> bytes | None:
    out = bytearray(count)
    got = staging.read_kept(path, size, etag, offset, memoryview(out))
    return None if got is None else bytes(out[:got])


def test_read_kept_answers_only_the_version_the_local_copy_equals(staging: WriteStaging) -> None:
    """Issue 25: a read of the version this mount holds a copy of comes from that copy, never another's."""
    path = "data/u/c/x"
    staged = staging.open(path, filler(b"abcdef"), truncate=False, remote=(6, "e1"))
    assert kept_read(staging, path, 6, "e1", offset=2, count=3) == b"cde"  # open, unchanged: its bytes
    staging.release(staged)
    assert kept_read(staging, path, 6, "e1") == b"abcdef"  # the kept clean copy
    assert kept_read(staging, path, 6, "e2") is None  # another writer's version (same size)
    assert kept_read(staging, path, 7, "e1") is None
    assert kept_read(staging, path, 6, "") is None  # a listing's attributes: no ETag to compare
    assert kept_read(staging, "data/u/c/other", 6, "e1") is None
    assert staging.kept_copy_counts() == {"kept_copy_reads": 2, "kept_copy_bytes": 9}
    writer = staging.open(path, None, truncate=False, remote=(6, "e1"))
    writer.pwrite(b"X", 0)  # dirty: not the server's version any more
    assert kept_read(staging, path, 6, "e1") is None
    writer.mark_clean()  # uploaded, but the server's answer not recorded: still not "e1"
    writer.record_server_version({"size": 6, "etag": "e3"})
    assert kept_read(staging, path, 6, "e1") is None and kept_read(staging, path, 6, "e3") == b"Xbcdef"
    staging.release(writer)
    staging.drop_retained(path)
    assert kept_read(staging, path, 6, "e3") is None


def test_read_kept_refuses_bytes_that_changed_while_it_read(staging: WriteStaging,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A write that lands between the registry's first look and the local read is seen by the second."""
    path = "data/u/c/x"
    staging.release(staging.open(path, filler(b"abcdef"), truncate=False, remote=(6, "e1")))
    real_preadv = os.preadv

    def racing_preadv(fd: int, buffers: list, offset: int) -> int:
        writer = staging.open(path, None, truncate=False, remote=(6, "e1"))
        writer.pwrite(b"Z", 0)
        writer.mark_clean()
        writer.record_server_version({"size": 6, "etag": "e1"})  # even the same ETag: a new generation
        staging.release(writer)
        return real_preadv(fd, buffers, offset)

    monkeypatch.setattr(staging_module.os, "preadv", racing_preadv)
    assert kept_read(staging, path, 6, "e1") is None
    monkeypatch.setattr(staging_module.os, "preadv", real_preadv)
    assert kept_read(staging, path, 6, "e1") == b"Zbcdef"


def test_dirty_or_unknown_versions_are_not_kept(staging: WriteStaging) -> None:
    dirty = staging.open("data/u/c/d", filler(b"abc"), truncate=False, remote=(3, "e1"))
    dirty.pwrite(b"x", 3)
    unknown = staging.open("data/u/c/u", None, truncate=False)
    staging.release(dirty)
    staging.release(unknown)
    assert staging.stats()["retained"] == 0
    assert not dirty.local.exists()  # dirty bytes without a handle and an upload: removed with their claim
    assert not dirty.claim.exists()


def test_kept_copies_are_trimmed_oldest_first(staging: WriteStaging, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(staging_module, "RETAIN_FILES", 2)
    for name in "abc":
        staging.release(staging.open(f"data/u/c/{name}", filler(b"1"), truncate=False, remote=(1, name)))
    assert [staging.kept_version(f"data/u/c/{n}") for n in "abc"] == [None, (1, "b"), (1, "c")]
    staging.drop_retained_under("data/u")
    assert staging.stats()["retained"] == 0


def test_hold_keeps_a_file_registered_after_its_last_handle(staging: WriteStaging) -> None:
    staged = staging.open("data/u/c/x", None, truncate=True, new=True)
    staging.hold(staged)
    staging.release(staged)
    assert staging.get("data/u/c/x") is staged and staged.opens == 1
    staging.release(staged)
    assert staging.get("data/u/c/x") is None


def test_detach_unclaims_and_unregisters(staging: WriteStaging) -> None:
    staged = staging.open("data/u/c/x", None, truncate=True, new=True)
    assert staging.detach("data/u/c/x") is staged
    assert staged.unlinked and not staged.claim.exists() and staging.get("data/u/c/x") is None
    staged.pwrite(b"still writable", 0)
    assert claimed(staged) is None
    staging.release(staged)
    assert staging.detach("data/u/c/x") is None


def test_rekey_moves_the_entry_replaces_the_destination_and_rewrites_the_claim(staging: WriteStaging) -> None:
    src = staging.open("data/u/c/a", None, truncate=True, new=True)
    dst = staging.open("data/u/c/b", None, truncate=True, new=True)
    with src.lock:
        staging.rekey("data/u/c/a", "data/u/c/b")
    assert staging.get("data/u/c/a") is None and staging.get("data/u/c/b") is src
    assert src.path == "data/u/c/b" and claimed(src) == {"path": "data/u/c/b", "api_address": "http://api"}
    assert dst.unlinked and not dst.claim.exists()
    staging.rekey("data/u/c/nothing", "data/u/c/b")  # no staged file at the source: nothing moves
    assert staging.get("data/u/c/b") is src
    staging.release(src)
    staging.release(dst)


def test_rekey_under_moves_every_file_below_a_directory(staging: WriteStaging) -> None:
    inner = staging.open("data/u/c/d/x", None, truncate=True, new=True)
    deeper = staging.open("data/u/c/d/e/y", None, truncate=True, new=True)
    beside = staging.open("data/u/c/dd", None, truncate=True, new=True)
    staging.rekey_under("data/u/c/d", "data/u/c/n")
    assert staging.get("data/u/c/n/x") is inner and staging.get("data/u/c/n/e/y") is deeper
    assert staging.get("data/u/c/dd") is beside and beside.path == "data/u/c/dd"
    assert claimed(deeper) == {"path": "data/u/c/n/e/y", "api_address": "http://api"}
    for staged in (inner, deeper, beside):
        staging.release(staged)


def test_a_folder_left_by_an_earlier_daemon_with_our_pid_is_set_aside(tmp_path: Path) -> None:
    folder = tmp_path / "staging" / "1"
    folder.mkdir(parents=True)
    (folder / "staged-1").write_bytes(b"unsaved")
    registry = WriteStaging(folder, RecoveryStore(tmp_path / "recovery"))
    registry.close()
    aside = [p for p in folder.parent.iterdir() if p.name.startswith("1-")]
    assert len(aside) == 1 and (aside[0] / "staged-1").read_bytes() == b"unsaved"
