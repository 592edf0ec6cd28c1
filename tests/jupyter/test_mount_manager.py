"""MountManager alone: an unmount from outside is respected, crashes are repaired, close leaves nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from waiting import wait_until

from algofs_jupyter.jupyter.api_provider import ApiProvider
from algofs_jupyter.jupyter.mount_manager import MountManager

pytestmark = pytest.mark.fuse


@pytest.fixture
def manager(no_stale_mounts, requires_fuse, api_server, tmp_path):
    provider = ApiProvider(api_address=api_server.url, api_key=api_server.api_key,
                           username=api_server.username)
    manager = MountManager(provider, tmp_path / "root", cache_dir=tmp_path / "cache", backoff_base=0.1)
    manager.poll_interval = 0.1
    try:
        yield manager
    finally:
        manager.close()


def test_unmount_from_outside_is_not_undone(manager):
    assert manager.mount()["mounted"]
    pid = manager.child_pid
    subprocess.run([sys.executable, "-m", "algofs_jupyter", "unmount", str(manager.mountpoint)], check=True)
    assert wait_until(lambda: manager._process is None, 30.0), "timed out"
    time.sleep(0.5)  # several supervisor rounds
    status = manager.status()
    assert status["mode"] == "unmounted" and not status["mounted"]
    assert manager.restarts == 0 and manager.child_pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_repeated_crashes_are_repaired(manager):
    assert manager.mount()["mounted"]
    for round_number in (1, 2):
        pid = manager.child_pid
        os.kill(pid, signal.SIGKILL)
        assert wait_until(lambda pid=pid: manager.mounted and manager.child_pid not in (None, pid), 30.0)
        assert manager.restarts == round_number
    assert os.listdir(manager.mountpoint / "data" / "demo")
    manager.close()
    assert not os.path.ismount(manager.mountpoint)
