"""Owns one FUSE mount: a child ``algofs mount --foreground`` process (``MountProcess``), supervised.

Operations are serialised (a thread lock here, plus an asyncio lock for the server's coroutines). The child
itself waits for its readiness probe, clears a stale mount before mounting and leaves none behind when
stopped (``MountProcess.start``/``stop``); this module adds restarts of a crashed child with exponential
backoff, and :meth:`close`. Status reads never wait for a slow mount: they read a snapshot.

Locks: ``_op_lock`` (an RLock) guards ``_process``, ``_mountpoint``, ``_want_mounted``, ``_busy``,
``_error`` and the restart counters; it is held across a child's start and stop (seconds). The asyncio
lock only orders the server's coroutines before they take ``_op_lock`` in a thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import shutil
import threading
import time
from pathlib import Path

from ..mount.holders import Holder, holders
from ..mount.mount_table import is_algofs_mount
from ..mount.options import JUPYTER_DEFAULTS, cache_home
from ..private_dirs import make_private_dirs
from ..supervise import SupervisedChild
from .api_provider import ApiEndpoint, ApiProvider
from .cache_stats import cache_stats_from_control, empty_cache_stats
from .fuse_check import fuse_unavailable_reason

log = logging.getLogger(__name__)



def default_cache_root() -> Path:
    """Where the extension's mounts keep their caches, one folder per mountpoint."""
    return cache_home() / "algofs-jupyter"


def mount_cache_dir(mountpoint: str | os.PathLike, prefix: str = "") -> Path:
    """The cache folder of a mount at ``mountpoint`` under ``default_cache_root`` (named by a digest of
    the path; ``prefix`` keeps one kind of mount's folders apart from another's)."""
    digest = hashlib.sha256(str(mountpoint).encode()).hexdigest()[:12]
    return default_cache_root() / f"{prefix}{digest}"


class MountManager:
    """Mount / unmount / status / cache for one mountpoint, shared by REST handlers, magics and the widget."""

    poll_interval = 0.5
    #: a child alive this long after a restart resets the backoff
    stable_after = 60.0

    def __init__(
        self,
        api_provider: ApiProvider,
        root_dir: str | os.PathLike,
        mountpoint: str = "algofs",
        cache_dir: str | os.PathLike | None = None,
        cache_size: int = JUPYTER_DEFAULTS.cache_size,
        start_timeout: float = 30.0,
        max_restarts: int = 5,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        mount_options: dict | None = None,
    ):
        self.api_provider = api_provider
        self.root_dir = Path(root_dir).expanduser().resolve()
        self.cache_dir_setting = Path(cache_dir).expanduser() if cache_dir else None
        self.cache_size = int(cache_size)
        self.start_timeout = start_timeout
        self.max_restarts = max_restarts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.mount_options = dict(mount_options or {})
        self._mountpoint = self.resolve(mountpoint)
        self._op_lock = threading.RLock()
        self._async_lock: asyncio.Lock | None = None
        self._process: SupervisedChild | None = None
        self._endpoint: ApiEndpoint | None = None
        self._want_mounted = False
        self._busy: str | None = None
        self._error: str | None = None
        self.restarts = 0
        self._consecutive_failures = 0
        self._started_at = 0.0
        self._closing = threading.Event()
        self._supervisor: threading.Thread | None = None

    # ----- paths -------------------------------------------------------------------------------------
    def resolve(self, path: str | os.PathLike) -> Path:
        """Absolute mountpoint for ``path`` (relative to the root dir); refuses paths escaping the root."""
        candidate = Path(path).expanduser()
        if not candidate.is_absolute():
            candidate = self.root_dir / candidate
        candidate = Path(os.path.normpath(candidate))
        if candidate == self.root_dir:
            raise ValueError("the mountpoint can't be the root directory itself")
        return candidate

    def resolve_inside_root(self, path: str) -> Path:
        """Like :meth:`resolve` but only for relative paths inside the root dir (REST callers)."""
        if Path(path).is_absolute():
            raise ValueError("path must be relative to the server root directory")
        candidate = self.resolve(path)
        if self.root_dir not in candidate.parents:
            raise ValueError("path must stay inside the server root directory")
        return candidate

    @property
    def mountpoint(self) -> Path:
        return self._mountpoint

    def relative_mountpoint(self) -> str:
        try:
            return self._mountpoint.relative_to(self.root_dir).as_posix()
        except ValueError:
            return str(self._mountpoint)

    def cache_dir(self) -> Path:
        if self.cache_dir_setting:
            return self.cache_dir_setting
        return mount_cache_dir(self._mountpoint)

    # ----- state -------------------------------------------------------------------------------------
    @property
    def mounted(self) -> bool:
        process = self._process
        return process is not None and process.alive() and is_algofs_mount(self._mountpoint)

    @property
    def child_pid(self) -> int | None:
        process = self._process
        return process.pid if process is not None else None

    def status(self) -> dict:
        fallback = fuse_unavailable_reason()
        mounted = self.mounted
        if mounted:
            mode, reason = "fuse", None
        elif fallback:
            mode, reason = "fallback", fallback
        elif self._error:
            mode, reason = "error", self._error
        else:
            mode, reason = "unmounted", self._busy
        endpoint = self._endpoint or self._peek_endpoint()
        return {
            "mode": mode,
            "mounted": mounted,
            "mountpoint": self.relative_mountpoint(),
            "mountpoint_abs": str(self._mountpoint),
            "reason": reason,
            "api_address": endpoint.api_address if endpoint else None,
            "embedded_server": endpoint.embedded if endpoint else not self.api_provider.configured_remote,
            "username": endpoint.username if endpoint else None,
            "cache": self.cache_stats() if mounted else None,
        }

    def _peek_endpoint(self) -> ApiEndpoint | None:
        if self.api_provider.configured_remote or self.api_provider.embedded_running:
            try:
                return self.api_provider.endpoint()
            except Exception:  # status must not fail because of a bad key file
                return None
        return None

    def cache_stats(self) -> dict:
        if not self.mounted:
            return empty_cache_stats(self.cache_size)
        try:
            from algofs_jupyter.mount import control

            raw = control.query(self._mountpoint, "status")
        except Exception as exc:
            log.warning("algofs: cache status query failed: %s", exc)
            return empty_cache_stats(self.cache_size)
        return cache_stats_from_control(raw, self.cache_size)

    def clear_cache(self) -> dict:
        if self.mounted:
            from algofs_jupyter.mount import control

            control.query(self._mountpoint, "clear_cache")
        else:
            with self._op_lock:
                directory = self.cache_dir()
                if directory.is_dir():
                    for child in directory.iterdir():
                        if child.is_dir() and not child.is_symlink():
                            shutil.rmtree(child, ignore_errors=True)
                        else:
                            child.unlink(missing_ok=True)
        return self.cache_stats()

    # ----- mount / unmount ---------------------------------------------------------------------------
    def mount(self, path: str | os.PathLike | None = None) -> dict:
        with self._op_lock:
            reason = fuse_unavailable_reason()
            if reason:
                self._error = None
                if path is not None:
                    self._mountpoint = self.resolve(path)
                return self.status()
            target = self.resolve(path) if path is not None else self._mountpoint
            if self.mounted and target == self._mountpoint:
                return self.status()
            if self._process is not None:
                self._stop_child()
            self._mountpoint = target
            self._busy = "mounting"
            self._error = None
            try:
                self._start_child()
                self._want_mounted = True
                self._consecutive_failures = 0
            except Exception as exc:  # reported through status
                self._error = f"mount failed: {exc}"
                log.error("algofs: %s", self._error)
            finally:
                self._busy = None
            self._ensure_supervisor()
            return self.status()

    def holders(self) -> list[Holder]:
        """Processes with their working directory or open files in the mount (its daemon excluded)."""
        if not self.mounted:
            return []
        pid = self.child_pid
        return holders(self._mountpoint, exclude={pid} if pid else None)

    def unmount(self, force: bool = False) -> dict:
        """Unmount, unless processes hold the mount and ``force`` is false: then nothing changes and the
        status names them (``busy``, ``busy_message``). Forced, holders are left on a lazily detached tree
        where they get ENOTCONN (``MountProcess.stop``); ``busy_unmount`` moves kernels out first."""
        with self._op_lock:
            held = [] if force else self.holders()
            if held:
                status = self.status()
                status["busy"] = [h.as_dict() for h in held]
                status["busy_message"] = (f"{self.relative_mountpoint()} is in use by "
                                          + "; ".join(h.describe() for h in held)
                                          + ". Unmount anyway (force) leaves them on a detached tree"
                                          " ('Transport endpoint is not connected') until they cd again.")
                return status
            self._want_mounted = False
            self._error = None
            self._stop_child()
            return self.status()

    def close(self) -> None:
        """Unmount, stop supervising. Called from the server's ``stop_extension`` and kernel exit."""
        self._closing.set()
        with self._op_lock:
            self._want_mounted = False
            self._stop_child()
        supervisor = self._supervisor
        if supervisor is not None and supervisor is not threading.current_thread():
            supervisor.join(timeout=5)

    def _new_process(self, endpoint: ApiEndpoint) -> SupervisedChild:
        from algofs_jupyter.mount.mount_process import MountProcess

        overrides = {"cache_size": self.cache_size, **self.mount_options}
        return MountProcess(
            str(self._mountpoint),
            endpoint.api_address,
            endpoint.api_key,
            cache_dir=str(self.cache_dir()),
            options=JUPYTER_DEFAULTS,
            **overrides,
        )

    def _start_child(self) -> None:
        """Start a child and wait for its readiness probe (it stops itself, leaving no mount, on failure)."""
        endpoint = self.api_provider.endpoint()
        self._endpoint = endpoint
        make_private_dirs(self.cache_dir())
        process = self._new_process(endpoint)
        process.start(self.start_timeout)
        self._process = process
        self._started_at = time.monotonic()

    def _stop_child(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            process.stop()

    # ----- supervision -------------------------------------------------------------------------------
    def _ensure_supervisor(self) -> None:
        if self._supervisor is None or not self._supervisor.is_alive():
            self._supervisor = threading.Thread(
                target=self._supervise, name="algofs-mount-supervisor", daemon=True
            )
            self._supervisor.start()

    def _supervise(self) -> None:
        while not self._closing.wait(self.poll_interval):
            delay = self._check_child()
            if delay is None:
                continue
            if self._closing.wait(delay):
                return
            self._restart()

    def _check_child(self) -> float | None:
        """None when all is well; otherwise the backoff delay before a restart."""
        with self._op_lock:
            process = self._process
            if not self._want_mounted or process is None:
                return None
            if process.alive():
                if self._consecutive_failures and time.monotonic() - self._started_at > self.stable_after:
                    self._consecutive_failures = 0
                return None
            code = process.returncode
            self._stop_child()  # clears the dead child's stale mount
            if code == 0:
                # `algofs unmount` / fusermount -u from outside: respect it, don't fight the user.
                self._want_mounted = False
                log.info("algofs: %s was unmounted outside the extension", self._mountpoint)
                return None
            self._consecutive_failures += 1
            if self._consecutive_failures > self.max_restarts:
                self._want_mounted = False
                self._error = f"mount process keeps crashing (exit status {code}); gave up"
                log.error("algofs: %s", self._error)
                return None
            delay = min(self.backoff_max, self.backoff_base * 2 ** (self._consecutive_failures - 1))
            self._error = f"mount process exited (status {code}); restarting in {delay:g}s"
            log.warning("algofs: %s", self._error)
            return delay

    def _restart(self) -> None:
        with self._op_lock:
            if not self._want_mounted or self._process is not None or self._closing.is_set():
                return
            try:
                self._start_child()
                self.restarts += 1
                self._error = None
                log.info("algofs: remounted %s (restart #%d)", self._mountpoint, self.restarts)
            except Exception as exc:  # reported through status
                self._consecutive_failures += 1
                self._error = f"restart failed: {exc}"
                log.error("algofs: %s", self._error)
                if self._consecutive_failures > self.max_restarts:
                    self._want_mounted = False
                    return
                # Put a dead placeholder back so the next check schedules another attempt.
                self._process = _DeadProcess()

    # ----- asyncio front (server extension) ----------------------------------------------------------
    def _alock(self) -> asyncio.Lock:
        if self._async_lock is None:
            self._async_lock = asyncio.Lock()
        return self._async_lock

    async def amount(self, path: str | None = None) -> dict:
        async with self._alock():
            return await asyncio.to_thread(self.mount, path)

    async def aunmount(self, force: bool = False) -> dict:
        async with self._alock():
            return await asyncio.to_thread(self.unmount, force)

    async def astatus(self) -> dict:
        return await asyncio.to_thread(self.status)

    async def acache_stats(self) -> dict:
        return await asyncio.to_thread(self.cache_stats)

    async def aclear_cache(self) -> dict:
        async with self._alock():
            return await asyncio.to_thread(self.clear_cache)

    async def aclose(self) -> None:
        async with self._alock():
            await asyncio.to_thread(self.close)


class _DeadProcess:
    """Stands in for a child that failed to restart, so the supervisor retries with backoff."""

    @property
    def pid(self) -> int | None:
        return None

    @property
    def returncode(self) -> int | None:
        return 1

    def start(self, timeout: float = 0.0) -> object:
        raise RuntimeError("a placeholder is never started")

    def ready(self) -> bool:
        return False

    def alive(self) -> bool:
        return False

    def stop(self, timeout: float = 0.0) -> None:
        pass
