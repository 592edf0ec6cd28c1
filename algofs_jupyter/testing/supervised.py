"""A child process that is started, probed until ready, and always stopped.

Tests and benches start real servers (SeaweedFS, moto, ``algofs serve``). Each runs in its own session so
``stop`` can signal the whole process group: SIGTERM, a grace period, then SIGKILL. ``start`` stops the
child itself when the readiness probe never succeeds, so a failed start leaves nothing running.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType


def free_ports(count: int, *, below: int = 65536, offset: int = 0) -> list[int]:
    """``count`` distinct TCP ports on 127.0.0.1 that were free a moment ago.

    With ``offset``, ``port + offset`` was free too (SeaweedFS puts its gRPC listeners at port + 10000).
    """
    ports: list[int] = []
    held: list[socket.socket] = []
    try:
        while len(ports) < count:
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
            held.append(sock)
            if port in ports or port + offset >= below:
                continue
            if offset:
                try:
                    with socket.socket() as other:
                        other.bind(("127.0.0.1", port + offset))
                except OSError:
                    continue
            ports.append(port)
    finally:
        for sock in held:
            sock.close()
    return ports


class SupervisedProcess:
    """``argv`` run as a child with its output in ``log_path``; ready once ``probe()`` returns True."""

    def __init__(self, argv: Sequence[str], *, log_path: Path, probe: Callable[[], bool],
                 env: Mapping[str, str] | None = None, cwd: Path | None = None, grace: float = 5.0):
        self.argv = list(argv)
        self.log_path = log_path
        self.probe = probe
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.grace = grace
        self.process: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 60.0) -> SupervisedProcess:
        if self.process is not None:
            raise RuntimeError("already started")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                            env=self.env, cwd=self.cwd, start_new_session=True)
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                code = self.process.returncode
                raise RuntimeError(f"{self.argv[0]} exited with {code}:\n{self.log_tail()}")
            try:
                if self.probe():
                    return
            except Exception:  # noqa: BLE001 - not ready yet, whatever the probe ran into
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{self.argv[0]} not ready after {timeout} s:\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM to the group, ``grace`` seconds, then SIGKILL; waits for the child in every case."""
        proc, self.process = self.process, None
        if proc is None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(self.grace)
        except subprocess.TimeoutExpired:
            pass
        try:  # also children that outlived the leader
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def __enter__(self) -> SupervisedProcess:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
