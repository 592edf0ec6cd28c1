"""Permission bits as the tests check them (issue 22: every private file 0600, every private dir 0700)."""

from __future__ import annotations

import os
import stat
from pathlib import Path


def mode(path: Path) -> int:
    """The permission bits of ``path`` itself (a link is not followed)."""
    return stat.S_IMODE(os.lstat(path).st_mode)
