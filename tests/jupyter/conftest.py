"""Fixtures for the Jupyter layer: API key files, FUSE guards, a check that no mount is left behind."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from algofs_jupyter.jupyter.fuse_check import fuse_unavailable_reason


def algofs_mounts_under(directory: Path) -> list[str]:
    """Mount points of FUSE mounts at or below ``directory`` (what a leaked mount would look like)."""
    prefix = str(directory.resolve())
    found = []
    for line in Path("/proc/mounts").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[2].startswith("fuse") and parts[1].startswith(prefix):
            found.append(parts[1].replace("\\040", " "))
    return found


@pytest.fixture
def no_stale_mounts(tmp_path: Path) -> Iterator[Path]:
    """Fails the test if a FUSE mount is left under ``tmp_path`` - after lazily unmounting it anyway."""
    yield tmp_path
    leaked = algofs_mounts_under(tmp_path)
    for mountpoint in leaked:
        subprocess.run(["fusermount3", "-uz", mountpoint], check=False)
    assert not leaked, f"stale FUSE mounts left behind: {leaked}"


@pytest.fixture
def requires_fuse() -> None:
    reason = fuse_unavailable_reason()
    if reason:
        pytest.skip(reason)


@pytest.fixture
def api_key_file(api_server, tmp_path_factory) -> Path:
    """The demo user's key in a 0600 file (keys never go through argv)."""
    path = tmp_path_factory.mktemp("keys") / "demo.key"
    path.write_text(api_server.api_key)
    path.chmod(0o600)
    return path
