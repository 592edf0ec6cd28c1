"""``algofs mount --read-only``: a data loader's mount (docs/filesystem.md, "Read-only mounts").

The requests the kernel sends are counted from libfuse's own debug log (``--debug``: one ``opcode: NAME``
line per request the daemon receives), so a request answered in C by libfuse counts as well as one that
reaches the Python code.
"""

from __future__ import annotations

import collections
import errno
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from algofs_jupyter.fs import AlgoFileSystem
from algofs_jupyter.server.embedded_server import EmbeddedServer

from .conftest import fuse_available

FILES = 40


@pytest.fixture
def collection(api_server: EmbeddedServer, api_fs: AlgoFileSystem) -> Iterator[tuple[str, dict[str, bytes]]]:
    """A fresh collection of small files (and one 3 MiB file), written through the API."""
    name = f"ro-{uuid.uuid4().hex[:8]}"
    files = {f"f{i:03d}.bin": os.urandom(4096 + i) for i in range(FILES)}
    api_fs.mkdir(f"data/demo/{name}")
    for file_name, data in files.items():
        api_fs.pipe_file(f"data/demo/{name}/{file_name}", data)
    try:
        yield name, files
    finally:
        api_fs.rm(f"data/demo/{name}", recursive=True)


def requests_in(log: Path, start: int) -> collections.Counter[str]:
    text = log.read_bytes()[start:].decode(errors="replace")
    return collections.Counter(re.findall(r"opcode: (\w+)", text))


def read_all(folder: Path, names: list[str]) -> dict[str, bytes]:
    out = {}
    for name in names:
        with open(folder / name, "rb") as f:  # as a loader does: default buffering (Python asks isatty)
            out[name] = f.read()
    return out


def test_a_warm_pass_asks_the_daemon_nothing_but_the_ioctl_libfuse_answers(
        new_mount, collection: tuple[str, dict[str, bytes]]) -> None:
    name, files = collection
    mount = new_mount(read_only=True, debug=True)
    log = next((mount.parent / "cache").glob("mount-*.log"))
    folder = mount / "data" / "demo" / name
    names = sorted(files)
    assert read_all(folder, names) == files  # cold: OPEN once (ENOSYS), then READs without a handle
    cold = requests_in(log, 0)
    assert cold["READ"] >= FILES and cold["OPEN"] == 1 and cold["RELEASE"] == 0
    start = log.stat().st_size
    for _ in range(2):  # the first warm pass is warm too
        assert read_all(folder, names) == files
    warm = requests_in(log, start)
    assert set(warm) <= {"IOCTL"}, warm  # no OPEN, READ, FLUSH, RELEASE, GETATTR or LOOKUP
    assert warm["IOCTL"] == 2 * FILES  # Python 3.11's isatty() per open(); answered by libfuse in C
    start = log.stat().st_size
    for file_name in names:
        with open(folder / file_name, "rb", buffering=0) as f:  # no isatty: nothing at all
            assert f.read() == files[file_name]
    assert requests_in(log, start) == collections.Counter()


def test_a_default_mount_asks_at_every_open(new_mount, collection: tuple[str, dict[str, bytes]]) -> None:
    """What --read-only removes (the same count on a default mount: OPEN and RELEASE per warm open)."""
    name, files = collection
    mount = new_mount(debug=True)
    log = next((mount.parent / "cache").glob("mount-*.log"))
    folder = mount / "data" / "demo" / name
    read_all(folder, sorted(files))
    read_all(folder, sorted(files))
    start = log.stat().st_size
    assert read_all(folder, sorted(files)) == files
    warm = requests_in(log, start)
    assert warm["OPEN"] == FILES
    assert abs(warm["RELEASE"] - FILES) <= 1  # RELEASE is asynchronous: one may land in the next count


def test_writes_are_refused_and_algorithms_are_absent(new_mount,
                                                      collection: tuple[str, dict[str, bytes]]) -> None:
    name, files = collection
    mount = new_mount(read_only=True)
    folder = mount / "data" / "demo" / name
    first = folder / sorted(files)[0]
    attempts = [lambda: open(first, "r+b"), lambda: open(folder / "new.bin", "xb"),
                lambda: (folder / "dir").mkdir(), first.unlink, lambda: first.rename(folder / "moved"),
                lambda: os.chmod(first, 0o600), lambda: os.utime(first, (1, 1))]
    for attempt in attempts:
        with pytest.raises(OSError) as refused:
            attempt()
        assert refused.value.errno == errno.EROFS
    assert first.read_bytes() == files[first.name]
    assert "data" in os.listdir(mount) and "algorithms" not in os.listdir(mount)
    with pytest.raises(FileNotFoundError):
        os.stat(mount / "algorithms")


def test_large_files_and_random_reads_without_a_handle(new_mount, api_fs: AlgoFileSystem,
                                                       collection: tuple[str, dict[str, bytes]]) -> None:
    name, _ = collection
    big = os.urandom(3 << 20)
    api_fs.pipe_file(f"data/demo/{name}/big.bin", big)
    mount = new_mount(read_only=True, small_file_size=64 << 10, block_size=1 << 20)
    path = mount / "data" / "demo" / name / "big.bin"
    fd = os.open(path, os.O_RDONLY)
    try:
        for offset in (2_500_000, 17, 1 << 20, (3 << 20) - 5):
            assert os.pread(fd, 4096, offset) == big[offset:offset + 4096]
    finally:
        os.close(fd)
    assert path.read_bytes() == big
    with pytest.raises(FileNotFoundError):
        (path.parent / "missing.bin").read_bytes()


def test_a_file_changed_on_the_server_is_read_anew_after_the_ttl(
        new_mount, api_fs: AlgoFileSystem, collection: tuple[str, dict[str, bytes]]) -> None:
    """The kernel keeps pages across opens; a changed mtime in a fresh GETATTR drops them (same size here,
    so only the mtime can tell)."""
    name, files = collection
    mount = new_mount(read_only=True, metadata_ttl=1.0)
    file_name = sorted(files)[3]
    path = mount / "data" / "demo" / name / file_name
    assert path.read_bytes() == files[file_name]
    time.sleep(1.1)  # a new second: the server's mtime differs even at 1 s resolution
    changed = os.urandom(len(files[file_name]))
    api_fs.pipe_file(f"data/demo/{name}/{file_name}", changed)
    deadline = time.monotonic() + 10
    while path.read_bytes() != changed:
        assert time.monotonic() < deadline, "the old bytes were still served 10 s after the change"
        time.sleep(0.2)


def test_strict_consistency_is_refused_with_a_reason(tmp_path: Path, api_server: EmbeddedServer) -> None:
    if not fuse_available():
        pytest.skip("needs /dev/fuse and fusermount3")
    (tmp_path / "mnt").mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "algofs_jupyter", "mount", str(tmp_path / "mnt"), "--api-address",
         api_server.url, "--read-only", "--consistency", "strict", "--cache-dir", str(tmp_path / "c")],
        env={**os.environ, "ALGORITHMIA_API_KEY": api_server.api_key}, capture_output=True, text=True,
        timeout=60)
    assert done.returncode == 2
    assert "--read-only" in done.stderr and "strict" in done.stderr
    assert not os.path.ismount(tmp_path / "mnt")
