"""A file written through the mount is read back from the bytes the mount just uploaded (the clean copy the
staging keeps), not downloaded again (issue 25, item 7); a change another client makes afterwards is still
seen when the mount learns of it (at once in strict mode, after the TTL in ttl mode). Counted by the
daemon's own status: ``cache.bytes_fetched`` (the block cache's and the small-file store's) and the
small-file store's ``fetches``."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from algofs_jupyter.fs import AlgoFileSystem
from algofs_jupyter.mount import control

pytestmark = pytest.mark.fuse

MIB = 1 << 20


@pytest.fixture
def collection(api_fs: AlgoFileSystem) -> Iterator[str]:
    """A fresh collection of user demo (its layout path), removed afterwards."""
    name = f"raw-{uuid.uuid4().hex[:8]}"
    api_fs.mkdir(f"data/demo/{name}")
    try:
        yield f"data/demo/{name}"
    finally:
        api_fs.rm(f"data/demo/{name}", recursive=True)




def fetched(mnt: Path) -> tuple[int, int]:
    """(bytes fetched by every content cache, whole-file GETs of the small-file store)."""
    status = control.query(mnt, "status")
    return status["cache"]["bytes_fetched"], status["small_files"]["fetches"]


def payload(size: int, seed: str) -> bytes:
    block = (seed.encode() * (4096 // len(seed) + 1))[:4096]
    return (block * (size // 4096 + 1))[:size]


def drop_page_cache(path: Path) -> None:
    """Make the next read of ``path`` reach the daemon (not the kernel's page cache of the mount)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def test_a_16_mib_file_copied_in_with_cp_is_read_back_without_a_download(new_mount, collection: str,
                                                                         tmp_path: Path) -> None:
    mnt = new_mount()
    source = tmp_path / "big.bin"
    source.write_bytes(payload(16 * MIB, "copied-in-"))
    target = mnt / collection / "big.bin"
    subprocess.run(["cp", str(source), str(target)], check=True)
    before = fetched(mnt)
    assert target.read_bytes() == source.read_bytes()
    drop_page_cache(target)
    assert target.read_bytes() == source.read_bytes()  # twice: the daemon served the bytes, not the kernel
    assert fetched(mnt) == before, "the bytes just uploaded were downloaded again"
    assert control.query(mnt, "status")["cache"]["kept_copy_bytes"] >= 16 * MIB


def test_a_small_file_written_then_read_makes_no_get(new_mount, collection: str) -> None:
    mnt = new_mount()
    target = mnt / collection / "notes.txt"
    target.write_bytes(b"written through the mount\n" * 100)
    time.sleep(0.2)  # the release of the writer's handle (the kernel sends it after close() returns)
    before = fetched(mnt)
    drop_page_cache(target)
    assert target.read_bytes() == b"written through the mount\n" * 100
    assert fetched(mnt) == before, "the small file just uploaded was fetched again"


def test_strict_mode_sees_another_clients_change_after_our_write(new_mount, api_fs: AlgoFileSystem,
                                                                  collection: str, tmp_path: Path) -> None:
    mnt = new_mount(consistency="strict")
    for name, size in (("big.bin", 16 * MIB), ("small.bin", 4096)):
        target = mnt / collection / name
        source = tmp_path / name
        source.write_bytes(payload(size, "ours-"))
        shutil.copyfile(source, target)
        time.sleep(0.2)
        assert target.read_bytes() == source.read_bytes()
        theirs = payload(size, "THEIRS")  # same size: only the ETag tells the versions apart
        api_fs.pipe_file(f"{collection}/{name}", theirs)
        drop_page_cache(target)
        assert target.read_bytes() == theirs, f"{name}: our uploaded copy was served over the newer version"


def test_ttl_mode_sees_another_clients_change_after_the_ttl(new_mount, api_fs: AlgoFileSystem,
                                                           collection: str, tmp_path: Path) -> None:
    mnt = new_mount(metadata_ttl=1.0)
    for name, size in (("big.bin", 16 * MIB), ("small.bin", 4096)):
        target = mnt / collection / name
        target.write_bytes(payload(size, "ours-"))
        api_fs.pipe_file(f"{collection}/{name}", payload(size, "THEIRS"))
        time.sleep(1.5)
        drop_page_cache(target)
        assert target.read_bytes() == payload(size, "THEIRS"), f"{name}: stale bytes after the TTL"
