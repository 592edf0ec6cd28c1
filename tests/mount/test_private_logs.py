"""Issue 22, finding 9: the mount's log records failing paths and algorithm errors that echo input, so it
is 0600 whatever the umask, and the directories the mount makes for itself are 0700. Real mounts of a real
``algofs serve`` under umask 022."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from file_modes import mode

from algofs_jupyter.mount.mount_process import MountProcess, fusermount, is_mounted
from algofs_jupyter.server.embedded_server import EmbeddedServer

from .conftest import fuse_available

pytestmark = [pytest.mark.fuse, pytest.mark.skipif(not fuse_available(), reason="needs /dev/fuse")]


def test_the_mount_log_and_cache_directory_are_private(umask_022: None, local_api_server: EmbeddedServer,
                                                       tmp_path: Path) -> None:
    cache = tmp_path / "home" / ".cache" / "algofs"  # no level exists yet
    process = MountProcess(tmp_path / "mnt", str(local_api_server.url), local_api_server.api_key,
                           cache_dir=cache)
    with process:
        assert os.listdir(tmp_path / "mnt" / "data")
        assert process.log_path.parent == cache and process.log_path.stat().st_size > 0
        assert mode(process.log_path) == 0o600
        for level in (tmp_path / "home", tmp_path / "home" / ".cache", cache, cache / "staging",
                      *cache.glob("staging/*"), *cache.glob("blocks*")):
            assert mode(level) == 0o700, level
    assert not is_mounted(tmp_path / "mnt")


def test_algofs_mount_log_file_is_private_also_when_it_existed(umask_022: None, tmp_path: Path,
                                                               local_api_server: EmbeddedServer) -> None:
    log = tmp_path / "logs" / "mount.log"
    log.parent.mkdir()
    log.write_text("an older run's lines\n")
    os.chmod(log, 0o644)
    env = {k: v for k, v in os.environ.items() if k != "ALGORITHMIA_API_KEY"}
    env["ALGORITHMIA_API_KEY"] = local_api_server.api_key
    mountpoint = tmp_path / "mnt"
    try:
        done = subprocess.run([sys.executable, "-m", "algofs_jupyter", "mount", str(mountpoint),
                               "--api-address", str(local_api_server.url), "--cache-dir", str(tmp_path / "c"),
                               "--log-file", str(log)], env=env, capture_output=True, text=True, timeout=90)
        assert done.returncode == 0, done.stderr
        assert mode(log) == 0o600
        assert log.read_text().startswith("an older run's lines\n")  # appended to, not replaced
        assert mode(log.parent) == 0o755, "a directory the user made is not ours to chmod"
    finally:
        if is_mounted(mountpoint):
            fusermount(mountpoint)
