"""``MountProcess``: run ``algofs mount --foreground`` as a supervised child (Jupyter, tests, ``algofs
mount`` without ``--foreground``), and ``cleanup_stale``: remove a dead FUSE mount left by a crashed daemon.

The API key reaches the child in its environment (``ALGORITHMIA_API_KEY``), never in argv. The mount
table is read through ``mount_table``; the child's lifecycle is ``supervise.ChildProcess``.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from ..parent_watch import PARENT_PID_ENV
from ..private_dirs import make_private_dirs
from ..supervise import ChildOwner, ChildProcess
from . import control
from .holders import holders
from .mount_table import algofs_mounts, is_algofs_mount, mount_path
from .options import MountOptions

__all__ = ["MountProcess", "algofs_mounts", "cleanup_stale", "fusermount", "is_mounted", "mount_path"]

#: Seconds a daemon gets to exit by itself after its mount is gone, before SIGTERM.
EXIT_AFTER_UNMOUNT_SECONDS = 15.0
#: Seconds after SIGTERM before SIGKILL.
TERM_SECONDS = 5.0

log = logging.getLogger(__name__)


def is_mounted(mountpoint: str | os.PathLike) -> bool:
    return is_algofs_mount(mountpoint)


def fusermount(mountpoint: str | os.PathLike, lazy: bool = False) -> subprocess.CompletedProcess:
    args = ["fusermount3", "-u"] + (["-z"] if lazy else []) + [mount_path(mountpoint)]
    return subprocess.run(args, capture_output=True, text=True, timeout=30)


def cleanup_stale(mountpoint: str | os.PathLike) -> bool:
    """Lazily unmount an algofs mount whose daemon is gone (``Transport endpoint is not connected``).

    Returns True when a stale mount was removed. A live mount is left alone.
    """
    if not is_mounted(mountpoint):
        return False
    try:
        os.stat(mount_path(mountpoint))
        return False  # alive
    except OSError as exc:
        if exc.errno not in (errno.ENOTCONN, errno.ECONNABORTED, errno.EIO):
            return False
    fusermount(mountpoint, lazy=True)
    control.remove_sockets(mountpoint)
    return not is_mounted(mountpoint)


class MountProcess(ChildOwner):
    """A foreground ``algofs mount`` child (a ``supervise.SupervisedChild``). ``start`` returns once
    ``ready()``: the kernel lists the mount and the control socket answers; ``stop`` unmounts and waits,
    escalating to SIGTERM/SIGKILL."""

    def __init__(self, mountpoint: str | os.PathLike, api_address: str, api_key: str | None,
                 cache_dir: str | os.PathLike | None = None, log_file: str | os.PathLike | None = None,
                 options: MountOptions | None = None, exit_with_parent: bool = True, **overrides: Any):
        """``options`` (default: ``MountOptions()``) with ``cache_dir`` and any ``MountOptions`` field
        given as a keyword on top (None keeps the default; an unknown name is a TypeError).
        ``exit_with_parent``: the daemon unmounts once this process is gone (``parent_watch``)."""
        self.mountpoint = mount_path(mountpoint)
        self.api_address = api_address
        self._api_key = api_key
        self.exit_with_parent = exit_with_parent
        self.options = (options or MountOptions()).with_overrides(cache_dir=cache_dir, **overrides)
        digest = hashlib.sha256(self.mountpoint.encode()).hexdigest()[:12]
        log_path = Path(log_file) if log_file else self.cache_dir / f"mount-{digest}.log"
        self._child = ChildProcess("algofs mount", log_path)

    def __repr__(self) -> str:
        return f"MountProcess({self.mountpoint!r}, {self.api_address!r})"

    @property
    def cache_dir(self) -> Path:
        return self.options.cache_dir

    @property
    def log_path(self) -> Path:
        return self._child.log_path

    def command(self) -> list[str]:
        return [sys.executable, "-m", "algofs_jupyter", "mount", self.mountpoint, "--foreground",
                "--api-address", self.api_address, *self.options.argv()]

    def start(self, timeout: float = 30.0) -> MountProcess:
        if self._child.popen is not None:
            raise RuntimeError("already started")
        cleanup_stale(self.mountpoint)
        if is_mounted(self.mountpoint):
            raise RuntimeError(f"{self.mountpoint} is already an algofs mount")
        Path(self.mountpoint).mkdir(parents=True, exist_ok=True)
        make_private_dirs(self.cache_dir)  # the daemon's log, blocks and staged writes go there
        env = dict(os.environ)
        env.pop("ALGORITHMIA_API_KEY", None)
        if self._api_key:
            env["ALGORITHMIA_API_KEY"] = self._api_key
        if self.exit_with_parent:  # see parent_watch: no mount outlives the process that owns it
            env[PARENT_PID_ENV] = str(os.getpid())
        self._spawn_until_ready(self.command(), env, timeout)
        return self

    def ready(self) -> bool:
        if not is_mounted(self.mountpoint):
            return False
        try:  # "starting" until the daemon's post-mount set-up (the kernel's readahead) is done
            return control.query(self.mountpoint, "status", timeout=2).get("state") == "mounted"
        except (ConnectionError, OSError, RuntimeError):
            return False

    def stop(self, timeout: float = EXIT_AFTER_UNMOUNT_SECONDS) -> None:
        """Unmount and wait for the daemon; never leaves a mount behind.

        A busy mount is detached lazily and the daemon asked to exit at once (SIGTERM: it unmounts, drains
        its uploads and returns): waiting would not help, since it serves a lazily detached tree until the
        last holder leaves, and a kernel's working directory never does. The holders then get ENOTCONN
        there, so callers that can should move them out first (``holders``; the Jupyter extension does).
        """
        if is_mounted(self.mountpoint) and fusermount(self.mountpoint).returncode != 0:
            held = holders(self.mountpoint, exclude={self._child.pid} if self._child.pid else None)
            log.warning("%s is busy; detaching it lazily and stopping its daemon now%s", self.mountpoint,
                        "".join(f"\n  held by {h.describe()}" for h in held))
            fusermount(self.mountpoint, lazy=True)
            timeout = 0.0
        self._child.stop(grace=timeout, term_timeout=TERM_SECONDS)
        cleanup_stale(self.mountpoint)
        if is_mounted(self.mountpoint):
            fusermount(self.mountpoint, lazy=True)

    def __enter__(self) -> MountProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
