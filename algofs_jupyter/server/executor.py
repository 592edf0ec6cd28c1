"""The ``Executor`` interface between the Algorithm API and whatever runs the code.

Two engines implement it: :class:`~.algo_pool.WarmPool` (local long-lived workers, the default) and
:class:`~.algo_dask.DaskExecutor` (``algofs serve --executor dask://HOST:PORT``). A call carries the
per-call token that code inside the algorithm uses as ``ALGORITHMIA_API_KEY``; it travels on the
worker's stdin, never in an environment or argv another process could read.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Protocol

from .algorithms import ResolvedAlgorithm


@dataclass
class CallOutcome:
    duration: float
    stdout: str
    result: object = None
    content_type: str = "void"
    error: dict | None = None


@dataclass(frozen=True)
class CallRequest:
    algo: ResolvedAlgorithm
    content_type: str  # text | json | binary
    data: object  # binary already base64-encoded
    timeout: float
    token: str
    caller: str
    network: bool = False  # the algorithm's network_access is "full": its box shares the host's network

    def line(self, cpu_seconds: float) -> bytes:
        """The runner protocol's request line (contract §5.3)."""
        import json

        return (json.dumps({"content_type": self.content_type, "data": self.data, "api_key": self.token,
                            "cpu_seconds": cpu_seconds}) + "\n").encode()


def encode_payload(content_type: str, data: object) -> object:
    return base64.b64encode(data).decode("ascii") if content_type == "binary" else data  # type: ignore[arg-type]


def outcome_from_reply(reply: dict, duration: float) -> CallOutcome:
    """A runner reply line → outcome."""
    stdout = reply.get("stdout", "")
    if "error" in reply:
        return CallOutcome(duration, stdout, error=reply["error"])
    content_type = reply.get("metadata", {}).get("content_type", "json")
    return CallOutcome(duration, stdout, reply.get("result"), content_type)


def timeout_outcome(timeout: float, duration: float) -> CallOutcome:
    return CallOutcome(duration, "", error={"message": f"algorithm timed out after {timeout:g} seconds",
                                            "stacktrace": "", "error_type": "AlgorithmTimeoutError"})


def crash_outcome(code: int | None, stderr: str, duration: float) -> CallOutcome:
    return CallOutcome(duration, "", error={
        "message": f"algorithm process exited with status {code} without a result",
        "stacktrace": stderr[-4000:], "error_type": "AlgorithmError"})


class Executor(Protocol):
    """Runs calls; every failure (timeout, crash, load error) comes back as an outcome, never raised."""

    api_address: str

    async def call(self, request: CallRequest) -> CallOutcome: ...

    async def close(self) -> None:
        """Stop every worker (server shutdown)."""
        ...
