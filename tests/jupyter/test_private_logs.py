"""Issue 22: what the Jupyter extension makes for itself is private whatever the umask: the embedded demo
server's root, its state directory and log, the mount's cache directory and log. The extension's own
layers (``ApiProvider`` starting the embedded ``algofs serve``, ``MountManager`` mounting it) with real
processes, under umask 022, in a Jupyter data directory and a cache home that do not exist yet."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from file_modes import mode

from algofs_jupyter.jupyter.api_provider import ApiProvider
from algofs_jupyter.jupyter.mount_manager import MountManager

pytestmark = pytest.mark.fuse


def test_the_extensions_servers_and_mounts_logs_and_directories_are_private(
        no_stale_mounts: Path, requires_fuse: None, umask_022: None, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jupyter-data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache-home"))
    provider = ApiProvider(allow_embedded=True)
    manager = MountManager(provider, tmp_path / "root")
    try:
        assert manager.mount()["mounted"], manager.status()
        assert os.listdir(manager.mountpoint / "data" / "demo")
        server = provider._server
        assert server is not None
        data = tmp_path / "jupyter-data"
        for directory in (data, data / "algofs", server.root, server.log_path.parent,
                          tmp_path / "cache-home", manager.cache_dir().parent, manager.cache_dir()):
            assert mode(directory) == 0o700, directory
        mount_logs = list(manager.cache_dir().glob("mount-*.log"))
        assert len(mount_logs) == 1 and mount_logs[0].stat().st_size > 0
        for log in (server.log_path, *mount_logs):
            assert mode(log) == 0o600, log
    finally:
        manager.close()
        provider.close()
