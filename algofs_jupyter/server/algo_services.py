"""Everything the algorithm routes need, built once from the ``algofs serve`` options.

Kept out of ``app.py`` so the application assembly only adds these settings and routes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .algo_box import AlgorithmBox
from .algo_cgroups import CapsTable, OwnerCaps
from .algo_errors import ErrorLog
from .algo_limits import CallLimiter
from .algo_pool import PoolLimits, WarmPool
from .algo_registry import AlgorithmRegistry
from .algo_sandbox import SandboxPolicy
from .algo_secrets import SecretStore
from .algorithms import AlgorithmStore
from .executor import Executor


@dataclass
class AlgorithmOptions:
    executor: str = "local"  # "local" or "dask://HOST:PORT"
    sandbox: str = "auto"  # auto | bwrap | none
    max_calls_per_user: int = 8
    max_calls: int = 32
    pool: PoolLimits = field(default_factory=PoolLimits)
    secret_paths: tuple[Path, ...] = ()  # besides the root: the users file, logs, caps file
    worker_nice: int = 10  # SandboxPolicy.niceness
    owner_caps: OwnerCaps = field(default_factory=OwnerCaps)
    caps_file: Path | None = None
    cgroups: str = "auto"  # auto | none
    cgroup_parent: str | None = None  # a cgroup delegated to the server (algo_cgroups.py)
    scratch_bytes: int = SandboxPolicy.scratch_bytes
    multi_user: bool = True
    allow_unisolated: bool = False


def make_executor(options: AlgorithmOptions, box: AlgorithmBox) -> Executor:
    if options.executor.startswith("dask://"):
        from .algo_dask import DaskExecutor

        return DaskExecutor("tcp://" + options.executor[len("dask://"):], box)
    if options.executor not in ("", "local"):
        raise SystemExit(f"algofs serve: unknown executor {options.executor!r} (local or dask://HOST:PORT)")
    return WarmPool(box, options.pool)


def algorithm_settings(root: Path, options: AlgorithmOptions | None = None) -> dict:
    """Application settings: ``algorithms``, ``registry``, ``executor``, ``call_limiter``,
    ``algorithm_box``, ``algorithm_secrets``, ``algorithm_errors``."""
    options = options or AlgorithmOptions()
    secrets = tuple(p for p in (root, options.caps_file, *options.secret_paths) if p is not None)
    policy = SandboxPolicy(mode=options.sandbox, secret_paths=secrets, niceness=options.worker_nice,
                           scratch_bytes=options.scratch_bytes)
    box = AlgorithmBox(policy, CapsTable(options.owner_caps, options.caps_file), options.cgroups,
                       multi_user=options.multi_user, allow_unisolated=options.allow_unisolated,
                       cgroup_parent=options.cgroup_parent)
    store = AlgorithmStore(root)
    errors, secrets_store = ErrorLog(root), SecretStore(root)
    registry = AlgorithmRegistry(store, box, errors=errors)

    def secrets_for(owner: str, name: str) -> dict[str, str]:
        record = registry.record(owner, name)
        return secrets_store.environment(record["id"]) if record is not None else {}

    box.secrets_for = secrets_for
    return {
        "algorithms": store,
        "registry": registry,
        "executor": make_executor(options, box),
        "call_limiter": CallLimiter(options.max_calls_per_user, options.max_calls),
        "algorithm_box": box,
        "algorithm_secrets": secrets_store,
        "algorithm_errors": errors,
    }
