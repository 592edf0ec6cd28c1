"""Kernel-enforced caps per algorithm owner: one cgroup per owner, one leaf per worker (issue 22).

Why: ``RLIMIT_NPROC`` counts every task of a *uid*, and all workers of a non-root server share one uid
(user namespaces do not split the count), so one owner's fork bomb stopped every other owner's workers.
Per-process ``RLIMIT_AS`` let 64 processes of one owner take 64 GiB. A cgroup per owner caps the owner's
workers *together* (tasks, memory including their tmpfs ``/tmp``, CPU bandwidth); a leaf per worker lets
the pool kill everything a worker left behind (a double-forked, ``setsid`` daemon included) and tell
when nothing of it runs any more, before its uid is leased to another owner.

Layout (under the server's own cgroup, so a container's limits still hold above ours, or under a cgroup
delegated to it, ``--owner-caps-cgroup``)::

    <own or delegated>/algofs-serve-<pid>/<owner>/<worker>   (v1: one tree per pids, memory, cpu)

A non-root server on a v1 host uses a cgroup root delegated by hand: ``mkdir /sys/fs/cgroup/<c>/algofs`` and
``chown`` it (and its ``cgroup.procs``, ``tasks``) to the service account, for each of pids, memory, cpu
(deploy/jupyterhub_config.py does this); the kernel makes the service account the owner of everything
it creates below, and the limits root sets on ``algofs`` bound them all.

Drivers: ``CgroupV1`` (root on a v1 or hybrid host, this machine kind), ``CgroupV2`` (the unified
hierarchy: root, or a service with a delegated subtree such as systemd's ``Delegate=yes``) and
``NoCgroups`` (nothing enforceable here; ``reason`` says why). A child joins its leaf before it execs the
sandbox: :meth:`WorkerGroup.join_argv` prefixes the command with a tiny ``sh`` that writes its own pid
into each ``cgroup.procs`` (no ``preexec_fn``: the server has threads).

Concurrency: an owner's directories are made and removed on the pool's event loop (``WarmPool`` calls
``leaf``/``remove`` under its one lock); ``kill`` and ``empty`` only read and signal.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Protocol

from .watched_file import WatchedFile

log = logging.getLogger("algofs.serve")

CGROUP_ROOT = Path("/sys/fs/cgroup")
V1_CONTROLLERS = ("pids", "memory", "cpu")
_JOIN = 'for f do [ "$f" = -- ] && break; echo $$ > "$f" || exit 126; shift; done; shift; exec "$@"'


@dataclass(frozen=True)
class OwnerCaps:
    """What all the workers of one algorithm owner may use together; 0 = no cap of that kind."""

    processes: int = 64
    memory_bytes: int = 1 << 30  # RAM, their tmpfs /tmp included (tmpfs pages are charged to the writer)
    cpus: float = 1.0  # CPU bandwidth in cores

    def as_dict(self) -> dict:
        return {"processes": self.processes, "memory_bytes": self.memory_bytes, "cpus": self.cpus}


class CapsTable:
    """Default caps plus per-owner overrides from an operator's JSON file, re-read when it changes::

        {"default": {"processes": 64, "memory_bytes": 1073741824, "cpus": 1.0},
         "users": {"alice": {"memory_bytes": 4294967296}}}
    """

    def __init__(self, default: OwnerCaps | None = None, path: Path | None = None):
        self.default = default or OwnerCaps()
        self.path = path
        self._watch = WatchedFile(path) if path is not None else None
        self._users: dict[str, OwnerCaps] = {}
        self._file_default: OwnerCaps | None = None
        if self._watch is not None and self._watch.exists:
            self._file_default, self._users = self._load()  # a broken file at start: ValueError

    def _load(self) -> tuple[OwnerCaps, dict[str, OwnerCaps]]:
        assert self.path is not None
        data = json.loads(self.path.read_text(encoding="utf-8"))
        file_default = _caps(self.default, data.get("default", {}))
        return file_default, {name: _caps(file_default, spec) for name, spec in data.get("users", {}).items()}

    def reload(self) -> None:
        if self._watch is None or not self._watch.poll():
            return
        try:
            file_default, users = self._load() if self._watch.exists else (None, {})
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            log.warning("caps file %s not (re)loaded, keeping the previous caps: %s", self.path, exc)
            return
        self._watch.accept()
        self._file_default, self._users = file_default, users

    def for_owner(self, owner: str) -> OwnerCaps:
        self.reload()
        return self._users.get(owner) or self._file_default or self.default


def _caps(base: OwnerCaps, spec: dict) -> OwnerCaps:
    known = {f.name for f in fields(OwnerCaps)}
    unknown = set(spec) - known
    if unknown:
        raise ValueError(f"unknown caps {sorted(unknown)} (known: {sorted(known)})")
    for name, value in spec.items():
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{name} must be a number >= 0")
    values: dict = {k: (float(v) if k == "cpus" else int(v)) for k, v in spec.items()}
    return replace(base, **values)


class WorkerGroup(Protocol):
    def join_argv(self) -> list[str]:
        """A prefix for the worker's argv that moves it into its leaf before anything else runs."""
        ...

    def pids(self) -> list[int]: ...

    def kill(self, timeout: float = 2.0) -> bool:
        """SIGKILL everything in the leaf until it is empty; False if something survived ``timeout``."""
        ...

    def remove(self) -> None: ...


class CgroupTree(Protocol):
    kind: str  # "cgroup-v1", "cgroup-v2" or "none"
    reason: str  # why there are no caps (kind "none"), else ""

    def leaf(self, owner: str, worker: str, caps: OwnerCaps) -> WorkerGroup | None: ...

    def close(self) -> None: ...


def _write(path: Path, value: str) -> None:
    with open(path, "w") as handle:
        handle.write(value)


def _read_pids(procs: Path) -> list[int]:
    try:
        return [int(line) for line in procs.read_text().split()]
    except (FileNotFoundError, ValueError):
        return []


def _own_cgroup(controller: str | None) -> str | None:
    """This process's cgroup path for a v1 controller, or (``None``) its v2 path."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, names, path = line.split(":", 2)
        wanted = names == "" if controller is None else controller in names.split(",")
        if wanted:
            return path
    return None


@dataclass
class _Leaf:
    dirs: list[Path]  # the leaf in each hierarchy (one for v2)
    kill_file: Path | None = None  # v2's cgroup.kill

    def join_argv(self) -> list[str]:
        return ["/bin/sh", "-c", _JOIN, "algofs-join", *(str(d / "cgroup.procs") for d in self.dirs), "--"]

    def pids(self) -> list[int]:
        return sorted({pid for d in self.dirs for pid in _read_pids(d / "cgroup.procs")})

    def kill(self, timeout: float = 2.0) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            if self.kill_file is not None:
                with contextlib.suppress(OSError):
                    _write(self.kill_file, "1")
            pids = self.pids()
            if not pids:
                return True
            for pid in pids:  # a forking loop adds tasks while we kill: repeat until none is left
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)

    def remove(self) -> None:
        for directory in self.dirs:
            with contextlib.suppress(OSError):
                directory.rmdir()  # refused (EBUSY) while a task is inside: removed on a later try


class NoCgroups:
    kind = "none"

    def __init__(self, reason: str):
        self.reason = reason

    def leaf(self, owner: str, worker: str, caps: OwnerCaps) -> WorkerGroup | None:
        return None

    def close(self) -> None:
        pass


class CgroupV1:
    """Root on a v1 (or hybrid) host: one tree per controller under the server's own cgroup."""

    kind = "cgroup-v1"
    reason = ""

    def __init__(self, bases: dict[str, Path]):
        self.bases = bases  # controller -> <own>/algofs-serve-<pid>
        self._owners: dict[str, OwnerCaps] = {}

    @classmethod
    def create(cls, name: str, parent: str | None = None) -> CgroupV1:
        bases = {}
        for controller in V1_CONTROLLERS:
            own = parent or _own_cgroup(controller)
            if own is None:
                raise OSError(f"no v1 {controller} controller")
            base = CGROUP_ROOT / controller / own.lstrip("/") / name
            sweep_dead_servers(base.parent)
            base.mkdir(exist_ok=True)
            bases[controller] = base
        with contextlib.suppress(OSError):  # inherited as 1 on most hosts; needed for owner-wide memory
            _write(bases["memory"] / "memory.use_hierarchy", "1")
        return cls(bases)

    def _owner_dirs(self, owner: str, caps: OwnerCaps) -> None:
        if self._owners.get(owner) == caps and all((b / owner).is_dir() for b in self.bases.values()):
            return
        for base in self.bases.values():
            (base / owner).mkdir(exist_ok=True)
        pids, memory, cpu = (self.bases[c] / owner for c in V1_CONTROLLERS)
        _write(pids / "pids.max", str(caps.processes) if caps.processes else "max")
        limit = str(caps.memory_bytes) if caps.memory_bytes else "-1"
        _write(memory / "memory.limit_in_bytes", limit)
        if (memory / "memory.memsw.limit_in_bytes").exists():  # no escape into swap
            _write(memory / "memory.memsw.limit_in_bytes", limit)
        period = 100_000
        _write(cpu / "cpu.cfs_period_us", str(period))
        _write(cpu / "cpu.cfs_quota_us", str(int(caps.cpus * period)) if caps.cpus else "-1")
        self._owners[owner] = caps

    def leaf(self, owner: str, worker: str, caps: OwnerCaps) -> WorkerGroup:
        self._owner_dirs(owner, caps)
        dirs = []
        for base in self.bases.values():
            leaf = base / owner / worker
            leaf.mkdir(exist_ok=True)
            dirs.append(leaf)
        return _Leaf(dirs)

    def close(self) -> None:
        remove_tree(list(self.bases.values()))


class CgroupV2:
    """The unified hierarchy, as root or with a delegated subtree (systemd ``Delegate=yes``).

    v2 allows processes only in leaves, so the server first moves itself into ``<own>/server`` and then
    enables the controllers for its subtree. Not exercised on this machine kind (its v2 hierarchy has no
    controllers); the v1 driver carries the tests.
    """

    kind = "cgroup-v2"
    reason = ""

    def __init__(self, base: Path):
        self.base = base
        self._owners: dict[str, OwnerCaps] = {}

    @classmethod
    def create(cls, name: str, parent: str | None = None) -> CgroupV2:
        own = parent or _own_cgroup(None)
        if own is None or not (CGROUP_ROOT / "cgroup.controllers").exists():
            raise OSError("no cgroup v2 hierarchy at /sys/fs/cgroup")
        own_dir = CGROUP_ROOT / own.lstrip("/")
        available = set((own_dir / "cgroup.controllers").read_text().split())
        missing = {"pids", "memory", "cpu"} - available
        if missing:
            raise OSError(f"cgroup v2 controllers {sorted(missing)} are not delegated to {own_dir}")
        if parent is None and own_dir.name != "server":
            server = own_dir / "server"
            server.mkdir(exist_ok=True)
            for pid in _read_pids(own_dir / "cgroup.procs"):
                with contextlib.suppress(OSError):
                    _write(server / "cgroup.procs", str(pid))
        elif parent is None:
            own_dir = own_dir.parent
        _write(own_dir / "cgroup.subtree_control", "+pids +memory +cpu")
        base = own_dir / name
        sweep_dead_servers(own_dir)
        base.mkdir(exist_ok=True)
        _write(base / "cgroup.subtree_control", "+pids +memory +cpu")
        return cls(base)

    def leaf(self, owner: str, worker: str, caps: OwnerCaps) -> WorkerGroup:
        directory = self.base / owner
        if self._owners.get(owner) != caps or not directory.is_dir():
            directory.mkdir(exist_ok=True)
            _write(directory / "cgroup.subtree_control", "+pids +memory +cpu")
            _write(directory / "pids.max", str(caps.processes) if caps.processes else "max")
            _write(directory / "memory.max", str(caps.memory_bytes) if caps.memory_bytes else "max")
            with contextlib.suppress(OSError):
                _write(directory / "memory.swap.max", "0")
            quota = str(int(caps.cpus * 100_000)) if caps.cpus else "max"
            _write(directory / "cpu.max", f"{quota} 100000")
            self._owners[owner] = caps
        leaf = directory / worker
        leaf.mkdir(exist_ok=True)
        return _Leaf([leaf], leaf / "cgroup.kill")

    def close(self) -> None:
        remove_tree([self.base])


SERVER_PREFIX = "algofs-serve-"


def pid_alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def sweep_dead_servers(parent: Path) -> int:
    """Remove ``algofs-serve-<pid>`` trees under ``parent`` whose server is gone (killed before it could
    clean up: SIGKILL, a crash at start); each is emptied first. Returns how many."""
    removed = 0
    for entry in parent.glob(f"{SERVER_PREFIX}*") if parent.is_dir() else []:
        pid = entry.name[len(SERVER_PREFIX):]
        if pid.isdigit() and not pid_alive(int(pid)) and entry.is_dir():
            remove_tree([entry])
            removed += not entry.exists()
    return removed


def remove_tree(bases: list[Path]) -> None:
    """Remove leaves, then owners, then the bases; each rmdir fails harmlessly while a task is inside."""
    for base in bases:
        for owner in [p for p in base.iterdir() if p.is_dir()] if base.is_dir() else []:
            for leaf in [p for p in owner.iterdir() if p.is_dir()]:
                _Leaf([leaf]).kill(timeout=1.0)
                with contextlib.suppress(OSError):
                    leaf.rmdir()
            with contextlib.suppress(OSError):
                owner.rmdir()
        with contextlib.suppress(OSError):
            base.rmdir()


def open_cgroups(mode: str = "auto", parent: str | None = None) -> CgroupTree:
    """The best driver here: ``auto`` tries v2 then v1; ``none`` turns caps off. ``parent``: a cgroup path
    (relative to each hierarchy's root) delegated to this server, instead of its own cgroup."""
    if mode == "none":
        return NoCgroups("turned off (--owner-caps none)")
    name = f"{SERVER_PREFIX}{os.getpid()}"
    errors = []
    for driver in (CgroupV2, CgroupV1):
        try:
            return driver.create(name, parent)
        except (OSError, ValueError) as exc:
            errors.append(f"{driver.kind}: {exc}")
    return NoCgroups("no cgroup this server may manage (" + "; ".join(errors) + "): run it as root, or "
                     "delegate a cgroup to it (--owner-caps-cgroup; systemd Delegate=yes on cgroup v2)")


def delegate_v1(name: str, uid: int, gid: int) -> bool:
    """As root on a v1 host: give ``name`` (in each of pids, memory, cpu) to a service account, for its
    ``--owner-caps-cgroup name``; what the account creates below it is its own. Returns False where there
    is no v1 hierarchy (on cgroup v2, delegate with systemd instead: docs/deploy.md)."""
    if not all((CGROUP_ROOT / c / "cgroup.procs").exists() for c in V1_CONTROLLERS):
        return False
    for controller in V1_CONTROLLERS:
        directory = CGROUP_ROOT / controller / name
        directory.mkdir(exist_ok=True)
        for path in (directory, directory / "cgroup.procs", directory / "tasks"):
            os.chown(path, uid, gid)
    return True
