"""A read-only mount for training, owned by the kernel that asks for it (``%algofs loader``).

Why a second mount: the notebook server's mount is a working directory (writes, pipes, consistency
modes), so every ``open()`` there reaches the daemon. A data loader opens the same files every epoch;
``algofs mount --read-only`` lets the kernel open them itself and serve them from its page cache without
asking the daemon (docs/filesystem.md, "Read-only mounts for data loaders"): in ``bench/small_files.py``
a DataLoader's warm epoch took 0.24 s there against 2.02 s on the default mount.

The mount uses this kernel's API endpoint (never a key in argv: ``MountProcess`` passes it in the
environment), has a cache of its own, and ends with the kernel: its daemon watches this process
(``parent_watch``), and ``atexit`` unmounts it on a clean exit.
"""

from __future__ import annotations

import atexit
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from ..mount.mount_table import is_algofs_mount
from ..mount.options import JUPYTER_DEFAULTS
from .api_provider import ApiEndpoint
from .fuse_check import fuse_unavailable_reason
from .mount_manager import mount_cache_dir

if TYPE_CHECKING:
    from ..mount.mount_process import MountProcess

#: Where ``%algofs loader`` mounts when no path is given.
DEFAULT_PATH = "~/algofs-loader"


class LoaderMount:
    """The kernel's one read-only mount: ``mount``, ``unmount``, ``status`` (dicts for the magic)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # guards _process
        self._process: MountProcess | None = None  # while mounted

    def status(self) -> dict:
        with self._lock:
            process = self._process
        if process is None or not is_algofs_mount(process.mountpoint):
            return {"mounted": False}
        return _described(process)

    def mount(self, endpoint: ApiEndpoint, path: str | None = None, timeout: float = 60.0) -> dict:
        """Mount at ``path`` (default ``DEFAULT_PATH``); a no-op when already mounted there. Raises
        RuntimeError with the reason when FUSE is unavailable, another path is mounted, or ``path`` is a
        non-empty directory (mounting would hide its files)."""
        from ..mount.mount_process import MountProcess

        reason = fuse_unavailable_reason()
        if reason is not None:
            raise RuntimeError(f"no read-only mount here: {reason}. Read through the API instead: "
                               "AlgoFileSystem().cat(paths) fetches up to 64 small files per request")
        target = Path(os.path.abspath(os.path.expanduser(path or DEFAULT_PATH)))
        with self._lock:
            if self._process is not None:
                if Path(self._process.mountpoint) == target and is_algofs_mount(target):
                    return _described(self._process)
                raise RuntimeError(f"this kernel's loader mount is at {self._process.mountpoint}: "
                                   "%algofs loader --unmount first")
            if is_algofs_mount(target):
                raise RuntimeError(f"{target} is already an algofs mount")
            if target.is_dir() and any(target.iterdir()):
                raise RuntimeError(f"{target} is not empty: mounting there would hide its files")
            process = MountProcess(target, endpoint.api_address, endpoint.api_key,
                                   cache_dir=mount_cache_dir(target, prefix="loader-"),
                                   options=JUPYTER_DEFAULTS, read_only=True)
            process.start(timeout)  # on failure it leaves no mount behind
            self._process = process
            return _described(process)

    def unmount(self) -> dict:
        """Unmount (a busy mount is detached lazily: see ``MountProcess.stop``)."""
        with self._lock:
            process, self._process = self._process, None
        if process is not None:
            process.stop()
        return {"mounted": False}


def _described(process: MountProcess) -> dict:
    return {"mounted": True, "mountpoint": process.mountpoint, "read_only": True,
            "cache_dir": str(process.cache_dir), "pid": process.pid}


_loader = LoaderMount()
atexit.register(_loader.unmount)


def loader_mount() -> LoaderMount:
    """This kernel's loader mount."""
    return _loader
