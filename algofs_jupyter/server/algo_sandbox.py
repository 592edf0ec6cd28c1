"""The command that starts a worker inside its box: an allow-list bubblewrap sandbox, rlimits, a uid.

Why an allow-list (issue 22): the sandbox used to bind ``/`` and mask the secrets it knew of (the server
root, the users file) with ``/dev/null``; the kernel drops such a mask when the file is replaced by
``rename(2)``, and anything new (the access log, a config) was visible anyway. Now the box's root is an
empty tmpfs holding only:

- ``/usr`` (and the ``/bin``, ``/lib``… links or binds of the host), a few named files of ``/etc``
  (the loader cache, Python's site config, time zone; DNS and CA files only with network access);
- the interpreter's own prefix and the site-packages the worker is given, when they live outside ``/usr``;
- the algorithm's staged copy and the runner at ``/run/algofs`` (read-only), the API socket at
  ``/run/algofs-api.sock``;
- a private ``/tmp`` capped at ``scratch_bytes`` (tmpfs: charged to the owner's memory cgroup too),
  ``/dev`` and the ``/proc`` of a new PID namespace.

No path that holds a secret of the server (its root, users file, logs, caps file) may be inside or above
anything bound: :func:`check_binds` refuses such a launch, whatever the files are called.

Namespaces: all of them (user, mount, PID, IPC, UTS, cgroup, network). The network namespace has only a
loopback; the runner forwards ``127.0.0.1:<port>`` inside it to the API socket, so code can call this
API server and nothing else (no other users' Jupyter servers, no storage server, no internet) unless the
algorithm's ``network_access`` is ``full``.

bwrap's own PID 1 keeps the caller's environment, so bwrap is started with an empty environment and
nothing secret goes into argv or ``--setenv``; per-call tokens travel on the worker's stdin. A root server
first drops to the owner's leased uid with ``setpriv`` (``algo_uids.py``); bwrap then builds its namespaces
unprivileged. Workers run ``nice``d: on a 2-core box busy algorithms otherwise starve the API server.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

SANDBOX_STAGE = "/run/algofs"  # under a private tmpfs /run
SANDBOX_RUNNER = f"{SANDBOX_STAGE}/algorithm_runner.py"
SANDBOX_ALGO = f"{SANDBOX_STAGE}/algo"
SANDBOX_API_SOCKET = "/run/algofs-api.sock"
SYSTEM_PYTHON = "/usr/bin/python3"
#: Files of /etc a Python worker needs; the network ones only with network access.
ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "alternatives",
             f"python{sys.version_info.major}.{sys.version_info.minor}", f"python{sys.version_info.major}")
ETC_NETWORK = ("resolv.conf", "hosts", "nsswitch.conf", "host.conf", "gai.conf", "ssl", "ca-certificates")
HOST_LINKS = ("bin", "lib", "lib32", "lib64", "libx32", "sbin")


@dataclass(frozen=True)
class SandboxPolicy:
    """Limits of every worker process and how it is isolated; ``mode`` is ``auto``, ``bwrap`` or ``none``.

    Owner-wide caps (tasks, memory, CPU bandwidth) are cgroups, ``algo_cgroups.OwnerCaps``; these are the
    per-process rlimits under them.
    """

    mode: str = "auto"
    memory_bytes: int = 1 << 30  # RLIMIT_AS of each process
    cpu_seconds: int = 3600  # RLIMIT_CPU over a worker's life; each call also gets its own soft budget
    nproc: int = 64  # RLIMIT_NPROC: only where the uid is the owner's own (root servers)
    file_size_bytes: int = 256 << 20
    scratch_bytes: int = 256 << 20  # the private /tmp
    base_uid: int = 61000  # root servers: owners' uids are leased from base_uid .. base_uid + uid_count - 1
    uid_count: int = 1000
    niceness: int = 10  # added to the server's own; 0 leaves workers at the server's priority
    secret_paths: tuple[Path, ...] = field(default_factory=tuple)


@dataclass
class LaunchSpec:
    argv: list[str]
    env: dict[str, str]
    cwd: str
    user: int | None = None
    sandboxed: bool = False


class UnsafeBind(RuntimeError):
    """A path the box would show contains (or is inside) one of the server's secrets."""


@functools.cache  # one probe per uid
def bwrap_works(as_uid: int | None) -> bool:
    """Can a bwrap here (run as ``as_uid``) make every namespace the box uses?"""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return False
    switch = _switch_user(as_uid)
    probe = [*switch, bwrap, "--unshare-all", "--die-with-parent", "--ro-bind", "/usr", "/usr",
             *_host_links(), "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "true"]
    try:
        done = subprocess.run(probe, env={}, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def python_for(as_uid: int | None) -> tuple[str, list[str]]:
    """The interpreter a worker runs, and the site-packages it needs on PYTHONPATH.

    Our own interpreter may live where another uid cannot execute it (a pyenv under a 0700 /root), so a
    leased uid uses the system Python of the same minor version, given our site-packages.
    """
    if as_uid is None or not Path(SYSTEM_PYTHON).exists():
        return sys.executable, []
    return SYSTEM_PYTHON, sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})


def _host_links() -> list[str]:
    """``/bin``, ``/lib``…: links into ``/usr`` on a merged-/usr host, directories elsewhere."""
    argv: list[str] = []
    for name in HOST_LINKS:
        path = Path("/") / name
        if path.is_symlink():
            argv += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            argv += ["--ro-bind", str(path), str(path)]
    return argv


def runtime_binds(python: str, site: list[str]) -> list[str]:
    """What the interpreter needs outside ``/usr``: its prefixes (a venv, a pyenv) and site-packages."""
    needed = {*site}
    if python != SYSTEM_PYTHON:
        needed.update({sys.prefix, sys.base_prefix, str(Path(python).resolve().parent.parent)})
    found = {str(Path(p).resolve()) for p in needed if Path(p).is_dir()}
    outside_usr = [p for p in found if not (p == "/usr" or p.startswith("/usr/"))]
    return sorted(p for p in outside_usr if not any(p.startswith(q + "/") for q in outside_usr))


def check_binds(sources: list[str], secrets: tuple[Path, ...]) -> None:
    """Refuse a box that would show a secret: no source may be a secret, hold one, or sit inside one."""
    for source in sources:
        shown = Path(source).resolve()
        for secret in secrets:
            hidden = secret.resolve()
            if shown == hidden or hidden.is_relative_to(shown) or shown.is_relative_to(hidden):
                raise UnsafeBind(f"the algorithm sandbox would show {shown}, which holds {hidden}: move the "
                                 "server's root, users file and logs out of the Python installation")


def _limits(policy: SandboxPolicy, per_owner_uid: bool) -> list[str]:
    nice = shutil.which("nice")
    lower = [nice, "-n", str(policy.niceness)] if nice and policy.niceness > 0 else []
    prlimit = shutil.which("prlimit")
    if prlimit is None:
        return lower
    # RLIMIT_NPROC counts per uid: where every owner shares the server's uid it would be a shared budget
    # that one owner can exhaust for all (issue 22, finding 3); the owner's cgroup caps tasks instead.
    nproc = [f"--nproc={policy.nproc}"] if per_owner_uid else []
    return [*lower, prlimit, f"--as={policy.memory_bytes}", f"--cpu={policy.cpu_seconds}", *nproc,
            f"--fsize={policy.file_size_bytes}", "--"]


def _switch_user(as_uid: int | None) -> list[str]:
    """``setpriv`` drops to the uid in the child, so ``Popen`` needs no ``user=``: with one, Python cannot
    use vfork, and a fork of the (threaded) server copies its page tables, which stalled the event loop."""
    setpriv = shutil.which("setpriv") if as_uid is not None else None
    if as_uid is not None and setpriv is None:
        raise RuntimeError("setpriv (util-linux) is needed to run workers under their own uid")
    return [] if as_uid is None else [setpriv, f"--reuid={as_uid}", f"--regid={as_uid}",  # type: ignore[list-item]
                                      "--clear-groups", "--"]


def launch_spec(policy: SandboxPolicy, staged: Path, as_uid: int | None, api_socket: Path | None,
                api_address: str, sandboxed: bool, network: bool = False, check: bool = False,
                secrets: dict[str, str] | None = None) -> LaunchSpec:
    """The command that starts the runner for the staged copy ``staged`` (``check``: the build step).

    ``secrets`` (the algorithm's, ``algo_secrets.py``) go into the process environment, never argv: in the
    box, bwrap is started with them as its whole environment and passes it on (no ``--clearenv``)."""
    python, site = python_for(as_uid)
    runner, code = staged / "algorithm_runner.py", staged / "algo"
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1",
           "HOME": "/tmp", "LANG": "C.UTF-8"}
    if site:
        env["PYTHONPATH"] = os.pathsep.join(site)
    mode = ["--check"] if check else []
    front = [*_switch_user(as_uid), *_limits(policy, per_owner_uid=as_uid is not None)]
    if not sandboxed:
        env["ALGORITHMIA_API"] = api_address
        argv = [*front, python, str(runner), *mode, str(code / "algorithm.py")]
        return LaunchSpec(argv, {**(secrets or {}), **env}, str(code), as_uid, sandboxed=False)
    binds = runtime_binds(python, site)
    check_binds([*binds, str(staged)], policy.secret_paths)
    # the private /tmp and /run first: binds that follow may land below them (a venv cloned under /tmp)
    argv = [*front, shutil.which("bwrap") or "bwrap", "--unshare-all", *(["--share-net"] if network else []),
            "--die-with-parent", "--new-session", "--dev", "/dev", "--proc", "/proc",
            "--size", str(policy.scratch_bytes), "--tmpfs", "/tmp", "--tmpfs", "/run",
            "--ro-bind", "/usr", "/usr", *_host_links()]
    for name in ETC_FILES + (ETC_NETWORK if network else ()):
        if (Path("/etc") / name).exists():
            argv += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
    for path in binds:
        argv += ["--ro-bind", path, path]
    argv += ["--ro-bind", str(staged), SANDBOX_STAGE]
    if api_socket is not None:
        argv += ["--ro-bind", str(api_socket), SANDBOX_API_SOCKET]
        env["ALGOFS_API_SOCKET"] = SANDBOX_API_SOCKET  # the runner forwards 127.0.0.1 to it
    else:
        env["ALGORITHMIA_API"] = api_address
    argv += ["--chdir", SANDBOX_ALGO, *([] if secrets else ["--clearenv"])]
    for name, value in env.items():
        argv += ["--setenv", name, value]
    argv += [python, SANDBOX_RUNNER, *mode, f"{SANDBOX_ALGO}/algorithm.py"]
    return LaunchSpec(argv, dict(secrets or {}), "/", as_uid, sandboxed=True)


def popen_kwargs(spec: LaunchSpec) -> dict:
    """Keyword arguments for ``subprocess``/``asyncio`` process creation (no preexec_fn: we have threads)."""
    return {"env": spec.env, "cwd": spec.cwd, "start_new_session": True}
