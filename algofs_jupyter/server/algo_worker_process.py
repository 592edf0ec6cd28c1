"""One supervised worker process for one algorithm version (modelled on jupyter-server-proxy's
``SupervisedProcess``: start, wait for readiness, use, kill the whole process group).

A worker serves one call at a time (the pool guarantees it). A timeout or a broken protocol kills it;
the pool then starts a fresh one for the next call.

Starting one happens off the event loop: the box (``algo_box.py``) stages the code, leases the owner's
uid and makes the worker's cgroup leaf, all blocking. On the loop that was 30-60 ms per start on a loaded
2-core box, and a burst of starts held /healthz for 220 ms (bench/serve_load.py). Once the process is gone
(exited or killed), :meth:`WorkerProcess.kill` hands the launch back to the box, which kills whatever the
worker left behind in its cgroup (a double-forked daemon too) before the owner's uid can be reused.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import json
import os
import signal
import subprocess
import time
from pathlib import Path

from .algo_box import AlgorithmBox, Launch
from .algo_sandbox import popen_kwargs
from .algorithm_runner import READY
from .executor import CallOutcome, CallRequest, crash_outcome, outcome_from_reply, timeout_outcome

#: Replies may carry a 10 MiB input echoed back as base64 plus stdout.
MAX_LINE = 64 << 20
STDERR_LINES = 200


class WorkerStartError(Exception):
    """The worker exited or did not signal readiness in time."""


def _kill_if_made(spawning: asyncio.Future) -> None:
    if not spawning.cancelled() and spawning.exception() is None:
        spawning.result().kill()


class PipedProcess:
    """The parts of ``asyncio.subprocess.Process`` a worker uses, for a ``Popen`` made in a thread: its
    pipes are connected to the loop afterwards. Reaped by ``wait`` (or by ``subprocess`` itself once the
    object is dropped)."""

    def __init__(self, popen: subprocess.Popen, stdin: asyncio.StreamWriter, stdout: asyncio.StreamReader,
                 stderr: asyncio.StreamReader):
        self.popen = popen
        self.pid = popen.pid
        self.stdin, self.stdout, self.stderr = stdin, stdout, stderr

    @classmethod
    async def start(cls, argv: list[str], limit: int, **kwargs) -> PipedProcess:
        def popen_now() -> subprocess.Popen:
            return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, **kwargs)

        loop = asyncio.get_running_loop()
        spawning = loop.run_in_executor(None, popen_now)
        try:
            popen = await asyncio.shield(spawning)
        except asyncio.CancelledError:  # the thread still makes the process: don't leave it running
            spawning.add_done_callback(_kill_if_made)
            raise
        try:
            readers = []
            for pipe in (popen.stdout, popen.stderr):
                reader = asyncio.StreamReader(limit=limit)
                await loop.connect_read_pipe(functools.partial(asyncio.StreamReaderProtocol, reader), pipe)
                readers.append(reader)
            protocol = asyncio.StreamReaderProtocol(asyncio.StreamReader())
            transport, _ = await loop.connect_write_pipe(lambda: protocol, popen.stdin)
            stdin = asyncio.StreamWriter(transport, protocol, None, loop)
        except BaseException:
            popen.kill()
            raise
        return cls(popen, stdin, readers[0], readers[1])

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    async def wait(self) -> int:
        while (code := self.popen.poll()) is None:  # a killed worker exits within milliseconds
            await asyncio.sleep(0.01)
        return code


class WorkerProcess:
    def __init__(self, key: tuple[str, str, str, str, bool], owner: str, directory: Path, slot: int,
                 box: AlgorithmBox, network: bool = False, name: str = ""):
        self.key = key
        self.owner = owner
        self.slot = slot
        self.name = name or f"w{slot}"  # its cgroup leaf
        self.directory = directory
        self.box = box
        self.network = network
        self.launch: Launch | None = None  # made by start(), in a thread: it stages the code
        self._finished: asyncio.Future | None = None  # the box's clean-up after the process is gone
        self.process: PipedProcess | None = None
        self.stderr_tail: collections.deque[str] = collections.deque(maxlen=STDERR_LINES)
        self.last_used = time.monotonic()
        self.calls = 0
        self._killed = False  # set by kill(): the process may not be reaped (returncode) for a while
        self._stderr_task: asyncio.Task | None = None

    @property
    def alive(self) -> bool:
        """Started, not killed by us and not exited. ``returncode`` alone is not enough: it is set only
        when the event loop's child watcher has reaped the process, so a worker killed on a timeout
        still looked alive and went back to the idle list (CI: the next call got "exited with status
        -9")."""
        return self.process is not None and not self._killed and self.process.returncode is None

    async def start(self, timeout: float) -> None:
        self.launch = await asyncio.to_thread(self.box.prepare, self.owner, self.name, self.directory,
                                              self.network, False, self.key[1])
        try:
            self.process = await PipedProcess.start(self.launch.argv, MAX_LINE,
                                                    **popen_kwargs(self.launch.spec))
        except BaseException:
            self._hand_back()
            raise
        self._stderr_task = asyncio.ensure_future(self._drain_stderr())
        try:
            line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        except asyncio.TimeoutError:
            self.kill()
            raise WorkerStartError("worker did not become ready in time") from None
        if line.decode(errors="replace").strip() != READY:
            self.kill()
            await self.process.wait()
            raise WorkerStartError("worker exited before it was ready: " + "".join(self.stderr_tail)[-2000:])

    async def _drain_stderr(self) -> None:
        assert self.process is not None
        stream = self.process.stderr
        while line := await stream.readline():
            self.stderr_tail.append(line.decode("utf-8", "replace"))

    async def call(self, request: CallRequest, timeout: float, cpu_seconds: float) -> CallOutcome:
        started = time.monotonic()
        proc = self.process
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        self.calls += 1
        try:
            proc.stdin.write(request.line(cpu_seconds))
            await proc.stdin.drain()
            line = await asyncio.wait_for(proc.stdout.readline(), timeout)
        except asyncio.TimeoutError:
            self.kill()
            return timeout_outcome(request.timeout, time.monotonic() - started)
        except (ConnectionError, ValueError, asyncio.LimitOverrunError):  # died, or a line past MAX_LINE
            line = b""
        finally:
            self.last_used = time.monotonic()
        duration = time.monotonic() - started
        if not line:
            self.kill()
            code = await self._exit_code()
            return crash_outcome(code, "".join(self.stderr_tail), duration)
        try:
            return outcome_from_reply(json.loads(line), duration)
        except (ValueError, RecursionError):
            self.kill()
            return crash_outcome(None, "malformed reply from the worker", duration)

    async def _exit_code(self) -> int | None:
        try:
            return await asyncio.wait_for(self.process.wait(), 5)  # type: ignore[union-attr]
        except asyncio.TimeoutError:
            return None

    def kill(self) -> None:
        """SIGKILL the process group (the sandbox's PID namespace takes every descendant with it), then hand
        the launch back to the box, which empties the worker's cgroup leaf and releases the owner's uid."""
        if self.process is not None and self.process.returncode is None and not self._killed:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self._killed = True
        self._hand_back()

    def _hand_back(self) -> None:
        if self.launch is None or self._finished is not None:
            return
        launch, process = self.launch, self.process

        async def finish() -> None:
            if process is not None:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(process.wait(), 5)
            await asyncio.to_thread(self.box.finish, launch)

        self._finished = asyncio.ensure_future(finish())

    async def stop(self) -> None:
        self.kill()
        if self.process is not None:
            await self._exit_code()
        if self._finished is not None:
            await self._finished
        if self._stderr_task is not None:
            self._stderr_task.cancel()
