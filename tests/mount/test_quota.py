"""A storage quota seen through a real FUSE mount: writes past it fail with EDQUOT at close()/fsync(), the
bytes are kept for recovery (docs/filesystem.md, "Failures") and uploaded once there is room again."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from algofs_jupyter.mount.mount_process import MountProcess
from algofs_jupyter.mount.recovery import RecoveryStore
from algofs_jupyter.server.embedded_server import EmbeddedServer

from .conftest import server_and_mount

pytestmark = pytest.mark.fuse
KIB = 1 << 10


@pytest.fixture
def quota_mount(tmp_path: Path) -> Iterator[tuple[EmbeddedServer, MountProcess]]:
    """One user with a 1 MiB, 6-file quota, mounted."""
    server = EmbeddedServer(tmp_path / "root", users={"demo": "quota-test-key"}, quota_bytes=1 << 20,
                            quota_files=6)
    with server_and_mount(server, tmp_path) as pair:
        yield pair


def test_writes_past_the_quota_fail_with_edquot_and_the_bytes_are_recoverable(quota_mount, tmp_path) -> None:
    server, process = quota_mount
    work = Path(process.mountpoint) / "data/demo/work"
    work.mkdir()
    (work / "first.bin").write_bytes(os.urandom(600 * KIB))

    # cp: the write()s are staged locally, the upload at close() is refused
    source = tmp_path / "big.bin"
    payload = os.urandom(700 * KIB)
    source.write_bytes(payload)
    copied = subprocess.run(["cp", str(source), str(work / "copied.bin")], capture_output=True, text=True)
    assert copied.returncode != 0 and "Disk quota exceeded" in copied.stderr, copied.stderr

    # write + close, and write + fsync
    handle = open(work / "closed.bin", "wb")
    handle.write(os.urandom(500 * KIB))
    with pytest.raises(OSError) as at_close:
        handle.close()
    assert at_close.value.errno == errno.EDQUOT
    fd = os.open(work / "synced.bin", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.write(fd, os.urandom(500 * KIB))
        with pytest.raises(OSError) as at_fsync:
            os.fsync(fd)
        assert at_fsync.value.errno == errno.EDQUOT
    finally:
        with pytest.raises(OSError):  # close() uploads again, and is refused again
            os.close(fd)

    # none of their bytes is on the server; every one's bytes are in the recovery folder. GNU cp creates its
    # new file with O_EXCL, which the mount makes on the server at once (race-free, the exclusive-create
    # extension): it stays there empty, as on a full local disk
    on_server = server.root / "data/demo/work"
    sizes = {p.name: p.stat().st_size for p in on_server.iterdir()}
    assert sizes == {"first.bin": 600 * KIB, "copied.bin": 0}
    entries = {entry.path: entry for entry in RecoveryStore(process.cache_dir).entries()}
    assert set(entries) == {f"data/demo/work/{name}.bin" for name in ("copied", "closed", "synced")}
    assert entries["data/demo/work/copied.bin"].data_file.read_bytes() == payload
    assert "quota exceeded" in entries["data/demo/work/copied.bin"].error

    # room again (a delete through the mount frees it): the recovered file goes where it was going
    (work / "first.bin").unlink()
    for path in ("data/demo/work/closed.bin", "data/demo/work/synced.bin"):
        RecoveryStore(process.cache_dir).discard(entries[path].id)
    env = dict(os.environ, ALGORITHMIA_API_KEY=server.api_key)
    subprocess.run([sys.executable, "-m", "algofs_jupyter", "recover", "--upload", "--cache-dir",
                    str(process.cache_dir), "--api-address", server.url], env=env, check=True,
                   capture_output=True, text=True)
    assert (on_server / "copied.bin").read_bytes() == payload
    assert RecoveryStore(process.cache_dir).entries() == []


def test_mkdir_and_new_files_past_the_files_quota_fail_with_edquot(quota_mount) -> None:
    _server, process = quota_mount
    work = Path(process.mountpoint) / "data/demo/work"
    work.mkdir()  # 1 of 6
    for number in range(5):
        (work / f"f{number}").write_bytes(b"x")
    with pytest.raises(OSError) as mkdir:
        (work / "sub").mkdir()
    assert mkdir.value.errno == errno.EDQUOT
    with pytest.raises(OSError) as new_file:
        (work / "f5").write_bytes(b"x")
    assert new_file.value.errno == errno.EDQUOT
    (work / "f0").write_bytes(b"a replacement adds no file")
    (work / "f1").unlink()
    (work / "sub").mkdir()
