"""The handle kinds (mount/handles.py) on their own, without /dev/fuse: which kind an open makes, and what
each kind's read/write/flush/fsync/release does, against a real ``algofs serve`` behind
tests/fault_proxy.py (which counts the requests a handle makes, or makes the API fail)."""

from __future__ import annotations

import errno
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fault_proxy import FaultProxy
from mfusepy import FuseOSError

from algofs_jupyter.fs import AlgoFileSystem
from algofs_jupyter.fs.data_api import DataClient
from algofs_jupyter.mount.attributes import Attributes
from algofs_jupyter.mount.block_cache import BlockCache
from algofs_jupyter.mount.content_cache import ContentCache
from algofs_jupyter.mount.handles import Handles, ReadHandle, StagedHandle, VirtualHandle
from algofs_jupyter.mount.metadata_cache import MetadataCache
from algofs_jupyter.mount.recovery import RecoveryStore
from algofs_jupyter.mount.resolver import Resolver
from algofs_jupyter.mount.staging import WriteStaging
from algofs_jupyter.mount.uploads import Uploader
from algofs_jupyter.mount.virtual import VirtualTree

from .conftest import ProxiedServer, dead_pid

SMALL = 64 << 10  # files up to this size are read whole (the small-file store)
BLOCK = 256 << 10




class RecordingTree(VirtualTree):
    """A tree whose files answer with what they were asked."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[Any, ...]] = []

    def open(self, path: str, fi: Any) -> int:
        self.calls.append(("open", path))
        return 700

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        self.calls.append(("read", path, size, offset, fh))
        return b"answer"[offset:offset + size]

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        self.calls.append(("write", path, data, offset, fh))
        return len(data)

    def flush(self, path: str, fh: int) -> None:
        self.calls.append(("flush", path, fh))

    def fsync(self, path: str, datasync: int, fh: int) -> None:
        self.calls.append(("fsync", path, datasync, fh))

    def release(self, path: str, fh: int) -> None:
        self.calls.append(("release", path, fh))



@dataclass
class Rig:
    handles: Handles
    staging: WriteStaging
    recovery: RecoveryStore
    direct: AlgoFileSystem  # another client of the same server ("someone else")
    proxy: FaultProxy
    tree: RecordingTree
    folder: str  # a fresh collection: data/demo/<name>

    def fi(self, flags: int = os.O_RDONLY) -> SimpleNamespace:
        """libfuse's file info as ``open`` sees it."""
        return SimpleNamespace(flags=flags, fh=0, noflush=0, direct_io=0)

    def open(self, name: str, flags: int = os.O_RDONLY) -> tuple[Any, SimpleNamespace]:
        fi = self.fi(flags)
        fi.fh = self.handles.open(f"/{self.folder}/{name}", fi)
        return self.handles.get(fi), fi

    def close(self, fi: SimpleNamespace) -> None:
        """close(): FLUSH, then RELEASE (the id leaves the table first)."""
        self.handles.get(fi).flush()
        handle = self.handles.pop(fi)
        assert handle is not None
        handle.release()

    def put(self, name: str, data: bytes) -> None:
        self.direct.pipe_file(f"{self.folder}/{name}", data)

    def on_server(self, name: str) -> bytes:
        return self.direct.cat_file(f"{self.folder}/{name}")

    def requests(self) -> int:
        return sum(self.proxy.requests.values())


@pytest.fixture
def rig(proxied_demo: ProxiedServer, tmp_path: Path) -> Iterator[Rig]:
    server, proxy = proxied_demo.server, proxied_demo.proxy
    client = DataClient(proxy.url, server.api_key, timeout=5)
    direct = AlgoFileSystem(server.url, server.api_key, skip_instance_cache=True)
    folder = f"data/demo/handles-{uuid.uuid4().hex[:8]}"
    direct.mkdir(folder)
    recovery = RecoveryStore(tmp_path, server.url)
    staging = WriteStaging(tmp_path / "staging" / str(dead_pid()), recovery)
    metadata = MetadataCache()
    blocks = BlockCache(tmp_path / "blocks", 16 << 20, BLOCK, 0)
    content = ContentCache(blocks, client.range_reader, client.read_whole, metadata.listing,
                           small_file_size=SMALL, small_files_memory=4 << 20, prefetch_files=0)
    uploader = Uploader(client, staging, metadata, content)
    resolver = Resolver(client, metadata, content.reading_directory)
    tree = RecordingTree()
    handles = Handles(client, staging, uploader, resolver, Attributes(metadata), content, tree)
    client.capabilities()  # asked once per mount, right after it is mounted
    proxy.fail_ratio = 0.0
    proxy.reset()
    try:
        yield Rig(handles, staging, recovery, direct, proxy, tree, folder)
    finally:
        proxy.fail_ratio = 0.0
        uploader.drain(5.0)
        staging.close()
        content.close()
        client.session.close()
        direct.rm(folder, recursive=True)


def test_ids_name_one_handle_each_and_an_unknown_id_is_ebadf(rig: Rig) -> None:
    first = rig.handles.virtual("/a", 1)
    second = rig.handles.virtual("/b", 2)
    assert first != second and 0 not in (first, second) and len(rig.handles) == 2
    assert rig.handles.get(first).fh == first and rig.handles.get(SimpleNamespace(fh=second)).fh == second
    with pytest.raises(FuseOSError) as unknown:
        rig.handles.get(12345)
    assert unknown.value.errno == errno.EBADF
    assert rig.handles.find(None) is None and rig.handles.pop(12345) is None
    assert rig.handles.pop(first) is not None and rig.handles.find(first) is None
    assert rig.handles.virtual("/c", 3) not in (first, second), "an id is never given twice"


def test_a_read_only_open_reads_the_version_it_saw_and_has_nothing_to_write(rig: Rig) -> None:
    small, large = b"s" * 1000, bytes(range(256)) * (3 * BLOCK // 256)
    rig.put("small.txt", small)
    rig.put("large.bin", large)
    handle, fi = rig.open("small.txt")
    assert isinstance(handle, ReadHandle) and fi.noflush == 1  # no FLUSH round trip for a small file
    path = f"/{rig.folder}/small.txt"
    assert handle.read(path, 10, 990) == small[990:]
    out = bytearray(20)
    assert handle.read_into(path, memoryview(out), 995) == 5 and out[:5] == small[995:]
    with pytest.raises(FuseOSError) as refused:
        handle.write(b"x", 0)
    assert refused.value.errno == errno.EBADF
    assert handle.stat() is None  # fstat answers from the path

    handle, fi = rig.open("large.bin")
    assert isinstance(handle, ReadHandle) and fi.noflush == 0
    path = f"/{rig.folder}/large.bin"
    assert handle.read(path, 100, BLOCK - 50) == large[BLOCK - 50:BLOCK + 50]
    out = bytearray(BLOCK)
    assert handle.read_into(path, memoryview(out), 2 * BLOCK + 10) == BLOCK - 10
    assert bytes(out[:BLOCK - 10]) == large[2 * BLOCK + 10:]
    rig.proxy.reset()
    handle.flush()
    handle.fsync(0)
    handle.release()
    assert rig.requests() == 0, "a read-only handle sends nothing at close"


def test_a_read_handle_follows_a_rename_of_its_file(rig: Rig) -> None:
    rig.put("before.txt", b"contents")
    handle, _fi = rig.open("before.txt")
    rig.direct.mv(f"{rig.folder}/before.txt", f"{rig.folder}/after.txt")
    assert handle.read(f"/{rig.folder}/after.txt", 100, 0) == b"contents"
    assert handle.path == f"{rig.folder}/after.txt" and handle.version.path == handle.path


def test_opens_of_what_is_not_a_readable_file(rig: Rig) -> None:
    rig.direct.mkdir(f"{rig.folder}/sub")
    for name, flags, code in [("missing", os.O_RDONLY, errno.ENOENT), ("missing", os.O_WRONLY, errno.ENOENT),
                              ("sub", os.O_RDONLY, errno.EISDIR), ("sub", os.O_RDWR, errno.EISDIR)]:
        with pytest.raises(OSError) as failure:
            rig.open(name, flags)
        assert failure.value.errno == code, (name, flags)
    assert len(rig.handles) == 0


def test_a_write_open_stages_the_bytes_and_close_uploads_them(rig: Rig) -> None:
    rig.put("notes.txt", b"first line\n")
    handle, _fi = rig.open("notes.txt", os.O_RDWR)
    assert isinstance(handle, StagedHandle)
    path = f"/{rig.folder}/notes.txt"
    assert handle.read(path, 100, 0) == b"first line\n"  # the server's bytes, downloaded at open
    assert handle.write(b"FIRST", 0) == 5
    stat = handle.stat()
    assert stat is not None and stat["st_size"] == 11
    assert rig.on_server("notes.txt") == b"first line\n", "nothing is sent before close"
    handle.flush()
    assert rig.on_server("notes.txt") == b"FIRST line\n"
    rig.proxy.reset()
    handle.release()  # clean: nothing more to send
    assert rig.requests() == 0
    assert rig.staging.get(f"{rig.folder}/notes.txt") is None


def test_an_append_handle_writes_at_the_end_whatever_the_offset(rig: Rig) -> None:
    fi = rig.fi(os.O_WRONLY | os.O_APPEND)
    fi.fh = rig.handles.new_file(f"{rig.folder}/log.txt", append=True)
    handle = rig.handles.get(fi)
    handle.write(b"one\n", 0)
    handle.write(b"two\n", 0)
    handle.fsync(0)
    assert rig.on_server("log.txt") == b"one\ntwo\n"
    rig.close(fi)


def test_an_append_reopen_of_a_copy_this_mount_kept_makes_no_request(rig: Rig) -> None:
    fi = rig.fi(os.O_WRONLY)
    fi.fh = rig.handles.new_file(f"{rig.folder}/train.log", append=False)
    rig.handles.get(fi).write(b"step 1\n", 0)
    rig.close(fi)
    rig.proxy.reset()
    handle, fi = rig.open("train.log", os.O_WRONLY | os.O_APPEND)
    assert isinstance(handle, StagedHandle) and handle.append
    assert rig.requests() == 0, "no HEAD, no download"
    handle.write(b"step 2\n", 0)
    rig.close(fi)
    assert rig.on_server("train.log") == b"step 1\nstep 2\n"


def test_a_read_only_open_while_someone_writes_reads_the_staged_bytes(rig: Rig) -> None:
    writer = rig.fi(os.O_WRONLY)
    writer.fh = rig.handles.new_file(f"{rig.folder}/draft.txt", append=False)
    rig.handles.get(writer).write(b"not uploaded yet", 0)
    reader, _fi = rig.open("draft.txt")
    assert isinstance(reader, StagedHandle)
    assert reader.read(f"/{rig.folder}/draft.txt", 100, 0) == b"not uploaded yet"
    rig.close(writer)


def test_a_failed_upload_fails_close_and_release_still_gives_the_file_back(rig: Rig) -> None:
    fi = rig.fi(os.O_WRONLY)
    fi.fh = rig.handles.new_file(f"{rig.folder}/results.csv", append=False)
    handle = rig.handles.get(fi)
    handle.write(b"epoch,loss\n", 0)
    rig.proxy.fail_ratio = 1.0
    with pytest.raises(OSError) as failure:
        handle.flush()
    assert failure.value.errno == errno.EIO
    rig.handles.pop(fi)
    handle.release()  # tries again, logs the failure: nobody gets release's answer
    assert rig.staging.get(f"{rig.folder}/results.csv") is None
    assert [entry.data_file.read_bytes() for entry in rig.recovery.entries()] == [b"epoch,loss\n"]


def test_truncate_of_an_open_file_stays_local_and_of_a_closed_one_is_uploaded(rig: Rig) -> None:
    rig.put("open.txt", b"0123456789")
    rig.put("closed.txt", b"0123456789")
    handle, fi = rig.open("open.txt", os.O_RDWR)
    rig.proxy.reset()
    rig.handles.truncate(f"{rig.folder}/open.txt", 4)
    assert rig.requests() == 0 and handle.read(f"/{rig.folder}/open.txt", 100, 0) == b"0123"
    rig.close(fi)
    assert rig.on_server("open.txt") == b"0123"
    rig.handles.truncate(f"{rig.folder}/closed.txt", 3)
    assert rig.on_server("closed.txt") == b"012"
    with pytest.raises(OSError) as failure:
        rig.handles.truncate(f"{rig.folder}/missing.txt", 0)
    assert failure.value.errno == errno.ENOENT


def test_a_virtual_handle_hands_every_operation_to_its_tree(rig: Rig) -> None:
    fi = rig.fi(os.O_RDWR)
    fi.fh = rig.handles.open("/algorithms/demo/echo/1.0.0", fi)
    handle = rig.handles.get(fi)
    assert isinstance(handle, VirtualHandle)
    assert handle.read("/algorithms/demo/echo/1.0.0", 3, 1) == b"nsw"
    out = bytearray(10)
    assert handle.read_into("/algorithms/demo/echo/1.0.0", memoryview(out), 0) == 6 and out[:6] == b"answer"
    assert handle.write(b"input", 0) == 5
    handle.flush()
    handle.fsync(1)
    rig.handles.pop(fi)
    handle.release()
    sub = "/demo/echo/1.0.0"
    assert rig.tree.calls == [("open", sub), ("read", sub, 3, 1, 700), ("read", sub, 10, 0, 700),
                              ("write", sub, b"input", 0, 700), ("flush", sub, 700),
                              ("fsync", sub, 1, 700), ("release", sub, 700)]
    assert handle.stat() is None
