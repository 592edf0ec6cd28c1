"""Real FUSE mounts of a real ``algofs serve`` for the mount tests. Every fixture unmounts in finally and
checks that nothing is left in /proc/mounts."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
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


def fuse_available() -> bool:
    return os.path.exists("/dev/fuse") and shutil.which("fusermount3") is not None


@dataclass
class Mounted:
    path: Path  # the mountpoint
    process: MountProcess
    server: EmbeddedServer
    cache_dir: Path

    def status(self) -> dict:
        return control.query(self.path, "status")

    def server_path(self, layout: str) -> Path:
        """Where the server keeps ``data/<user>/…`` on disk (to compare bytes)."""
        return self.server.root / layout


def mount_server(server: EmbeddedServer, base: Path, **options: object) -> MountProcess:
    mountpoint, cache_dir = base / "mnt", base / "cache"
    process = MountProcess(mountpoint, server.url, server.api_key, cache_dir=cache_dir, **options)
    process.start(60)
    return process


@contextlib.contextmanager
def server_and_mount(server: EmbeddedServer, base: Path,
                     **options: object) -> Iterator[tuple[EmbeddedServer, MountProcess]]:
    """A server of the test's own, started and mounted; unmounted (and checked gone) and stopped after."""
    if not fuse_available():
        pytest.skip("needs /dev/fuse and fusermount3")
    server.start()
    process = None
    try:
        process = mount_server(server, base, **options)
        yield server, process
    finally:
        if process is not None:
            process.stop()
            assert not is_mounted(process.mountpoint)
        server.stop()


@pytest.fixture
def new_mount(api_server: EmbeddedServer, tmp_path: Path) -> Iterator[object]:
    """``new_mount(**options)`` mounts the shared server with those options; all unmounted afterwards."""
    if not fuse_available():
        pytest.skip("needs /dev/fuse and fusermount3")
    started: list[MountProcess] = []

    def start(**options: object) -> Path:
        process = mount_server(api_server, tmp_path / f"m{len(started)}", **options)
        started.append(process)
        return Path(process.mountpoint)

    try:
        yield start
    finally:
        for process in started:
            process.stop()
            assert not is_mounted(process.mountpoint), "mount left behind"


@dataclass
class ProxiedServer:
    server: EmbeddedServer
    proxy: FaultProxy  # between the mount's parts and the server: counts requests, injects faults


@pytest.fixture(scope="module")
def proxied_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxiedServer]:
    """A demo server of the module's own behind a fault proxy (the mount's parts tested without FUSE)."""
    with EmbeddedServer(tmp_path_factory.mktemp("proxied-root"), demo=True) as server:
        with FaultProxy(server.url) as proxy:
            yield ProxiedServer(server, proxy)


def dead_pid() -> int:
    """A pid that no process has now (a daemon that crashed)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


@pytest.fixture(scope="session")
def api_server(backend_api_server: EmbeddedServer) -> EmbeddedServer:
    """The demo server, once on local storage and once on S3 (tests/s3_fixtures.py)."""
    return backend_api_server


@pytest.fixture(scope="session")
def mounted(api_server: EmbeddedServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mounted]:
    if not fuse_available():
        pytest.skip("needs /dev/fuse and fusermount3")
    base = tmp_path_factory.mktemp("algofs-mount")
    process = mount_server(api_server, base)
    try:
        yield Mounted(Path(process.mountpoint), process, api_server, base / "cache")
    finally:
        process.stop()
        assert not is_mounted(process.mountpoint), "mount left behind"


@pytest.fixture(scope="session")
def api_fs(api_server: EmbeddedServer) -> AlgoFileSystem:
    return AlgoFileSystem(api_server.url, api_server.api_key, skip_instance_cache=True)


@pytest.fixture
def scratch(mounted: Mounted, api_fs: AlgoFileSystem) -> Iterator[Path]:
    """A fresh collection of user demo, seen through the mount; removed afterwards."""
    name = f"scratch-{uuid.uuid4().hex[:8]}"
    path = mounted.path / "data" / "demo" / name
    path.mkdir()  # through the mount, so its metadata cache knows it at once
    try:
        yield path
    finally:
        api_fs.rm(f"data/demo/{name}", recursive=True)
