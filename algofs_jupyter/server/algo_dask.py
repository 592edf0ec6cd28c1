"""The Dask ``distributed`` executor: ``algofs serve --executor dask://HOST:PORT``.

Each call is a task that carries the algorithm's source files, so Dask workers on other machines need
no access to the server's disk. On the Dask worker the task hands the call to a :class:`WarmPool` that
lives in that worker process (its own event loop in a thread), so the warm-worker behaviour, the
sandbox, the per-call stdout and the timeout kill are the same code as the local executor. The server
waits a little longer than the call's timeout; if the Dask worker itself is lost, the call fails as a
timeout instead of hanging.

Concurrency: on the server, used from its event loop only. On a Dask worker, ``_pool_lock`` (a
``threading.Lock``) guards the creation of the process-wide pool and its loop (``_worker_pool``); the
pool itself runs on that loop only.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from .algo_pool import PoolLimits, WarmPool
from .algo_sandbox import SandboxPolicy
from .algorithms import ResolvedAlgorithm
from .executor import CallOutcome, CallRequest, timeout_outcome

#: Extra time for scheduling and transfer before the server gives up on a task.
GRACE_SECONDS = 30.0
MAX_SOURCE_CACHE = 256


class DaskExecutor:
    def __init__(self, address: str, policy: SandboxPolicy, api_address: str = ""):
        self.address = address
        self.policy = policy
        self.api_address = api_address
        self._client: Any = None
        self._sources: dict[Path, dict[str, bytes]] = {}

    async def _dask(self) -> Any:
        if self._client is None:
            from distributed import Client

            self._client = await Client(self.address, asynchronous=True)
        return self._client

    def _files(self, directory: Path) -> dict[str, bytes]:
        """Published versions never change, so their files are read once."""
        files = self._sources.get(directory)
        if files is None:
            files = {p.relative_to(directory).as_posix(): p.read_bytes()
                     for p in sorted(directory.rglob("*")) if p.is_file() and "__pycache__" not in p.parts}
            if len(self._sources) >= MAX_SOURCE_CACHE:
                self._sources.pop(next(iter(self._sources)))
            self._sources[directory] = files
        return files

    async def call(self, request: CallRequest) -> CallOutcome:
        started = time.monotonic()
        algo = request.algo
        task = {"owner": algo.owner, "name": algo.name, "version": algo.version,
                "files": self._files(algo.directory), "content_type": request.content_type,
                "data": request.data, "timeout": request.timeout, "token": request.token,
                "caller": request.caller, "api_address": self.api_address,
                "policy": dataclasses.asdict(self.policy)}
        client = await self._dask()
        future = client.submit(run_on_dask_worker, task, pure=False)
        try:
            outcome = await asyncio.wait_for(future, request.timeout + GRACE_SECONDS)
        except asyncio.TimeoutError:
            await future.cancel()
            return timeout_outcome(request.timeout, time.monotonic() - started)
        except Exception as exc:  # noqa: BLE001 - a lost Dask worker or scheduler is a failed call
            return CallOutcome(time.monotonic() - started, "", error={
                "message": f"the Dask cluster could not run the call: {type(exc).__name__}", "stacktrace": "",
                "error_type": "AlgorithmError"})
        return CallOutcome(time.monotonic() - started, outcome["stdout"], outcome["result"],
                           outcome["content_type"], outcome["error"])

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None


# -- inside a Dask worker process --------------------------------------------------------------------

_pool_lock = threading.Lock()
_worker_pool: tuple[asyncio.AbstractEventLoop, WarmPool] | None = None


def _pool(policy: dict) -> tuple[asyncio.AbstractEventLoop, WarmPool]:
    global _worker_pool
    with _pool_lock:
        if _worker_pool is None:
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="algofs-warm-pool", daemon=True).start()
            fields = {k: v for k, v in policy.items() if k != "hidden_paths"}
            sandbox = SandboxPolicy(**fields, hidden_paths=tuple(Path(p) for p in policy["hidden_paths"]))
            _worker_pool = (loop, WarmPool(sandbox, PoolLimits(per_algorithm=2, per_user=4, total=4)))
        return _worker_pool


def _materialise(files: dict[str, bytes]) -> tuple[Path, str]:
    digest = hashlib.sha256()
    for name, content in sorted(files.items()):
        digest.update(name.encode() + b"\0" + content + b"\0")
    key = digest.hexdigest()[:32]
    directory = Path(tempfile.gettempdir()) / "algofs-dask-code" / key
    if not (directory / "algorithm.py").exists():
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=directory.parent if directory.parent.exists()
                                    else _mkdir(directory.parent)))
        for name, content in files.items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_bytes(content)
        try:
            tmp.rename(directory)
        except OSError:
            pass  # staged by another task first
    return directory, key


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def run_on_dask_worker(task: dict) -> dict:
    """The Dask task: run one call in this worker process's warm pool; returns a plain dict."""
    loop, pool = _pool(task["policy"])
    pool.api_address = task["api_address"]
    directory, key = _materialise(task["files"])
    algo = ResolvedAlgorithm(task["owner"], task["name"], f"{task['version']}@{key[:12]}", directory)
    request = CallRequest(algo, task["content_type"], task["data"], task["timeout"], task["token"],
                          task["caller"])
    outcome = asyncio.run_coroutine_threadsafe(pool.call(request), loop).result()
    return {"stdout": outcome.stdout, "result": outcome.result, "content_type": outcome.content_type,
            "error": outcome.error}


def worker_pool_stats() -> dict:
    """For tests: what the pool inside this Dask worker did (``client.run(worker_pool_stats)``)."""
    return _worker_pool[1].stats() if _worker_pool is not None else {}
