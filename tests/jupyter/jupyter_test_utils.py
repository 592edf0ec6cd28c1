"""Helpers shared by the Jupyter-layer tests (a module, not a conftest, so test files can import them)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path

from algofs_jupyter.mount.mount_table import mount_entries


def algofs_mounts_under(directory: Path) -> list[str]:
    """Mount points of FUSE mounts at or below ``directory`` (what a leaked mount would look like)."""
    prefix = str(directory.resolve())
    return [entry.mountpoint for entry in mount_entries()
            if entry.fs_type.startswith("fuse") and entry.mountpoint.startswith(prefix)]


def assert_no_mounts_left(directory: Path) -> None:
    """Fails if a FUSE mount is left under ``directory`` - after lazily unmounting it anyway."""
    leaked = algofs_mounts_under(directory)
    for mountpoint in leaked:
        subprocess.run(["fusermount3", "-uz", mountpoint], check=False)
    assert not leaked, f"stale FUSE mounts left behind: {leaked}"


async def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still "exists"; look at its state
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
