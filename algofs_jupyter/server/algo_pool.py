"""The local executor: warm, long-lived worker processes per algorithm version and caller.

A worker serves one caller only (issue 22): a warm process keeps module state, ``/tmp`` and whatever the
code stashed between calls, so one caller's token, input or files must never reach the next caller's
call; one user's repeated calls still find their worker warm. Every worker runs in the server's
:class:`~.algo_box.AlgorithmBox` (sandbox, the owner's uid and cgroup).

A call takes an idle worker of its version and caller, or starts one if the bounds allow (per algorithm
version, per algorithm owner, overall = the number of slots); when a bound is in the way an idle worker of
another version is evicted (least recently used), otherwise the call waits (within its own timeout) for a
worker to come back. A version that already has a worker evicts only workers idle for ``evict_after``:
evicting at once made two busy algorithms of one owner take each other's workers on every call
(bench/serve_load.py: 186 process starts in 30 s). Workers that time out or crash are killed and not
reused; workers of an algorithm are retired when it gets a new version; idle ones are reaped after
``idle_seconds``.

Concurrency: everything runs on the server's event loop (a worker's start hands its blocking parts to a
thread, ``algo_worker_process``).
Lock order: one lock only, ``_changed`` (an ``asyncio.Condition``). It guards ``_idle``, ``_workers``,
``_free_slots`` and ``_retired``; it is never held across a worker start or a call.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from dataclasses import dataclass

from .algo_box import AlgorithmBox
from .algo_worker_process import WorkerProcess, WorkerStartError
from .executor import CallOutcome, CallRequest, timeout_outcome

WorkerKey = tuple[str, str, str, str, bool]  # owner, name, version, caller, network access


@dataclass(frozen=True)
class PoolLimits:
    per_algorithm: int = 4
    per_user: int = 6
    total: int = 8
    idle_seconds: float = 300.0
    start_timeout: float = 30.0
    evict_after: float = 1.0  # idle seconds before a worker may make way for a version that has one
    starts_at_once: int = 2  # a burst of starts (a cold server under load) shares 2 cores with the server


class WarmPool:
    def __init__(self, box: AlgorithmBox, limits: PoolLimits | None = None):
        self.box = box
        self.limits = limits or PoolLimits()
        self._changed = asyncio.Condition()
        self._idle: dict[WorkerKey, list[WorkerProcess]] = {}
        self._workers: set[WorkerProcess] = set()  # idle, busy and starting
        self._free_slots: list[int] = list(range(self.limits.total))
        self._retired: set[WorkerProcess] = set()
        self._reaper: asyncio.Task | None = None
        self._starting = asyncio.Semaphore(self.limits.starts_at_once)
        self.started_workers = 0  # for tests and the bench: how many processes were ever started
        self._names = itertools.count()  # workers' cgroup leaves: never reused while one is swept

    @property
    def api_address(self) -> str:
        return self.box.api_address

    @api_address.setter
    def api_address(self, value: str) -> None:
        self.box.api_address = value

    # -- bookkeeping (caller holds _changed) ------------------------------------------------------
    def _count(self, key: WorkerKey | None = None, owner: str | None = None) -> int:
        return sum(1 for w in self._workers
                   if (key is None or w.key == key) and (owner is None or w.owner == owner))

    def _take_idle(self, key: WorkerKey) -> WorkerProcess | None:
        idle = self._idle.get(key, [])
        while idle:
            worker = idle.pop()
            if worker.alive:
                return worker
            self._forget(worker)
        return None

    def _forget(self, worker: WorkerProcess) -> None:
        if worker in self._workers:
            self._workers.discard(worker)
            self._free_slots.append(worker.slot)
        self._retired.discard(worker)
        if worker in self._idle.get(worker.key, []):
            self._idle[worker.key].remove(worker)
        worker.kill()

    def _evict_for(self, key: WorkerKey, owner: str) -> bool:
        """Make room for a worker of ``key`` by stopping the least recently used idle worker that is in the
        way: of the same owner if the owner is at its bound, of anyone if the pool is full."""
        if self._count(key=key) >= self.limits.per_algorithm:
            return False  # only a worker of this very version coming back helps
        candidates = [w for k, ws in self._idle.items() if k != key for w in ws]
        if self._count(key=key):  # its own workers come back: take only workers nobody is using
            settled = time.monotonic() - self.limits.evict_after
            candidates = [w for w in candidates if w.last_used <= settled]
        if self._count(owner=owner) >= self.limits.per_user:
            candidates = [w for w in candidates if w.owner == owner]
        elif self._free_slots:
            return False
        if not candidates:
            return False
        self._forget(min(candidates, key=lambda w: w.last_used))
        return True

    def _can_start(self, key: WorkerKey, owner: str) -> bool:
        return (bool(self._free_slots) and self._count(key=key) < self.limits.per_algorithm
                and self._count(owner=owner) < self.limits.per_user)

    # -- the Executor interface -------------------------------------------------------------------
    async def call(self, request: CallRequest) -> CallOutcome:
        started = time.monotonic()
        deadline = started + request.timeout
        self._ensure_reaper()
        if self.box.refusal:
            return CallOutcome(0.0, "", error={"message": self.box.refusal, "stacktrace": "",
                                               "error_type": "AlgorithmError"})
        key: WorkerKey = (request.algo.owner, request.algo.name, request.algo.version, request.caller,
                          request.network)
        try:
            worker = await self._acquire(key, request, deadline)
        except asyncio.TimeoutError:
            return timeout_outcome(request.timeout, time.monotonic() - started)
        except WorkerStartError as exc:
            return CallOutcome(time.monotonic() - started, "", error={
                "message": f"the algorithm's worker failed to start: {exc}", "stacktrace": "",
                "error_type": "AlgorithmError"})
        try:
            remaining = max(0.001, deadline - time.monotonic())
            outcome = await worker.call(request, remaining, cpu_seconds=request.timeout + 1)
            outcome.duration = time.monotonic() - started
            return outcome
        finally:
            await self._release(worker)

    async def _acquire(self, key: WorkerKey, request: CallRequest, deadline: float) -> WorkerProcess:
        async with self._changed:
            while True:
                worker = self._take_idle(key)
                if worker is not None:
                    return worker
                if self._can_start(key, key[0]):
                    slot = self._free_slots.pop(0)
                    worker = WorkerProcess(key, key[0], request.algo.directory, slot, self.box,
                                           network=request.network, name=f"w{next(self._names)}")
                    self._workers.add(worker)
                    break
                if self._evict_for(key, key[0]):
                    continue
                # woken by a release; at the latest after evict_after, when an idle worker may be taken
                wait = min(self.limits.evict_after, max(0.001, deadline - time.monotonic()))
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), wait)
                if time.monotonic() >= deadline:
                    raise asyncio.TimeoutError
        try:
            async with self._starting:
                await worker.start(min(self.limits.start_timeout, max(0.001, deadline - time.monotonic())))
            self.started_workers += 1
        except BaseException:
            async with self._changed:
                self._forget(worker)
                self._changed.notify_all()
            raise
        return worker

    async def _release(self, worker: WorkerProcess) -> None:
        async with self._changed:
            if worker.alive and worker not in self._retired and worker in self._workers:
                self._idle.setdefault(worker.key, []).append(worker)
            else:
                self._forget(worker)
            self._changed.notify_all()

    async def retire(self, owner: str, name: str) -> None:
        """A new version of ``owner/name`` was published: its workers are replaced on their next use."""
        async with self._changed:
            for worker in list(self._workers):
                if worker.key[:2] == (owner, name):
                    if worker in self._idle.get(worker.key, []):
                        self._forget(worker)
                    else:
                        self._retired.add(worker)
            self._changed.notify_all()

    def _ensure_reaper(self) -> None:
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.ensure_future(self._reap_forever())

    async def _reap_forever(self) -> None:
        interval = max(0.5, min(30.0, self.limits.idle_seconds / 4))
        while True:
            await asyncio.sleep(interval)
            await self.reap_idle()

    async def reap_idle(self) -> int:
        """Kill workers idle for longer than ``idle_seconds``; returns how many."""
        now = time.monotonic()
        async with self._changed:
            stale = [w for ws in self._idle.values() for w in ws
                     if now - w.last_used > self.limits.idle_seconds or not w.alive]
            for worker in stale:
                self._forget(worker)
            if stale:
                self._changed.notify_all()
        return len(stale)

    def stats(self) -> dict:
        return {"workers": len(self._workers), "idle": sum(len(ws) for ws in self._idle.values()),
                "started": self.started_workers, "free_slots": len(self._free_slots)}

    async def close(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        async with self._changed:
            workers = list(self._workers)
            for worker in workers:
                self._forget(worker)
        for worker in workers:
            await worker.stop()
