"""A listed directory's readdir snapshot is dropped when the directory is closed (fuse_binding.py keeps one
per open directory handle, for READDIRPLUS offsets): libfuse calls ``releasedir`` only when the operations
define it, and without it every directory ever listed kept its snapshot (docs/filesystem.md, per-file state).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from .conftest import Mounted


def test_closing_a_listed_directory_releases_it(mounted: Mounted, scratch: Path) -> None:
    for number in range(5):
        (scratch / f"f{number}").write_bytes(b"x")
    for _ in range(30):
        assert len(os.listdir(scratch)) == 5
        with os.scandir(scratch.parent) as entries:
            assert any(entry.name == scratch.name for entry in entries)
    fd = os.open(scratch, os.O_RDONLY | os.O_DIRECTORY)  # one left open: counted
    try:
        deadline = time.monotonic() + 10
        while mounted.status()["open_directories"] != 1:  # RELEASEDIR is sent in the background
            assert time.monotonic() < deadline, mounted.status()["open_directories"]
            time.sleep(0.05)
    finally:
        os.close(fd)
    deadline = time.monotonic() + 10
    while mounted.status()["open_directories"] != 0:
        assert time.monotonic() < deadline, mounted.status()["open_directories"]
        time.sleep(0.05)
