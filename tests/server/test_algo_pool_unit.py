"""The warm pool driven directly on one event loop, where the order of events is exact."""

from __future__ import annotations

import asyncio

from algofs_jupyter.server.algo_pool import PoolLimits, WarmPool
from algofs_jupyter.server.algo_sandbox import SandboxPolicy
from algofs_jupyter.server.algorithms import ResolvedAlgorithm
from algofs_jupyter.server.executor import CallRequest

SLEEPER = """
import os, time

def apply(input):
    if input == "sleep":
        time.sleep(30)
    return os.getpid()
"""


def request(algo: ResolvedAlgorithm, data: str, timeout: float) -> CallRequest:
    return CallRequest(algo=algo, content_type="text", data=data, timeout=timeout, token="t", caller="demo")


def test_a_worker_killed_on_timeout_is_never_handed_to_the_next_call(tmp_path):
    """The next call comes straight after the timeout, before the event loop has reaped the killed
    process: it must get a fresh worker, not the dead one (which answered "exited with status -9")."""
    directory = tmp_path / "sleeper"
    directory.mkdir()
    (directory / "algorithm.py").write_text(SLEEPER)
    algo = ResolvedAlgorithm("demo", "sleeper", "1.0.0", directory)

    async def scenario():
        pool = WarmPool(SandboxPolicy(mode="none"), PoolLimits(per_algorithm=1, per_user=1, total=1))
        try:
            first = await pool.call(request(algo, "x", 20))
            assert first.error is None, first.error
            timed_out = await pool.call(request(algo, "sleep", 0.5))
            assert "timed out" in timed_out.error["message"]
            after = await pool.call(request(algo, "x", 20))  # no await in between: not yet reaped
            assert after.error is None, after.error
            assert after.result != first.result  # a fresh process
            return pool.started_workers
        finally:
            await pool.close()

    assert asyncio.run(scenario()) == 2
