"""``Uploader`` (mount/uploads.py) on its own, without /dev/fuse: one upload end to end (bytes, the server
version the staged file now equals, the caches, a pending mtime) against a real ``algofs serve``, behind
tests/fault_proxy.py where a test counts the bytes sent or makes the API fail."""

from __future__ import annotations

import errno
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fault_proxy import FaultProxy
from waiting import wait_until

from algofs_jupyter.fs import AlgoFileSystem
from algofs_jupyter.mount.block_cache import BlockCache
from algofs_jupyter.mount.metadata_cache import MetadataCache
from algofs_jupyter.mount.recovery import RecoveryStore
from algofs_jupyter.mount.staging import StagedFile, WriteStaging, salvage_staging
from algofs_jupyter.mount.uploads import Uploader
from algofs_jupyter.server.embedded_server import EmbeddedServer

from .conftest import ProxiedServer, dead_pid


@dataclass
class Rig:
    uploader: Uploader
    staging: WriteStaging
    metadata: MetadataCache
    recovery: RecoveryStore
    client: AlgoFileSystem  # the uploader's client (through the proxy)
    direct: AlgoFileSystem  # another client of the same server ("someone else")
    proxy: FaultProxy
    folder: str  # a fresh collection: data/demo/<name>

    def staged(self, name: str, data: bytes = b"") -> StagedFile:
        """A new file ``name`` opened for writing, holding ``data``."""
        staged = self.staging.open(f"{self.folder}/{name}", None, truncate=True, new=True)
        if data:
            staged.pwrite(data, 0)
        return staged

    def reopen(self, name: str) -> StagedFile:
        """Opened for writing again, as ``open(p, "r+")`` does: the server's version is downloaded."""
        path = f"{self.folder}/{name}"
        info = self.client.head(path)
        return self.staging.open(path, lambda local: self.client.download_to(path, local), truncate=False,
                                 remote=(info["size"], info["etag"]))

    def on_server(self, name: str) -> bytes:
        return self.direct.cat_file(f"{self.folder}/{name}")


def make_rig(server: EmbeddedServer, proxy: FaultProxy, base: Path, write_back: float = 0.0) -> Iterator[Rig]:
    client = AlgoFileSystem(proxy.url, server.api_key, skip_instance_cache=True, timeout=5)
    direct = AlgoFileSystem(server.url, server.api_key, skip_instance_cache=True)
    folder = f"data/demo/up-{uuid.uuid4().hex[:8]}"
    direct.mkdir(folder)
    recovery = RecoveryStore(base, server.url)
    staging = WriteStaging(base / "staging" / str(dead_pid()), recovery)
    metadata = MetadataCache()
    blocks = BlockCache(base / "blocks", 16 << 20, 1 << 20, 2)
    uploader = Uploader(client, staging, metadata, blocks, write_back=write_back)
    proxy.fail_ratio = 0.0
    proxy.reset()
    try:
        yield Rig(uploader, staging, metadata, recovery, client, direct, proxy, folder)
    finally:
        proxy.fail_ratio = 0.0
        uploader.drain(5.0)
        staging.close()
        blocks.close()
        direct.rm(folder, recursive=True)


@pytest.fixture
def rig(proxied_demo: ProxiedServer, tmp_path: Path) -> Iterator[Rig]:
    yield from make_rig(proxied_demo.server, proxied_demo.proxy, tmp_path)


def claimed(staged: StagedFile) -> bool:
    """A claim file with content (an empty one, as spares and uploaded files keep, claims nothing)."""
    return staged.claim.exists() and staged.claim.stat().st_size > 0


def test_an_upload_lands_and_the_staged_file_and_metadata_know_the_servers_version(rig: Rig) -> None:
    staged = rig.staged("a.txt", b"hello")
    assert claimed(staged)
    rig.uploader.upload(staged)
    assert rig.on_server("a.txt") == b"hello"
    server_info = rig.direct.head(f"{rig.folder}/a.txt")
    assert not staged.dirty and not claimed(staged)
    assert (staged.remote_size, staged.remote_etag) == (5, server_info["etag"])  # tail uploads start here
    known, attr = rig.metadata.lookup(staged.path)
    assert known and attr is not None and (attr.size, attr.etag) == (5, server_info["etag"])
    assert rig.uploader.stats() == {"done": 1, "failed": 0, "tail_uploads": 0}
    rig.proxy.reset()
    rig.uploader.upload(staged)  # clean: nothing to send
    assert sum(rig.proxy.requests.values()) == 0
    rig.staging.release(staged)


def test_an_append_sends_only_the_new_bytes(rig: Rig) -> None:
    staged = rig.staged("log.txt", b"x" * 100_000)
    rig.uploader.upload(staged)
    rig.proxy.reset()
    staged.append(b"one more line\n")
    rig.uploader.upload(staged)
    assert rig.on_server("log.txt") == b"x" * 100_000 + b"one more line\n"
    assert rig.proxy.body_bytes["PUT"] + rig.proxy.body_bytes["POST"] < 1000
    assert rig.uploader.stats()["tail_uploads"] == 1
    assert staged.remote_size == 100_014
    rig.staging.release(staged)


def test_a_change_elsewhere_meanwhile_gets_the_whole_file_never_a_mix(rig: Rig) -> None:
    staged = rig.staged("edit.txt", b"a" * 1000)
    rig.uploader.upload(staged)
    rig.direct.pipe_file(f"{rig.folder}/edit.txt", b"b" * 2000)  # someone else's version
    staged.pwrite(b"A", 999)
    rig.uploader.upload(staged)  # the tail's precondition fails: last writer wins, whole
    assert rig.on_server("edit.txt") == b"a" * 999 + b"A"
    rig.staging.release(staged)


def test_a_kept_copy_reopened_for_append_appends_to_a_newer_version(rig: Rig) -> None:
    staged = rig.staged("train.log", b"step 1\n")
    rig.uploader.upload(staged)
    rig.staging.release(staged)  # clean: its copy is kept
    path = f"{rig.folder}/train.log"
    kept = rig.staging.kept_version(path)
    assert kept is not None
    rig.direct.pipe_file(path, b"step 1\nstep 2 (elsewhere)\n")
    staged = rig.staging.open(path, None, truncate=False, remote=kept, unverified=True)  # no HEAD
    staged.append(b"step 3\n")
    rig.uploader.upload(staged)
    expected = b"step 1\nstep 2 (elsewhere)\nstep 3\n"
    assert rig.on_server("train.log") == expected
    assert staged.pread(1000, 0) == expected  # the local copy was refreshed: readers see the file
    assert staged.remote_size == len(expected)
    rig.staging.release(staged)


def test_a_failed_upload_keeps_the_bytes_and_the_next_one_lands(rig: Rig) -> None:
    staged = rig.staged("results.csv", b"epoch,loss\n1,0.5\n")
    rig.metadata.put(staged.path, None)
    rig.proxy.fail_ratio = 1.0
    with pytest.raises(OSError) as failure:
        rig.uploader.upload(staged)
    assert failure.value.errno == errno.EIO
    assert staged.dirty and claimed(staged)
    [entry] = rig.recovery.entries()
    assert entry.data_file.read_bytes() == b"epoch,loss\n1,0.5\n"
    assert rig.metadata.lookup(staged.path) == (False, None)  # the server's state is unknown now
    rig.proxy.fail_ratio = 0.0
    rig.uploader.upload(staged)
    assert rig.on_server("results.csv") == b"epoch,loss\n1,0.5\n"
    assert rig.recovery.entries() == []  # landed: nothing left to recover
    assert not claimed(staged)
    assert rig.uploader.stats()["done"] == 1 and rig.uploader.stats()["failed"] == 1
    rig.staging.release(staged)


def test_a_time_set_while_dirty_follows_the_upload(rig: Rig) -> None:
    staged = rig.staged("copied.bin", b"bytes of a file cp -p copies")
    with staged.lock:
        staged.pending_mtime = 1_000_000_000.0
    rig.uploader.upload(staged)
    info = rig.direct.head(f"{rig.folder}/copied.bin")
    assert info["mtime"] == 1_000_000_000.0
    assert staged.pending_mtime is None and staged.uploaded is not None
    assert staged.uploaded["mtime"] == 1_000_000_000.0
    assert (staged.remote_size, staged.remote_etag) == (info["size"], info["etag"])
    known, attr = rig.metadata.lookup(staged.path)
    assert known and attr is not None and attr.mtime == 1_000_000_000.0
    rig.staging.release(staged)


def test_a_reopened_file_edited_in_place_sends_its_tail(rig: Rig) -> None:
    rig.direct.pipe_file(f"{rig.folder}/data.bin", os.urandom(50_000))
    staged = rig.reopen("data.bin")
    original = staged.pread(50_000, 0)
    rig.proxy.reset()
    staged.pwrite(b"patched", 49_000)
    rig.uploader.upload(staged)
    assert rig.on_server("data.bin") == original[:49_000] + b"patched" + original[49_007:]
    assert rig.proxy.body_bytes["PUT"] + rig.proxy.body_bytes["POST"] < 5000
    rig.staging.release(staged)


@pytest.fixture
def write_back_rig(proxied_demo: ProxiedServer, tmp_path: Path) -> Iterator[Rig]:
    yield from make_rig(proxied_demo.server, proxied_demo.proxy, tmp_path, write_back=0.3)


def test_with_write_back_close_only_schedules_and_the_write_back_uploads(write_back_rig: Rig) -> None:
    rig, write_back = write_back_rig, write_back_rig.uploader.write_back
    assert write_back is not None
    staged = rig.staged("later.txt", b"after the delay")
    rig.uploader.closed(staged)  # close(): returns at once
    assert rig.proxy.requests["PUT"] == 0 and write_back.pending() == 1
    rig.staging.release(staged)  # the handle goes; the write-back holds the file
    assert wait_until(lambda: write_back.pending() == 0, timeout=10.0)
    assert rig.on_server("later.txt") == b"after the delay"
    assert rig.uploader.stats()["done"] == 1


def test_without_write_back_close_uploads_at_once(rig: Rig) -> None:
    staged = rig.staged("now.txt", b"before close returns")
    rig.uploader.closed(staged)
    assert rig.on_server("now.txt") == b"before close returns"
    rig.staging.release(staged)


def test_a_dirty_file_is_claimed_until_its_upload_succeeds(rig: Rig, tmp_path: Path) -> None:
    staged = rig.staging.open(f"{rig.folder}/a.txt", None, truncate=False, new=False)
    assert not claimed(staged)  # opened, nothing changed yet
    staged.pwrite(b"hello", 0)
    assert claimed(staged)
    rig.staging.rekey(f"{rig.folder}/a.txt", f"{rig.folder}/b.txt")
    assert f'"{rig.folder}/b.txt"' in staged.claim.read_text()
    rig.uploader.upload(staged)
    assert rig.on_server("b.txt") == b"hello"
    assert not claimed(staged)
    staged.pwrite(b"again", 0)
    saved = salvage_staging(tmp_path / "staging", rig.recovery)  # as if this daemon had died now
    assert saved == [f"{rig.folder}/b.txt"]
    [entry] = rig.recovery.entries()
    assert entry.data_file.read_bytes() == b"again" and entry.api_address == rig.recovery.api_address != ""
