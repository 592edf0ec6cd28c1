"""Writes every tool makes (issue 12), on real mounts behind a counting/fault-injecting proxy.

The proxy (tests/fault_proxy.py) counts the request bytes that reach ``algofs serve``, so "an append
sends only the new bytes" is measured outside the code under test.
"""

from __future__ import annotations

import errno
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fault_proxy import FaultProxy

from algofs_jupyter.fs import AlgoFileSystem
from algofs_jupyter.mount import control
from algofs_jupyter.mount.mount_process import MountProcess, is_mounted
from algofs_jupyter.server.embedded_server import EmbeddedServer

from .conftest import fuse_available

pytestmark = pytest.mark.fuse
KIB = 1 << 10


@dataclass
class Proxied:
    path: Path
    proxy: FaultProxy
    server: EmbeddedServer
    process: MountProcess

    def server_path(self, local: Path) -> Path:
        return self.server.root / local.relative_to(self.path)

    def status(self) -> dict:
        return control.query(self.path, "status")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    with EmbeddedServer(tmp_path_factory.mktemp("writes-root"), demo=True) as running:
        yield running


def _mount(server: EmbeddedServer, base: Path, mount_options: dict | None = None,
           **proxy_options: object) -> Iterator[Proxied]:
    if not fuse_available():
        pytest.skip("needs /dev/fuse and fusermount3")
    proxy = FaultProxy(server.url, **proxy_options).start()  # type: ignore[arg-type]
    # a mountpoint no shorter than the server's root: a 4095-byte path in the mount fits on its disk
    process = MountProcess(base / "mountpoint", proxy.url, server.api_key, cache_dir=base / "cache",
                           **(mount_options or {}))
    try:
        process.start(60)
        yield Proxied(Path(process.mountpoint), proxy, server, process)
    finally:
        process.stop()
        proxy.stop()
        assert not is_mounted(process.mountpoint), "mount left behind"


@pytest.fixture(scope="module")
def mnt(server: EmbeddedServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxied]:
    yield from _mount(server, tmp_path_factory.mktemp("writes"))


@pytest.fixture(scope="module")
def plain_mnt(server: EmbeddedServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxied]:
    """A mount of a server without the extensions (the proxy hides /v1/algofs/*)."""
    yield from _mount(server, tmp_path_factory.mktemp("plain"), hide_extensions=True)


def _collection(root: Path) -> Iterator[Path]:
    path = root / "data" / "demo" / f"w-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    yield path


@pytest.fixture
def scratch(mnt: Proxied, server: EmbeddedServer) -> Iterator[Path]:
    yield from _collection(mnt.path)


@pytest.fixture
def plain_scratch(plain_mnt: Proxied) -> Iterator[Path]:
    yield from _collection(plain_mnt.path)


def test_append_loop_sends_only_the_new_bytes(mnt: Proxied, scratch: Path) -> None:
    log = scratch / "log.bin"
    log.write_bytes(b"")
    mnt.proxy.reset()
    chunks = [bytes([index]) * (64 * KIB) for index in range(64)]
    for chunk in chunks:
        with open(log, "ab") as handle:
            handle.write(chunk)
    expected = b"".join(chunks)
    assert mnt.server_path(log).read_bytes() == expected
    sent = mnt.proxy.body_bytes["PUT"]
    assert sent <= 1.2 * len(expected), f"{sent} bytes sent for a {len(expected)}-byte file"
    assert mnt.proxy.requests["GET"] == 0, "a reopen downloaded the file again"
    assert log.read_bytes() == expected


def test_append_after_a_change_elsewhere_appends_to_the_new_version(mnt: Proxied, scratch: Path,
                                                                     server: EmbeddedServer) -> None:
    target = scratch / "shared.txt"
    target.write_bytes(b"mine\n")
    other = AlgoFileSystem(server.url, server.api_key, skip_instance_cache=True)
    with open(target, "ab") as handle:  # reopened from the kept copy, without asking the server
        handle.write(b"more\n")
        other.pipe(str(target.relative_to(mnt.path)), b"someone else wrote this\n")
    # the precondition failed; O_APPEND means "at the end of the file as it is": appended to theirs
    assert mnt.server_path(target).read_bytes() == b"someone else wrote this\nmore\n"
    assert target.read_bytes() == b"someone else wrote this\nmore\n"


def test_a_handle_that_appended_to_a_newer_version_sees_it_and_appends_after_it(
        mnt: Proxied, scratch: Path, server: EmbeddedServer) -> None:
    """After fsync rebased the append onto another writer's version, the still-open handle's file is
    that version: a reader sees it (not the mount's stale copy) and the next append lands after it."""
    target = scratch / "rebased.txt"
    target.write_bytes(b"mine\n")
    other = AlgoFileSystem(server.url, server.api_key, skip_instance_cache=True)
    with open(target, "ab") as handle:
        handle.write(b"more\n")
        other.pipe(str(target.relative_to(mnt.path)), b"someone else wrote this\n")
        handle.flush()
        os.fsync(handle.fileno())
        assert target.read_bytes() == b"someone else wrote this\nmore\n"
        assert target.stat().st_size == len(b"someone else wrote this\nmore\n")
        handle.write(b"again\n")
    expected = b"someone else wrote this\nmore\nagain\n"
    assert mnt.server_path(target).read_bytes() == expected
    assert target.read_bytes() == expected


def test_edit_after_a_change_elsewhere_never_mixes_versions(mnt: Proxied, scratch: Path,
                                                           server: EmbeddedServer) -> None:
    target = scratch / "edited.txt"
    target.write_bytes(b"mine\n")
    other = AlgoFileSystem(server.url, server.api_key, skip_instance_cache=True)
    with open(target, "r+b") as handle:
        handle.seek(0, os.SEEK_END)
        handle.write(b"more\n")
        other.pipe(str(target.relative_to(mnt.path)), b"someone else wrote this\n")
    # the precondition failed: the whole file went up (last writer wins), never a mix of both versions
    assert mnt.server_path(target).read_bytes() == b"mine\nmore\n"


def test_in_place_overwrite_and_truncate_send_the_tail(mnt: Proxied, scratch: Path) -> None:
    target = scratch / "edit.bin"
    target.write_bytes(b"a" * (256 * KIB))
    mnt.proxy.reset()
    with open(target, "r+b") as handle:
        handle.seek(200 * KIB)
        handle.write(b"b" * KIB)
        handle.truncate(220 * KIB)
    expected = b"a" * (200 * KIB) + b"b" * KIB + b"a" * (19 * KIB)
    assert mnt.server_path(target).read_bytes() == expected
    assert mnt.proxy.body_bytes["PUT"] <= 20 * KIB


def test_appends_without_extensions_stay_correct(plain_mnt: Proxied, plain_scratch: Path) -> None:
    log = plain_scratch / "log.txt"
    for index in range(5):
        with open(log, "a") as handle:
            handle.write(f"line {index}\n")
    assert plain_mnt.server_path(log).read_text() == "".join(f"line {i}\n" for i in range(5))
    assert plain_mnt.proxy.requests["POST"] == 1, "only the mkdir: no extension call got through"


def test_directory_rename_is_one_server_side_move(mnt: Proxied, scratch: Path) -> None:
    tree = {"a.txt": b"A", "sub/b.txt": b"B" * 5000, "sub/deeper/c.txt": b"C"}
    for name, data in tree.items():
        (scratch / "d" / name).parent.mkdir(parents=True, exist_ok=True)
        (scratch / "d" / name).write_bytes(data)
    mnt.proxy.reset()
    os.rename(scratch / "d", scratch / "e")
    assert mnt.proxy.requests["PUT"] == 0 and mnt.proxy.requests["DELETE"] == 0
    assert ("POST", "/v1/algofs/move") in mnt.proxy.paths
    assert not (scratch / "d").exists()
    for name, data in tree.items():
        assert (scratch / "e" / name).read_bytes() == data
        assert (mnt.server_path(scratch) / "e" / name).read_bytes() == data
    (scratch / "empty").mkdir()
    os.rename(scratch / "e", scratch / "empty")  # onto an empty directory: replaced, as rename(2)
    assert (scratch / "empty" / "sub" / "b.txt").read_bytes() == tree["sub/b.txt"]


def test_file_rename_moves_no_bytes_through_the_client(mnt: Proxied, scratch: Path) -> None:
    big = scratch / "big.bin"
    big.write_bytes(os.urandom(4 << 20))
    mnt.proxy.reset()
    os.rename(big, scratch / "renamed.bin")
    assert mnt.proxy.body_bytes["PUT"] == 0 and mnt.proxy.requests["GET"] == 0
    assert (mnt.server_path(scratch) / "renamed.bin").stat().st_size == 4 << 20
    assert sorted(os.listdir(scratch)) == ["renamed.bin"]


def test_directory_rename_without_extensions_is_exdev(plain_mnt: Proxied, plain_scratch: Path) -> None:
    (plain_scratch / "d").mkdir()
    (plain_scratch / "d" / "x").write_text("x")
    with pytest.raises(OSError) as refused:
        os.rename(plain_scratch / "d", plain_scratch / "e")
    assert refused.value.errno == errno.EXDEV
    os.rename(plain_scratch / "d" / "x", plain_scratch / "y")  # files still work: copy + delete
    assert (plain_scratch / "y").read_text() == "x"


def run(*command: str) -> str:
    return subprocess.run(command, check=True, capture_output=True, text=True, timeout=120).stdout


def test_rsync_a_twice_sends_no_file_the_second_time(mnt: Proxied, scratch: Path, tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for index in range(20):
        (source / f"f{index:02d}.txt").write_text(f"file {index}\n" * (index + 1))
    (source / "sub").mkdir()
    (source / "sub" / "inner.txt").write_text("inner")
    run("rsync", "-a", f"{source}/", f"{scratch}/copy/")
    mnt.proxy.reset()
    second = run("rsync", "-a", "--stats", "--itemize-changes", f"{source}/", f"{scratch}/copy/")
    assert "Number of regular files transferred: 0" in second, second
    assert mnt.proxy.body_bytes["PUT"] == 0
    assert (scratch / "copy" / "sub" / "inner.txt").read_text() == "inner"


def test_cp_p_and_touch_d_keep_times(mnt: Proxied, scratch: Path, tmp_path: Path) -> None:
    source = tmp_path / "dated.txt"
    source.write_text("old news")
    os.utime(source, (1_000_000_000, 1_000_000_000))
    run("cp", "-p", str(source), str(scratch / "dated.txt"))
    assert os.stat(scratch / "dated.txt").st_mtime == 1_000_000_000
    run("touch", "-d", "2001-02-03 04:05:06 UTC", str(scratch / "dated.txt"))
    expected = 981173106
    assert os.stat(scratch / "dated.txt").st_mtime == expected
    control.query(mnt.path, "clear_cache")  # what the server stored, not what the mount remembers
    assert os.stat(scratch / "dated.txt").st_mtime == expected
    os.utime(scratch, (1_100_000_000, 1_100_000_000))  # directories too
    control.query(mnt.path, "clear_cache")
    assert os.stat(scratch).st_mtime == 1_100_000_000
    os.utime(scratch / "dated.txt", (0, 0))  # the epoch is a time (`touch -d @0`, reproducible builds)
    assert os.stat(scratch / "dated.txt").st_mtime == 0  # it showed the mount's start time
    control.query(mnt.path, "clear_cache")
    assert os.stat(scratch / "dated.txt").st_mtime == 0


def test_names_over_255_bytes_are_enametoolong(mnt: Proxied, scratch: Path) -> None:
    long_name = "n" * 256
    calls = [lambda: open(scratch / long_name, "w"), lambda: os.mkdir(scratch / long_name),
             lambda: os.stat(scratch / long_name), lambda: os.rename(scratch / "ok.txt", scratch / long_name),
             lambda: os.stat(scratch / ("ü" * 128))]  # 256 bytes in UTF-8
    (scratch / "ok.txt").write_text("ok")
    for call in calls:
        with pytest.raises(OSError) as refused:
            call()
        assert refused.value.errno == errno.ENAMETOOLONG
    (scratch / ("m" * 255)).write_text("fits")
    assert (scratch / ("m" * 255)).read_text() == "fits"
    assert mnt.status()["uploads"]["recovery"] == 0


def test_a_4095_byte_path_works(mnt: Proxied, scratch: Path) -> None:
    assert len(os.fsencode(mnt.server.root)) <= len(os.fsencode(mnt.path))
    path = scratch
    while len(os.fsencode(path)) < 4095 - 250:
        path = path / ("d" * min(200, 4095 - 250 - len(os.fsencode(path))))
        path.mkdir()
    target = path / ("f" * (4095 - len(os.fsencode(path)) - 1))
    assert len(os.fsencode(target)) == 4095
    target.write_bytes(b"deep")
    assert target.read_bytes() == b"deep"
    assert mnt.server_path(target).read_bytes() == b"deep"


def test_parent_directory_times_and_links_move(mnt: Proxied, scratch: Path) -> None:
    created = os.stat(scratch)
    assert abs(created.st_mtime - time.time()) < 60, "a new directory carries its creation time"
    marks = [created.st_mtime]

    def changed() -> None:
        now = os.stat(scratch).st_mtime
        assert now > marks[-1]
        marks.append(now)

    for step in (lambda: (scratch / "f").write_text("f"), lambda: os.mkdir(scratch / "sub"),
                 lambda: os.rename(scratch / "f", scratch / "g"), lambda: os.unlink(scratch / "g"),
                 lambda: os.rmdir(scratch / "sub")):
        time.sleep(0.01)
        step()
        changed()
    os.mkdir(scratch / "s1")
    os.mkdir(scratch / "s2")
    os.listdir(scratch)
    assert os.stat(scratch).st_nlink == 4


def test_ten_percent_503_every_copy_succeeds(server: EmbeddedServer, tmp_path: Path) -> None:
    """120 ``cp`` into a mount whose API answers 10% of requests 503: all succeed, nothing is lost."""
    sources = []
    for index in range(120):
        source = tmp_path / f"src-{index:03d}.bin"
        source.write_bytes(os.urandom(1000 + index))
        sources.append(source)
    for mounted in _mount(server, tmp_path / "faulty", fail_ratio=0.1):
        target = mounted.path / "data" / "demo" / f"faults-{uuid.uuid4().hex[:8]}"
        target.mkdir()
        (target / "sub").mkdir()
        failures = [s.name for s in sources
                    if subprocess.run(["cp", str(s), str(target / "sub" / s.name)]).returncode != 0]
        os.rename(target / "sub", target / "moved")
        os.unlink(target / "moved" / sources[0].name)
        injected = mounted.proxy.injected
        assert not failures, f"{len(failures)} of 120 cp failed"
        for source in sources[1:]:
            assert (mounted.server_path(target) / "moved" / source.name).read_bytes() == source.read_bytes()
        assert mounted.status()["uploads"]["recovery"] == 0
        assert injected >= 10, "the injector did not inject"
