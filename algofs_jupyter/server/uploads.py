"""Streaming uploads that land atomically.

The body is written to a hidden temp file in the destination directory (``.algofs-partial-*``, a name
the API refuses and listings hide) and moved over the destination with ``os.replace`` only after the
last byte arrived. An interrupted upload therefore leaves the previous version intact; its temp file is
removed when the connection drops, and leftovers of a killed server are swept at start-up.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from ..names import RESERVED_PREFIX


class AtomicUpload:
    def __init__(self, destination: Path):
        self.destination = destination
        self.temp_path = destination.parent / f"{RESERVED_PREFIX}{secrets.token_hex(8)}"
        fd = os.open(self.temp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        self._file = os.fdopen(fd, "wb", buffering=1024 * 1024)
        self.bytes_written = 0

    def write(self, chunk: bytes) -> None:
        self._file.write(chunk)
        self.bytes_written += len(chunk)

    def commit(self) -> None:
        self._file.close()
        os.replace(self.temp_path, self.destination)

    def abort(self) -> None:
        if not self._file.closed:
            self._file.close()
        self.temp_path.unlink(missing_ok=True)


def sweep_partial_uploads(*directories: Path) -> int:
    """Remove temp files that a killed server left behind; returns how many."""
    removed = 0
    for top in directories:
        for dirpath, _dirnames, filenames in os.walk(top):
            for name in filenames:
                if name.startswith(RESERVED_PREFIX):
                    Path(dirpath, name).unlink(missing_ok=True)
                    removed += 1
    return removed
