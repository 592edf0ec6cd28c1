"""Backend failures on a real mount: a server of our own that we kill and restart on the same port."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from algofs_jupyter.mount import control
from algofs_jupyter.mount.mount_process import MountProcess, cleanup_stale, is_mounted
from algofs_jupyter.mount.recovery import RecoveryStore
from algofs_jupyter.server.embedded_server import EmbeddedServer

from .conftest import server_and_mount

pytestmark = pytest.mark.fuse
TIMEOUT = 3.0  # the mount's per-operation budget
BOUND = TIMEOUT + 10  # generous: EIO must come in bounded time, never hang


@pytest.fixture
def restartable(tmp_path: Path, free_port: int) -> Iterator[tuple[EmbeddedServer, MountProcess]]:
    server = EmbeddedServer(tmp_path / "root", port=free_port, demo=True, large_file_mb=64)
    with server_and_mount(server, tmp_path, timeout=TIMEOUT) as pair:
        yield pair


@pytest.fixture
def restartable_over_http(tmp_path: Path, free_port: int) -> Iterator[tuple[EmbeddedServer, MountProcess]]:
    """``restartable`` with every read over HTTP (no descriptors of the server's files)."""
    server = EmbeddedServer(tmp_path / "root", port=free_port, demo=True, large_file_mb=64)
    with server_and_mount(server, tmp_path, timeout=TIMEOUT, no_local_reads=True) as pair:
        yield pair


def kill_server(server: EmbeddedServer) -> None:
    server.process.kill()
    server.process.wait()
    server.stop()  # forget the dead child, so start() runs a new one


def timed_errno(call) -> tuple[int | None, float]:
    start = time.monotonic()
    try:
        call()
    except OSError as exc:
        return exc.errno, time.monotonic() - start
    return None, time.monotonic() - start


def test_server_killed_mid_read_gives_eio_then_recovers(restartable_over_http) -> None:
    server, process = restartable_over_http
    big = Path(process.mountpoint) / "data/demo/large/large.bin"
    with open(big, "rb", buffering=0) as handle:
        assert len(handle.read(1 << 20)) == 1 << 20
        kill_server(server)
        handle.seek(48 << 20)
        code, elapsed = timed_errno(lambda: handle.read(1 << 20))
    assert code == errno.EIO
    assert elapsed < BOUND
    code, elapsed = timed_errno(lambda: os.listdir(Path(process.mountpoint) / "data/demo/nested"))
    assert code == errno.EIO and elapsed < BOUND
    os.statvfs(process.mountpoint)  # never touches the network
    status = control.query(process.mountpoint, "status")
    assert status["backend"]["reachable"] is False and status["backend"]["last_error"]
    server.start()  # same root, same port
    with open(big, "rb") as handle:
        handle.seek(48 << 20)
        assert handle.read(16) == bytes(16)
    assert "nested" in os.listdir(Path(process.mountpoint) / "data/demo")


def test_server_killed_a_file_read_by_descriptor_reads_on_and_the_rest_gets_eio(restartable) -> None:
    """A file the mount reads from the server's own file (local reads) holds its bytes without the server;
    a file not yet read that way, a listing, a new descriptor: EIO in bounded time, as over HTTP."""
    server, process = restartable
    mnt = Path(process.mountpoint)
    big = mnt / "data/demo/large/large.bin"
    with open(big, "rb", buffering=0) as handle:
        first = handle.read(1 << 20)
        assert len(first) == 1 << 20
        assert control.query(process.mountpoint, "status")["cache"]["server_files"]["open"] == 1
        kill_server(server)
        handle.seek(48 << 20)
        assert handle.read(16) == bytes(16)  # what the server had, read without it
    code, elapsed = timed_errno(lambda: os.listdir(mnt / "data/demo/nested"))
    assert code == errno.EIO and elapsed < BOUND
    server.start()
    with open(big, "rb") as handle:
        assert handle.read(1 << 20) == first


def test_server_down_at_close_keeps_bytes_for_recovery(restartable, tmp_path: Path) -> None:
    server, process = restartable
    mnt = Path(process.mountpoint)
    (mnt / "data/demo/work").mkdir()
    payload = os.urandom(3 << 20)
    handle = open(mnt / "data/demo/work/result.bin", "wb")  # closed below, on purpose
    handle.write(payload)
    handle.flush()
    kill_server(server)
    with pytest.raises(OSError) as failed:
        handle.close()
    assert failed.value.errno == errno.EIO
    entries = RecoveryStore(process.cache_dir).entries()
    assert [e.path for e in entries] == ["data/demo/work/result.bin"]
    assert entries[0].data_file.read_bytes() == payload
    server.start()
    listed = subprocess.run([sys.executable, "-m", "algofs_jupyter", "recover", "--cache-dir",
                             str(process.cache_dir), "--json"], capture_output=True, text=True, check=True)
    assert "data/demo/work/result.bin" in listed.stdout
    env = dict(os.environ, ALGORITHMIA_API_KEY=server.api_key)
    subprocess.run([sys.executable, "-m", "algofs_jupyter", "recover", "--upload", "--cache-dir",
                    str(process.cache_dir), "--api-address", server.url], env=env, check=True,
                   capture_output=True, text=True)
    assert (server.root / "data/demo/work/result.bin").read_bytes() == payload
    assert RecoveryStore(process.cache_dir).entries() == []


def test_fsync_reports_a_failed_upload(restartable) -> None:
    server, process = restartable
    mnt = Path(process.mountpoint)
    fd = os.open(mnt / "data/demo/public/fsync.txt", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"data")
        kill_server(server)
        code, _ = timed_errno(lambda: os.fsync(fd))
        assert code == errno.EIO
        server.start()
        os.fsync(fd)  # the file is still dirty: this upload works
    finally:
        os.close(fd)
    assert (server.root / "data/demo/public/fsync.txt").read_bytes() == b"data"


def test_crashed_daemon_leaves_no_stale_mount(restartable) -> None:
    _server, process = restartable
    os.listdir(process.mountpoint)
    process.process.kill()  # SIGKILL: no clean unmount from the daemon itself
    process.process.wait()
    deadline = time.monotonic() + 10
    while is_mounted(process.mountpoint) and time.monotonic() < deadline:
        cleanup_stale(process.mountpoint)
        time.sleep(0.1)
    assert not is_mounted(process.mountpoint)
    os.listdir(process.mountpoint)  # a plain directory again, no ENOTCONN


def test_bytes_of_a_killed_daemon_are_recovered_and_uploaded_files_are_not(restartable) -> None:
    """SIGKILL while a file is written and not yet closed: its bytes reach the recovery folder (via the
    next `algofs recover`); a file closed (uploaded) before the crash leaves nothing behind."""
    server, process = restartable
    mnt = Path(process.mountpoint)
    (mnt / "data/demo/public/done.txt").write_bytes(b"uploaded on close")
    payload = os.urandom((2 << 20) + 123)
    fd = os.open(mnt / "data/demo/public/unsent.bin", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.write(fd, payload)
        process.process.kill()  # the daemon dies before any close()/fsync()
        process.process.wait()
    finally:
        try:
            os.close(fd)  # the mount is gone: ENOTCONN, whatever the kernel says
        except OSError:
            pass
    cleanup_stale(process.mountpoint)
    assert not (server.root / "data/demo/public/unsent.bin").exists()
    listed = subprocess.run([sys.executable, "-m", "algofs_jupyter", "recover", "--cache-dir",
                             str(process.cache_dir), "--json"], capture_output=True, text=True, check=True)
    entries = RecoveryStore(process.cache_dir).entries()
    assert [e.path for e in entries] == ["data/demo/public/unsent.bin"], listed.stdout
    assert entries[0].data_file.read_bytes() == payload
    assert entries[0].api_address == server.url and "stopped before" in entries[0].error
    assert not list((Path(process.cache_dir) / "staging").iterdir())  # salvaged, then removed
    env = dict(os.environ, ALGORITHMIA_API_KEY=server.api_key)
    subprocess.run([sys.executable, "-m", "algofs_jupyter", "recover", "--upload", "--cache-dir",
                    str(process.cache_dir)], env=env, check=True, capture_output=True, text=True)
    assert (server.root / "data/demo/public/unsent.bin").read_bytes() == payload
    assert RecoveryStore(process.cache_dir).entries() == []
