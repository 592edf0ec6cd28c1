"""Everything the algorithm routes need, built once from the ``algofs serve`` options.

Kept out of ``app.py`` so the application assembly only adds these settings and routes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .algo_limits import CallLimiter
from .algo_pool import PoolLimits, WarmPool
from .algo_registry import AlgorithmRegistry
from .algo_sandbox import SandboxPolicy
from .algorithms import AlgorithmStore
from .executor import Executor


@dataclass
class AlgorithmOptions:
    executor: str = "local"  # "local" or "dask://HOST:PORT"
    sandbox: str = "auto"  # auto | bwrap | none
    max_calls_per_user: int = 8
    max_calls: int = 32
    pool: PoolLimits = field(default_factory=PoolLimits)
    hidden_paths: tuple[Path, ...] = ()
    worker_nice: int = 10  # SandboxPolicy.niceness


def make_executor(options: AlgorithmOptions, policy: SandboxPolicy) -> Executor:
    if options.executor.startswith("dask://"):
        from .algo_dask import DaskExecutor

        return DaskExecutor("tcp://" + options.executor[len("dask://"):], policy)
    if options.executor not in ("", "local"):
        raise SystemExit(f"algofs serve: unknown executor {options.executor!r} (local or dask://HOST:PORT)")
    return WarmPool(policy, options.pool)


def algorithm_settings(root: Path, options: AlgorithmOptions | None = None) -> dict:
    """Application settings: ``algorithms``, ``registry``, ``executor``, ``call_limiter``."""
    options = options or AlgorithmOptions()
    policy = SandboxPolicy(mode=options.sandbox, hidden_paths=(root, *options.hidden_paths),
                           niceness=options.worker_nice)
    store = AlgorithmStore(root)
    return {
        "algorithms": store,
        "registry": AlgorithmRegistry(store, policy, build_slot=options.pool.total),
        "executor": make_executor(options, policy),
        "call_limiter": CallLimiter(options.max_calls_per_user, options.max_calls),
    }
