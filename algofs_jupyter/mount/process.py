"""``MountProcess``: run ``algofs mount --foreground`` as a child (Jupyter, tests, ``algofs mount``
without ``--foreground``), and ``cleanup_stale``: remove a dead FUSE mount left by a crashed daemon.

The API key reaches the child in its environment (``ALGORITHMIA_API_KEY``), never in argv.
"""

from __future__ import annotations

import errno
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from . import control
from .parent_watch import PARENT_PID_ENV

DEFAULT_CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "algofs"
OPTION_FLAGS = {
    "cache_size": "--cache-size",
    "metadata_ttl": "--metadata-ttl",
    "negative_ttl": "--negative-ttl",
    "timeout": "--timeout",
    "block_size": "--block-size",
    "readahead_blocks": "--readahead-blocks",
    "algo_timeout": "--algo-timeout",
}


def mount_path(mountpoint: str | os.PathLike) -> str:
    """Absolute path with symlinks resolved in the parent only (never stats a possibly dead mount)."""
    absolute = os.path.abspath(os.fspath(mountpoint))
    return os.path.join(os.path.realpath(os.path.dirname(absolute)), os.path.basename(absolute))


def _unescape(field: str) -> str:
    return field.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def mounted_filesystem(mountpoint: str | os.PathLike) -> str | None:
    """The filesystem type mounted at ``mountpoint`` (e.g. ``fuse.algofs``) or None."""
    target = mount_path(mountpoint)
    found = None
    try:
        with open("/proc/self/mounts", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                fields = line.split()
                if len(fields) >= 3 and _unescape(fields[1]) == target:
                    found = fields[2]
    except OSError:
        return None
    return found


def algofs_mounts() -> list[str]:
    mounts = []
    with open("/proc/self/mounts", encoding="utf-8", errors="replace") as handle:
        for line in handle:
            fields = line.split()
            if len(fields) >= 3 and fields[2] == "fuse.algofs":
                mounts.append(_unescape(fields[1]))
    return mounts


def is_mounted(mountpoint: str | os.PathLike) -> bool:
    return mounted_filesystem(mountpoint) == "fuse.algofs"


def fusermount(mountpoint: str, lazy: bool = False) -> subprocess.CompletedProcess:
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
    fusermount(str(mountpoint), lazy=True)
    control.socket_path(mountpoint).unlink(missing_ok=True)
    return not is_mounted(mountpoint)


class MountProcess:
    """A foreground ``algofs mount`` child. ``start`` returns once the kernel lists the mount and the
    control socket answers; ``stop`` unmounts and waits, escalating to SIGTERM/SIGKILL."""

    def __init__(self, mountpoint: str | os.PathLike, api_address: str, api_key: str | None,
                 cache_dir: str | os.PathLike | None = None, log_file: str | os.PathLike | None = None,
                 connectors: tuple[str, ...] = (), exit_with_parent: bool = True, **options: object):
        self.mountpoint = mount_path(mountpoint)
        self.api_address = api_address
        self._api_key = api_key
        self.cache_dir = Path(cache_dir) if cache_dir else DEFAULT_CACHE_DIR
        digest = hashlib.sha256(self.mountpoint.encode()).hexdigest()[:12]
        self.log_path = Path(log_file) if log_file else self.cache_dir / f"mount-{digest}.log"
        self.connectors = tuple(connectors)
        self.exit_with_parent = exit_with_parent
        unknown = set(options) - set(OPTION_FLAGS)
        if unknown:
            raise TypeError(f"unknown mount options: {sorted(unknown)}")
        self.options = {k: v for k, v in options.items() if v is not None}
        self.process: subprocess.Popen | None = None

    def __repr__(self) -> str:
        return f"MountProcess({self.mountpoint!r}, {self.api_address!r})"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def returncode(self) -> int | None:
        return self.process.poll() if self.process else None

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "algofs_jupyter", "mount", self.mountpoint, "--foreground",
               "--api-address", self.api_address, "--cache-dir", str(self.cache_dir)]
        for name, value in self.options.items():
            cmd += [OPTION_FLAGS[name], str(value)]
        for cid in self.connectors:
            cmd += ["--connector", cid]
        return cmd

    def start(self, timeout: float = 30.0) -> MountProcess:
        if self.process is not None:
            raise RuntimeError("already started")
        cleanup_stale(self.mountpoint)
        if is_mounted(self.mountpoint):
            raise RuntimeError(f"{self.mountpoint} is already an algofs mount")
        Path(self.mountpoint).mkdir(parents=True, exist_ok=True)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.pop("ALGORITHMIA_API_KEY", None)
        if self._api_key:
            env["ALGORITHMIA_API_KEY"] = self._api_key
        if self.exit_with_parent:  # see parent_watch: no mount outlives the process that owns it
            env[PARENT_PID_ENV] = str(os.getpid())
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                            env=env, start_new_session=True)
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"algofs mount exited with {self.process.returncode}:\n{self.log_tail()}")
            if is_mounted(self.mountpoint):
                try:
                    control.query(self.mountpoint, "status", timeout=2)
                    return
                except (ConnectionError, OSError, RuntimeError):
                    pass
            time.sleep(0.05)
        raise TimeoutError(f"algofs mount not ready after {timeout} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        """Unmount (lazily if busy) and wait for the daemon; never leaves a mount behind."""
        proc = self.process
        if is_mounted(self.mountpoint):
            if fusermount(self.mountpoint).returncode != 0:
                fusermount(self.mountpoint, lazy=True)
        if proc is not None:
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.process = None
        cleanup_stale(self.mountpoint)
        if is_mounted(self.mountpoint):
            fusermount(self.mountpoint, lazy=True)

    def __enter__(self) -> MountProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
