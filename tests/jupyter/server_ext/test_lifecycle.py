"""Extension lifecycle: auto-mount on start, restart after the child crashes, nothing left at shutdown."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from jupyter_test_utils import pid_alive, wait_for


@pytest.fixture
def algofs_config(algofs_config):
    return {**algofs_config, "auto_mount": True}


@pytest.mark.fuse
async def test_auto_mount_crash_restart_and_clean_shutdown(
    jp_serverapp, algofs_app, call, requires_fuse, no_stale_mounts, jp_root_dir
):
    await jp_serverapp.extension_manager.start_all_extensions()

    async def mounted():
        _code, status = await call("GET", "status")
        return status if status["mounted"] else None

    status = await wait_for(mounted, 60, "the auto-mount")
    mountpoint = Path(status["mountpoint_abs"])
    assert mountpoint == Path(jp_root_dir).resolve() / "algofs"
    manager = algofs_app.mount_manager
    first_pid = manager.child_pid
    assert first_pid and pid_alive(first_pid)

    os.kill(first_pid, signal.SIGKILL)

    async def remounted():
        return manager.restarts >= 1 and manager.child_pid not in (None, first_pid) and await mounted()

    await wait_for(remounted, 60, "the restart after a crash")
    assert os.listdir(mountpoint / "data" / "demo")
    second_pid = manager.child_pid

    await jp_serverapp.extension_manager.stop_all_extensions()
    assert not os.path.ismount(mountpoint)
    assert not pid_alive(second_pid)
    assert not algofs_app.handoff_file.path.exists()
