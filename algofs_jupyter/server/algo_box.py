"""The box every algorithm worker and build runs in: sandbox, owner's uid, owner's cgroup, staged code.

One object, built once per server from the options, that the pool (``algo_pool.py``) and the build step
(``algo_registry.py``) ask for a :class:`Launch` and hand it back with :meth:`AlgorithmBox.finish` once the
process is gone. It also decides whether this server may run other people's code at all: a server with
several users runs algorithms only where the sandbox *and* the owner caps are enforced by the kernel,
unless the operator says otherwise (``--allow-unisolated-algorithms``); :attr:`refusal` says why not, at
start (log) and in ``/healthz``.

What goes where: the sandbox's command line in ``algo_sandbox.py``, the staged code in
``algo_staging.py``, the caps in ``algo_cgroups.py``, the uids in ``algo_uids.py``.

Concurrency: ``prepare`` and ``finish`` block (staging, cgroup files, /proc scans) and run in threads;
the uid leases take their own lock, cgroup directories are per worker.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..private_dirs import fresh_private_dir, runtime_base
from .algo_cgroups import SERVER_PREFIX, CapsTable, CgroupTree, WorkerGroup, open_cgroups, pid_alive
from .algo_sandbox import LaunchSpec, SandboxPolicy, bwrap_works, launch_spec
from .algo_staging import CodeStage
from .algo_uids import UidLeases, running_as_root

log = logging.getLogger("algofs.serve")


def sweep_dead_runtimes() -> int:
    """Remove runtime directories of ours (``algofs-serve-<pid>-*``, owned by this uid, not links) whose
    server is gone: a server killed with SIGKILL leaves its staged code behind. Returns how many."""
    removed = 0
    for entry in runtime_base().glob(f"{SERVER_PREFIX}*-*"):
        pid = entry.name[len(SERVER_PREFIX):].split("-", 1)[0]
        try:
            info = entry.lstat()
        except OSError:
            continue
        if (pid.isdigit() and not pid_alive(int(pid)) and stat.S_ISDIR(info.st_mode)
                and info.st_uid == os.geteuid()):
            shutil.rmtree(entry, ignore_errors=True)
            removed += 1
    return removed


@dataclass
class Launch:
    spec: LaunchSpec
    owner: str
    group: WorkerGroup | None  # the worker's cgroup leaf, None without caps
    uid: int | None  # the owner's leased uid (root servers)

    @property
    def argv(self) -> list[str]:
        """The command, moved into its cgroup leaf first when there is one."""
        return [*self.group.join_argv(), *self.spec.argv] if self.group is not None else self.spec.argv


class AlgorithmBox:
    def __init__(self, policy: SandboxPolicy, caps: CapsTable, cgroups: str = "auto", multi_user: bool = True,
                 allow_unisolated: bool = False, api_address: str = "", cgroup_parent: str | None = None):
        self.policy = policy
        self.caps = caps
        self.api_address = api_address
        root = running_as_root()
        sweep_dead_runtimes()
        self.runtime = fresh_private_dir(f"{SERVER_PREFIX}{os.getpid()}-", mode=0o711 if root else 0o700)
        self.stage = CodeStage(self.runtime, shared_with_other_uids=root)
        self.api_socket: Path | None = None  # set by the app once it listens there (bind_api_socket)
        #: (owner, algorithm) -> the algorithm's secrets as environment variables (algo_secrets.py)
        self.secrets_for: Callable[[str, str], dict[str, str]] | None = None
        self.uids = UidLeases(policy.base_uid, policy.uid_count) if root else None
        self.cgroups: CgroupTree = open_cgroups(cgroups, cgroup_parent)
        probe_uid = policy.base_uid if root else None
        self.sandboxed = policy.mode == "bwrap" or (policy.mode == "auto" and bwrap_works(probe_uid))
        self.sandbox_reason = "" if self.sandboxed else (
            "turned off (--sandbox none)" if policy.mode == "none" else
            "bubblewrap is missing or cannot make namespaces here (install bubblewrap; allow unprivileged "
            "user namespaces)")
        self.multi_user = multi_user
        self.allow_unisolated = allow_unisolated
        self.refusal = self._refusal()
        self._log_state()

    def _missing(self) -> list[str]:
        missing = []
        if not self.sandboxed:
            missing.append(f"no sandbox: {self.sandbox_reason}")
        if self.cgroups.kind == "none":
            missing.append(f"no per-owner caps: {self.cgroups.reason}")
        return missing

    def _refusal(self) -> str | None:
        missing = self._missing()
        if not missing or not self.multi_user or self.allow_unisolated:
            return None
        return ("this server has several users and cannot keep their algorithms apart (" + "; ".join(missing)
                + "); algorithm calls and builds are refused. An operator who accepts that starts it with "
                  "--allow-unisolated-algorithms (docs/deploy.md)")

    def _log_state(self) -> None:
        if self.refusal:
            log.error("algofs serve: %s", self.refusal)
        elif self._missing():
            log.warning("algofs serve: algorithms run without full isolation: %s", "; ".join(self._missing()))

    def report(self) -> dict:
        """For ``/healthz``'s details: what isolates algorithms here, and whether they run at all."""
        return {"sandbox": "bwrap" if self.sandboxed else "none", "sandbox_reason": self.sandbox_reason,
                "owner_caps": self.cgroups.kind, "owner_caps_reason": self.cgroups.reason,
                "default_caps": self.caps.default.as_dict(), "scratch_bytes": self.policy.scratch_bytes,
                "per_owner_uids": self.uids is not None, "multi_user": self.multi_user,
                "algorithms": "refused" if self.refusal else "enabled", "refusal": self.refusal or ""}

    def bind_api_socket(self) -> socket.socket:
        """The Unix socket the box forwards ``ALGORITHMIA_API`` to (workers have no other network)."""
        from tornado.netutil import bind_unix_socket

        path = self.runtime / "api.sock"
        # 0666 in a 0711 directory with an unguessable name: reachable by the leased uids that bind it into
        # their box; local accounts can reach the same API on its TCP port anyway, so it adds no access.
        sock = bind_unix_socket(str(path), mode=0o666)
        self.api_socket = path
        return sock

    def prepare(self, owner: str, worker: str, directory: Path, network: bool = False,
                check: bool = False, algorithm: str | None = None) -> Launch:
        """Stage the code, lease the owner's uid, make the worker's cgroup leaf, build the command.
        A run of ``owner/algorithm`` (not a build) gets that algorithm's secrets in its environment."""
        secrets = (self.secrets_for(owner, algorithm) if algorithm and not check and self.secrets_for
                   else None)
        staged = self.stage.stage(directory)
        uid = self.uids.lease(owner) if self.uids is not None else None
        try:
            group = self.cgroups.leaf(owner, worker, self.caps.for_owner(owner))
            spec = launch_spec(self.policy, staged, uid, self.api_socket, self.api_address, self.sandboxed,
                               network=network, check=check, secrets=secrets)
        except BaseException:
            if self.uids is not None:
                self.uids.release(owner)
            raise
        return Launch(spec, owner, group, uid)

    def finish(self, launch: Launch) -> None:
        """After the worker's process exited or was killed: kill whatever it left in its cgroup leaf,
        remove the leaf, give the uid back (reused by another owner only once no process of it is left)."""
        if launch.group is not None:
            if not launch.group.kill():
                log.error("algorithm worker of %s left processes that do not die", launch.owner)
            launch.group.remove()
        if launch.uid is not None and self.uids is not None:
            self.uids.release(launch.owner)

    def close(self) -> None:
        self.cgroups.close()
        shutil.rmtree(self.runtime, ignore_errors=True)
