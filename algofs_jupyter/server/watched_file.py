"""A configuration file the server re-reads when it changes: the users file, the quotas file, the owner caps.

One rule for all three: look at most once per ``CHECK_INTERVAL`` (a ``stat``, on the next request that
needs the file), treat a missing file as a version of its own, and take a new version only once it parsed
(:meth:`WatchedFile.accept`): a file caught half-written, or broken by hand, keeps the previous settings and
is tried again at the next look. A replace by ``rename(2)`` (the hub's atomic rewrite) is a change even
when size and mtime match, since the inode differs.
"""

from __future__ import annotations

import time
from pathlib import Path

#: Seconds between two looks at a watched file.
CHECK_INTERVAL = 1.0

FileState = tuple[int, int, int] | None  # inode, mtime_ns, size; None: no file


def file_state(path: Path) -> FileState:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


class WatchedFile:
    def __init__(self, path: Path, interval: float | None = None):
        self.path = path
        self.interval = interval  # None: CHECK_INTERVAL
        self.state = file_state(path)  # the version in use
        self._seen: FileState = self.state  # the version the last poll found
        self._next_check = 0.0

    @property
    def exists(self) -> bool:
        return self._seen is not None

    def poll(self) -> bool:
        """Due for a look, and the file differs from the version in use (then read it and ``accept``)."""
        if time.monotonic() < self._next_check:
            return False
        self._next_check = time.monotonic() + (CHECK_INTERVAL if self.interval is None else self.interval)
        self._seen = file_state(self.path)
        return self._seen != self.state

    def accept(self) -> None:
        """The version the last poll found parsed and is now in use."""
        self.state = self._seen
