"""The Dask ``distributed`` executor: ``algofs serve --executor dask://HOST:PORT``.

Each call is a task that carries the algorithm's source files, so Dask workers on other machines need
no access to the server's disk. On the Dask worker the task hands the call to a :class:`WarmPool` that
lives in that worker process (its own event loop in a thread), so the warm-worker behaviour, the
sandbox, the per-call stdout and the timeout kill are the same code as the local executor. The server
waits a little longer than the call's timeout; if the Dask worker itself is lost, the call fails as a
timeout instead of hanging.

Isolation: the task runs in an :class:`~.algo_box.AlgorithmBox` of the Dask worker's own (sandbox, owner
caps, uids as that host allows), but with the host's network, since the API server is reached over TCP
there, and the server's own refusal (``algo_box.py``) is checked before any task is sent.

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

from .algo_box import AlgorithmBox
from .algo_cgroups import CapsTable, OwnerCaps
from .algo_pool import PoolLimits, WarmPool
from .algo_sandbox import SandboxPolicy
from .algorithms import ResolvedAlgorithm
from .executor import CallOutcome, CallRequest, timeout_outcome

#: Extra time for scheduling and transfer before the server gives up on a task.
GRACE_SECONDS = 30.0
MAX_SOURCE_CACHE = 256


class DaskExecutor:
    def __init__(self, address: str, box: AlgorithmBox, api_address: str = ""):
        self.address = address
        self.box = box  # its policy and caps travel with each task; its refusal holds here too
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
        if self.box.refusal:
            return CallOutcome(0.0, "", error={"message": self.box.refusal, "stacktrace": "",
                                               "error_type": "AlgorithmError"})
        algo = request.algo
        policy = dataclasses.asdict(self.box.policy) | {"secret_paths": []}  # paths of this host only
        task = {"owner": algo.owner, "name": algo.name, "version": algo.version,
                "files": self._files(algo.directory), "content_type": request.content_type,
                "data": request.data, "timeout": request.timeout, "token": request.token,
                "caller": request.caller, "api_address": self.api_address,
                "policy": policy, "caps": self.box.caps.for_owner(algo.owner).as_dict()}
        client = await self._dask()
        future = client.submit(run_on_dask_worker, task, pure=False)
        try:
            outcome = await asyncio.wait_for(future, request.timeout + GRACE_SECONDS)
        except asyncio.TimeoutError:
            await future.cancel()
            return timeout_outcome(request.timeout, time.monotonic() - started)
        except Exception as exc:  # a lost Dask worker or scheduler is a failed call
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


def _pool(policy: dict, caps: dict) -> tuple[asyncio.AbstractEventLoop, WarmPool]:
    global _worker_pool
    with _pool_lock:
        if _worker_pool is None:
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="algofs-warm-pool", daemon=True).start()
            sandbox = SandboxPolicy(**{**policy, "secret_paths": ()})
            box = AlgorithmBox(sandbox, CapsTable(OwnerCaps(**caps)), multi_user=False)
            _worker_pool = (loop, WarmPool(box, PoolLimits(per_algorithm=2, per_user=4, total=4)))
        return _worker_pool


def _materialise(files: dict[str, bytes], base: Path) -> tuple[Path, str]:
    """The task's files under ``base`` (the box's private runtime directory: no shared, guessable path)."""
    digest = hashlib.sha256()
    for name, content in sorted(files.items()):
        digest.update(name.encode() + b"\0" + content + b"\0")
    key = digest.hexdigest()[:32]
    base.mkdir(mode=0o700, exist_ok=True)
    directory = base / key
    if not (directory / "algorithm.py").exists():
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=base))
        for name, content in files.items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_bytes(content)
        try:
            tmp.rename(directory)
        except OSError:
            pass  # staged by another task first
    return directory, key


def run_on_dask_worker(task: dict) -> dict:
    """The Dask task: run one call in this worker process's warm pool; returns a plain dict."""
    loop, pool = _pool(task["policy"], task["caps"])
    pool.api_address = task["api_address"]
    directory, key = _materialise(task["files"], pool.box.runtime / "sources")
    algo = ResolvedAlgorithm(task["owner"], task["name"], f"{task['version']}@{key[:12]}", directory)
    request = CallRequest(algo, task["content_type"], task["data"], task["timeout"], task["token"],
                          task["caller"], network=True)  # the API is reached over TCP from here
    outcome = asyncio.run_coroutine_threadsafe(pool.call(request), loop).result()
    return {"stdout": outcome.stdout, "result": outcome.result, "content_type": outcome.content_type,
            "error": outcome.error}


def worker_pool_stats() -> dict:
    """For tests: what the pool inside this Dask worker did (``client.run(worker_pool_stats)``)."""
    return _worker_pool[1].stats() if _worker_pool is not None else {}
