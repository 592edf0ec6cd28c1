"""Running algorithm calls as child processes without blocking the event loop.

Each call is ``python -m algofs_jupyter.server.algorithm_runner`` in its own process group, so a
timeout kills the algorithm and anything it spawned. The child gets ``ALGORITHMIA_API`` and a per-call
token as ``ALGORITHMIA_API_KEY``: code inside an algorithm can use the official client against this
server, acting as the caller with the rights of an algorithm of its owner.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field

from .algorithms import ResolvedAlgorithm

_SECRET_ENV = ("ALGOFS_SERVE_API_KEY", "ALGORITHMIA_API_KEY", "ALGORITHMIA_BEARER_TOKEN")


@dataclass
class CallOutcome:
    duration: float
    stdout: str
    result: object = None
    content_type: str = "void"
    error: dict | None = None


@dataclass
class AlgorithmExecutor:
    api_address: str = ""
    running: set[asyncio.subprocess.Process] = field(default_factory=set)

    async def call(self, algo: ResolvedAlgorithm, content_type: str, data: object, timeout: float,
                   token: str) -> CallOutcome:
        payload = base64.b64encode(data).decode("ascii") if content_type == "binary" else data
        fd, result_file = tempfile.mkstemp(prefix="algofs-call-", suffix=".json")
        os.close(fd)
        env = {k: v for k, v in os.environ.items() if k not in _SECRET_ENV}
        env.update(ALGORITHMIA_API=self.api_address, ALGORITHMIA_API_KEY=token, PYTHONUNBUFFERED="1")
        request = json.dumps({"entry_point": str(algo.entry_point), "content_type": content_type,
                              "data": payload, "result_file": result_file}).encode()
        started = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "algofs_jupyter.server.algorithm_runner",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            cwd=str(algo.directory), env=env, start_new_session=True,
        )
        self.running.add(proc)
        try:
            try:
                stdout, stderr = await asyncio.wait_for(proc.communicate(request), timeout)
            except asyncio.TimeoutError:
                self._kill(proc)
                await proc.wait()
                return CallOutcome(time.monotonic() - started, "", error={
                    "message": f"algorithm timed out after {timeout:g} seconds",
                    "stacktrace": "", "error_type": "AlgorithmTimeoutError"})
            duration = time.monotonic() - started
            return self._outcome(result_file, duration, stdout, stderr, proc.returncode)
        finally:
            self.running.discard(proc)
            if proc.returncode is None:
                self._kill(proc)
            os.unlink(result_file)

    @staticmethod
    def _outcome(result_file: str, duration: float, stdout: bytes, stderr: bytes,
                 code: int | None) -> CallOutcome:
        text = stdout.decode("utf-8", "replace")
        try:
            with open(result_file, encoding="utf-8") as handle:
                outcome = json.load(handle)
        except (OSError, ValueError):
            detail = stderr.decode("utf-8", "replace")[-4000:]
            return CallOutcome(duration, text, error={
                "message": f"algorithm process exited with status {code} without a result",
                "stacktrace": detail, "error_type": "AlgorithmError"})
        if "error" in outcome:
            return CallOutcome(duration, text, error=outcome["error"])
        return CallOutcome(duration, text, outcome["result"], outcome["content_type"])

    @staticmethod
    def _kill(proc: asyncio.subprocess.Process) -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def kill_all(self) -> None:
        """Stop every running call (server shutdown)."""
        for proc in list(self.running):
            self._kill(proc)
