"""The warm pool driven directly on one event loop, where the order of events is exact."""

from __future__ import annotations

import asyncio
import os

from algofs_jupyter.server.algo_box import AlgorithmBox
from algofs_jupyter.server.algo_cgroups import CapsTable
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


def box(mode: str = "none") -> AlgorithmBox:
    """A box of this process's own (a single-user server's: it runs code even without caps)."""
    return AlgorithmBox(SandboxPolicy(mode=mode), CapsTable(), multi_user=False)


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
        pool = WarmPool(box(), PoolLimits(per_algorithm=1, per_user=1, total=1))
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
            pool.box.close()

    assert asyncio.run(scenario()) == 2


def test_two_busy_algorithms_of_one_owner_do_not_take_each_others_workers(tmp_path):
    """With the owner's bound reached, a call whose version already has a (busy) worker waits for it
    instead of evicting the other version's worker that was idle for a moment: evicting at once
    started a process on almost every call."""
    algos = []
    for name in ("first", "second"):
        directory = tmp_path / name
        directory.mkdir()
        (directory / "algorithm.py").write_text(SLEEPER + f"\n# {name}\n")
        algos.append(ResolvedAlgorithm("demo", name, "1.0.0", directory))

    async def scenario():
        pool = WarmPool(box(), PoolLimits(per_algorithm=2, per_user=2, total=4))
        try:
            async def caller(algo):
                for _ in range(5):
                    outcome = await pool.call(request(algo, "x", 60))
                    assert outcome.error is None, outcome.error
            await asyncio.gather(*(caller(algo) for algo in algos for _ in range(3)))
            return pool.started_workers
        finally:
            await pool.close()
            pool.box.close()

    assert asyncio.run(scenario()) <= 4  # 30 calls: at most one worker start per slot and version


def test_a_worker_start_leaves_the_event_loop_thread_free(tmp_path, monkeypatch):
    """Staging the code, the owner's uid and cgroup, and making the process happen in a thread: on the
    loop they stalled every other request for 30-60 ms per start under load."""
    import subprocess
    import threading

    directory = tmp_path / "who"
    directory.mkdir()
    (directory / "algorithm.py").write_text("import os\n\ndef apply(input):\n    return os.getuid()\n")
    algo = ResolvedAlgorithm("demo", "who", "1.0.0", directory)
    threads: dict[str, str] = {}
    real_prepare, real_popen = AlgorithmBox.prepare, subprocess.Popen

    def prepare(*args, **kwargs):
        threads["prepare"] = threading.current_thread().name
        return real_prepare(*args, **kwargs)

    def popen(*args, **kwargs):
        threads["Popen"] = threading.current_thread().name
        threads["Popen user"] = kwargs.get("user")
        return real_popen(*args, **kwargs)

    monkeypatch.setattr(AlgorithmBox, "prepare", prepare)
    monkeypatch.setattr(subprocess, "Popen", popen)

    async def scenario():
        pool = WarmPool(box("auto"), PoolLimits(per_algorithm=1, per_user=1, total=1))
        try:
            return threading.current_thread().name, await pool.call(request(algo, "x", 60))
        finally:
            await pool.close()
            pool.box.close()

    loop_thread, outcome = asyncio.run(scenario())
    assert outcome.error is None, outcome.error
    assert threads["prepare"] != loop_thread and threads["Popen"] != loop_thread
    if os.geteuid() == 0:  # dropped to the owner's uid by setpriv in the child, not by Popen (no vfork)
        policy = SandboxPolicy()
        assert policy.base_uid <= outcome.result < policy.base_uid + policy.uid_count
        assert threads["Popen user"] is None
