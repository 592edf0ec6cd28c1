"""Large files read from the server's own file (local reads, mount/server_files.py): on a real mount of a
real server, and the descriptor table's rules (which version, the cap, closing) on real descriptors."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from algofs_jupyter.fs.local_reads import LocalFile
from algofs_jupyter.mount import control
from algofs_jupyter.mount.block_index import FileVersion
from algofs_jupyter.mount.server_files import RETRY_AFTER, ServerFiles

from .conftest import Mounted

pytestmark = pytest.mark.fuse


def cache_status(mountpoint: Path | str) -> dict:
    return control.query(str(mountpoint), "status")["cache"]


def test_a_large_file_is_read_from_the_server_s_own_file(mounted: Mounted, scratch: Path, api_fs,
                                                       new_mount) -> None:
    """Local storage: no byte over HTTP, nothing in the block cache. S3 (no local files): the block cache,
    as before. ``--no-local-reads``: the block cache on local storage too."""
    data = os.urandom(20 << 20)
    layout = f"{scratch.relative_to(mounted.path)}/big.bin"
    api_fs.pipe(layout, data)
    before = control.query(str(mounted.path), "clear_cache")["cache"]  # a remote change: seen after clearing
    assert (scratch / "big.bin").read_bytes() == data
    after = cache_status(mounted.path)
    fetched = after["bytes_fetched"] - before["bytes_fetched"]
    served = after["server_files"]["bytes"] - before["server_files"]["bytes"]
    if "local-reads" in api_fs.client.capabilities().backends.get("data", ()):
        assert (fetched, served) == (0, len(data))
        assert after["server_files"]["opened"] == before["server_files"]["opened"] + 1
    else:
        assert served == 0 and fetched >= len(data)
    over_http = new_mount(no_local_reads=True)
    before = cache_status(over_http)
    assert before["server_files"] is None
    assert (over_http / layout).read_bytes() == data
    assert cache_status(over_http)["bytes_fetched"] - before["bytes_fetched"] >= len(data)


def test_an_open_file_reads_its_version_and_a_reopen_reads_the_new_one(mounted: Mounted, scratch: Path,
                                                                     api_fs) -> None:
    if "local-reads" not in api_fs.client.capabilities().backends.get("data", ()):
        pytest.skip("object storage has no local files")
    layout = f"{scratch.relative_to(mounted.path)}/v.bin"
    first, second = os.urandom(4 << 20), os.urandom(4 << 20)
    api_fs.pipe(layout, first)
    control.query(str(mounted.path), "clear_cache")
    with open(scratch / "v.bin", "rb", buffering=0) as handle:
        assert handle.read(4096) == first[:4096]
        api_fs.pipe(layout, second)  # replaced on the server, same size
        assert handle.read() == first[4096:]  # the version opened, whole: its descriptor holds it
    control.query(str(mounted.path), "clear_cache")  # the mount hears of the change
    assert (scratch / "v.bin").read_bytes() == second


def test_a_file_opened_for_writing_is_filled_from_the_server_s_own_file(mounted: Mounted, scratch: Path,
                                                                        api_fs, new_mount) -> None:
    """A write-open that keeps the bytes (``r+b``, ``ab``) gets them copied from the server's own file, not
    downloaded; what lands on the server is the old bytes with the change. ``--no-local-reads``: the GET
    as before, the same result."""
    if "local-reads" not in api_fs.client.capabilities().backends.get("data", ()):
        pytest.skip("object storage has no local files")
    data = os.urandom(8 << 20)
    folder = scratch.relative_to(mounted.path)
    for name in ("patched.bin", "appended.bin", "http.bin"):
        api_fs.pipe(f"{folder}/{name}", data)
    before = control.query(str(mounted.path), "clear_cache")["cache"]["server_files"]
    with open(scratch / "patched.bin", "r+b") as handle:
        handle.seek(1000)
        handle.write(b"patch")
    with open(scratch / "appended.bin", "ab") as handle:
        handle.write(b"tail")
    after = cache_status(mounted.path)["server_files"]
    assert api_fs.cat_file(f"{folder}/patched.bin") == data[:1000] + b"patch" + data[1005:]
    assert api_fs.cat_file(f"{folder}/appended.bin") == data + b"tail"
    assert after["copies"] - before["copies"] == 2
    assert after["copied_bytes"] - before["copied_bytes"] == 2 * len(data)
    over_http = new_mount(no_local_reads=True)
    with open(over_http / folder / "http.bin", "r+b") as handle:
        handle.write(b"head")
    assert cache_status(over_http)["server_files"] is None
    assert api_fs.cat_file(f"{folder}/http.bin") == b"head" + data[4:]


# -- the descriptor table, with real files standing in for the server's ------------------------------

class Files:
    """An opener over real files in a folder: path -> LocalFile of that file (its own descriptor)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.asked: list[str] = []
        self.fail: type[BaseException] | None = None
        self.etag = "e1"

    def __call__(self, path: str) -> LocalFile | None:
        self.asked.append(path)
        if self.fail is not None:
            raise self.fail("no socket")
        file = self.folder / path
        if not file.exists():
            return None
        return LocalFile(os.open(file, os.O_RDONLY), file.stat().st_size, self.etag, 0.0)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def read(files: ServerFiles, version: FileVersion, etag: str = "e1", offset: int = 0, size: int = 100):
    out = bytearray(size)
    got = files.read_into(version, etag, offset, memoryview(out))
    return None if got is None else bytes(out[:got])


def test_only_the_version_asked_for_is_read_and_each_is_asked_once(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"a" * 50)
    opener = Files(tmp_path)
    files = ServerFiles(opener)
    fds = open_fds()
    assert read(files, FileVersion("a", 50, "e1")) == b"a" * 50  # short at the version's end
    assert read(files, FileVersion("a", 50, "e1"), offset=40) == b"a" * 10
    assert read(files, FileVersion("a", 50, "e2"), etag="e2") is None  # the server has another version
    assert read(files, FileVersion("a", 49, "listed:x"), etag="") is None  # another size
    assert read(files, FileVersion("a", 50, "listed:y"), etag="") == b"a" * 50  # no ETag: by size
    assert read(files, FileVersion("missing", 10, "e1")) is None
    assert read(files, FileVersion("a", 50, "e2"), etag="e2") is None
    assert opener.asked == ["a", "a", "a", "a", "missing"]  # a "no" is remembered too
    assert open_fds() == fds + 2  # the two versions the server's file is; the others were closed
    stats = files.stats()
    assert (stats["open"], stats["not_offered"], stats["reads"]) == (2, 3, 3)
    files.invalidate("a")
    assert open_fds() == fds
    assert read(files, FileVersion("a", 50, "e1")) == b"a" * 50  # asked again after the change
    files.close()
    assert open_fds() == fds


def test_at_most_max_open_versions_are_kept_and_their_descriptors_closed(tmp_path: Path) -> None:
    for n in range(20):
        (tmp_path / str(n)).write_bytes(b"x" * 10)
    files = ServerFiles(Files(tmp_path), max_open=5)
    fds = open_fds()
    for n in range(20):
        assert read(files, FileVersion(str(n), 10, "e1")) == b"x" * 10
        assert open_fds() <= fds + 5
    assert files.stats()["open"] == 5
    files.close()
    assert open_fds() == fds


def test_a_descriptor_dropped_under_a_read_is_closed_after_it(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"a" * 10)
    (tmp_path / "b").write_bytes(b"b" * 10)
    files = ServerFiles(Files(tmp_path), max_open=1)
    version = FileVersion("a", 10, "e1")
    entry = files._acquire(version, "e1")  # a read in progress on a's descriptor
    assert entry is not None
    assert read(files, FileVersion("b", 10, "e1")) == b"b" * 10  # pushes a out of the table
    assert os.pread(entry.fd, 10, 0) == b"a" * 10  # still open: its read is not over
    files._release(entry)
    with pytest.raises(OSError):
        os.fstat(entry.fd)  # closed by its last user
    files.close()


def test_a_socket_that_cannot_be_reached_is_not_asked_again_for_a_while(tmp_path: Path,
                                                                        monkeypatch) -> None:
    (tmp_path / "a").write_bytes(b"a" * 10)
    opener = Files(tmp_path)
    opener.fail = ConnectionRefusedError
    files = ServerFiles(opener)
    assert read(files, FileVersion("a", 10, "e1")) is None
    assert read(files, FileVersion("a", 10, "e1")) is None
    assert opener.asked == ["a"]
    opener.fail = None
    import algofs_jupyter.mount.server_files as module

    now = module.time.monotonic()
    monkeypatch.setattr(module.time, "monotonic", lambda: now + RETRY_AFTER + 1)
    assert read(files, FileVersion("a", 10, "e1")) == b"a" * 10
    files.close()


def test_readers_of_one_version_from_many_threads_share_one_descriptor(tmp_path: Path) -> None:
    data = os.urandom(1 << 20)
    (tmp_path / "a").write_bytes(data)
    files = ServerFiles(Files(tmp_path))
    version = FileVersion("a", len(data), "e1")
    fds = open_fds()
    errors: list[BaseException] = []

    def reader(seed: int) -> None:
        try:
            for n in range(200):
                offset = (seed * 7919 + n * 4099) % len(data)
                assert read(files, version, offset=offset, size=4096) == data[offset:offset + 4096]
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert open_fds() == fds + 1 and files.stats()["opened"] == 1
    files.close()
