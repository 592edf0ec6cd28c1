"""``MountDaemon``: what the daemon sets up around the FUSE operations once the kernel has mounted it."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from algofs_jupyter.fs import AlgoFileSystem
from algofs_jupyter.mount import control
from algofs_jupyter.mount.daemon import READ_AHEAD_KB
from algofs_jupyter.mount.mount_table import entry_at
from algofs_jupyter.server.embedded_server import EmbeddedServer

from .conftest import fuse_available, mount_server

pytestmark = pytest.mark.skipif(not fuse_available(), reason="needs /dev/fuse and fusermount3")


@pytest.fixture
def busy_cpus() -> Iterator[None]:
    """Both cores busy: the daemon's start-up threads then lose the race they used to win when idle."""
    spin = [sys.executable, "-c", "while True: pass"]
    spinners = [subprocess.Popen(spin) for _ in range(os.cpu_count() or 2)]
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root may raise a bdi's read_ahead_kb")
def test_the_raised_kernel_readahead_is_in_force_when_the_mount_is_ready(
        local_api_server: EmbeddedServer, tmp_path: Path, busy_cpus: None) -> None:
    """The kernel's processing of the INIT answer clamps the readahead to 128 KiB: raised before that, it
    was undone, and random reads then came as runs of 128 KiB requests (prefetching whole blocks)."""
    for attempt in range(4):
        process = mount_server(local_api_server, tmp_path / f"m{attempt}")
        try:
            status = control.query(process.mountpoint, "status")
            entry = entry_at(process.mountpoint)
            assert entry is not None
            in_force = int(Path(f"/sys/class/bdi/{entry.device}/read_ahead_kb").read_text())
            assert status["state"] == "mounted"
            assert (status["options"]["read_ahead_kb"], in_force) == (READ_AHEAD_KB, READ_AHEAD_KB), attempt
        finally:
            process.stop()


def test_each_fuse_worker_makes_its_python_thread_state_once(new_mount, api_fs: AlgoFileSystem) -> None:
    """A libfuse worker is a C thread: every callback used to make and delete a Python thread state (a
    ``gettid`` and a 16 KiB ``mmap``/``munmap`` each). Now each worker keeps the one it first made, so
    after 1,600 requests from 4 threads there are no more states than the daemon has threads."""
    name = f"states-{uuid.uuid4().hex[:8]}"
    api_fs.mkdir(f"data/demo/{name}")
    try:
        for index in range(20):
            api_fs.pipe_file(f"data/demo/{name}/f{index}.bin", b"x" * (index + 1))
        mount = new_mount()
        folder = mount / "data" / "demo" / name
        paths = sorted(folder.iterdir())

        def opens(_: int) -> None:
            for _ in range(10):
                for path in paths:
                    with open(path, "rb") as f:  # OPEN, IOCTL, RELEASE; the first pass also READ
                        f.read()

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(opens, range(4)))
        status = control.query(mount, "status")
        threads = len(os.listdir(f"/proc/{status['pid']}/task"))
        assert 1 <= status["fuse"]["thread_states"] <= threads < 100, (status["fuse"], threads)
    finally:
        api_fs.rm(f"data/demo/{name}", recursive=True)
