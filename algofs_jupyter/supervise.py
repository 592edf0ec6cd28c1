"""Supervised child processes: the one way this project starts, probes and stops a daemon of its own
(``algofs mount --foreground``, ``algofs serve``, the benchmark's FUSE daemons).

``SupervisedChild`` is the contract the callers program against (``MountManager`` restarts any of them
the same way); ``ChildProcess`` is the ``Popen`` lifecycle they share: a new process session (signals to the
group reach grandchildren), output to a log file, a readiness poll that fails fast with the log's tail
when the child exits, and a stop that escalates from waiting to SIGTERM to SIGKILL of the group.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from .private_dirs import make_private_dirs, open_private_log

READY_POLL_SECONDS = 0.05


class SupervisedChild(Protocol):
    @property
    def pid(self) -> int | None:
        """The child's pid while one was started and not yet stopped."""
        ...

    @property
    def returncode(self) -> int | None:
        """The exit status once the child has exited; None while it runs or before it starts."""
        ...

    def start(self, timeout: float = ...) -> object:
        """Start the child and return once ``ready()``; raise (with the child stopped) otherwise."""
        ...

    def ready(self) -> bool:
        """The readiness probe: the child serves (a mount answers, a server's health check passes)."""
        ...

    def alive(self) -> bool: ...

    def stop(self, timeout: float = ...) -> None:
        """Stop the child and everything it left behind; safe to call twice or after a crash."""
        ...


class ChildProcess:
    """One child ``Popen`` with its log; the shared half of every ``SupervisedChild``."""

    def __init__(self, name: str, log_path: Path):
        self.name = name  # for messages: "algofs mount"
        self.log_path = log_path
        self.popen: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    @property
    def returncode(self) -> int | None:
        return self.popen.poll() if self.popen else None

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def spawn(self, command: Sequence[str], env: Mapping[str, str] | None = None, *,
              cwd: str | os.PathLike | None = None, user: int | None = None,
              group: int | None = None) -> None:
        """``cwd``: the child's working directory; ``user``/``group``: run it as that uid/gid with no
        supplementary groups (a test's local account started by root), as ``Popen(extra_groups=[])``."""
        if self.popen is not None:
            raise RuntimeError("already started")
        as_account = user is not None or group is not None
        make_private_dirs(self.log_path.parent, check_existing=False)
        # 0600 whatever the umask: logs hold paths and error messages that echo input (issue 22)
        with open(open_private_log(self.log_path), "ab") as log:  # the child keeps its own descriptor
            self.popen = subprocess.Popen(list(command), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                          env=dict(env) if env is not None else None, start_new_session=True,
                                          cwd=cwd, user=user, group=group,
                                          extra_groups=[] if as_account else None)

    def wait_ready(self, probe: Callable[[], bool], timeout: float) -> None:
        """Poll ``probe`` until it is true; RuntimeError if the child exits first, TimeoutError after
        ``timeout`` seconds (both with the log's tail)."""
        popen = self.popen
        if popen is None:
            raise RuntimeError(f"{self.name} was not started")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {popen.returncode}:\n{self.log_tail()}")
            if probe():
                return
            time.sleep(READY_POLL_SECONDS)
        raise TimeoutError(f"{self.name} not ready after {timeout} s:\n{self.log_tail()}")

    def stop(self, grace: float = 0.0, term_timeout: float = 10.0, *, term_group: bool = False,
             kill_leftovers: bool = False) -> None:
        """Wait up to ``grace`` seconds for the child to exit by itself (it was asked another way, e.g. its
        mount was unmounted), then SIGTERM and ``term_timeout`` seconds, then SIGKILL to its group.

        ``term_group``: SIGTERM goes to the whole group, so helpers a launcher started in the background
        (``binder/start``'s demo server) are asked too, not only the leader. ``kill_leftovers``: SIGKILL
        the group once the leader is gone, however it went, for helpers that may outlive their leader
        (a hub that had to be killed leaves its children)."""
        popen, self.popen = self.popen, None
        if popen is None:
            return
        try:
            if popen.poll() is None:  # else it exited (crashed, or stopped from outside)
                _terminate(popen, grace, term_timeout, term_group)
        finally:
            if kill_leftovers:
                _signal_group(popen.pid, signal.SIGKILL)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _terminate(popen: subprocess.Popen, grace: float, term_timeout: float, term_group: bool) -> None:
    if grace > 0:
        try:
            popen.wait(grace)
            return
        except subprocess.TimeoutExpired:
            pass
    if term_group:
        _signal_group(popen.pid, signal.SIGTERM)
    else:
        popen.send_signal(signal.SIGTERM)
    try:
        popen.wait(term_timeout)
        return
    except subprocess.TimeoutExpired:
        pass
    _signal_group(popen.pid, signal.SIGKILL)
    popen.wait()


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        pass


class ChildOwner:
    """What every ``SupervisedChild`` does the same way with its ``ChildProcess`` (``self._child``):
    spawning until ready, and reporting. Subclasses provide ``ready`` and ``stop``."""

    _child: ChildProcess

    def ready(self) -> bool:
        raise NotImplementedError

    def stop(self, timeout: float = 10.0) -> None:
        raise NotImplementedError

    def _spawn_until_ready(self, command: Sequence[str], env: Mapping[str, str], timeout: float) -> None:
        """Spawn the child and poll ``ready()``; a child that does not get there is stopped (``stop()``)."""
        self._child.spawn(command, env)
        try:
            self._child.wait_ready(self.ready, timeout)
        except BaseException:
            self.stop()
            raise

    @property
    def process(self) -> subprocess.Popen | None:
        return self._child.popen

    @property
    def pid(self) -> int | None:
        return self._child.pid

    @property
    def returncode(self) -> int | None:
        return self._child.returncode

    def alive(self) -> bool:
        return self._child.alive()

    def log_tail(self, lines: int = 30) -> str:
        return self._child.log_tail(lines)
