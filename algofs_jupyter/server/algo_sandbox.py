"""How a worker process is started: which Python, which uid, which sandbox, which resource limits.

Why (issue 15): algorithms ran with the server's uid and read ``ALGOFS_SERVE_API_KEY`` from
``/proc/<ppid>/environ`` and the users file. Measured on this machine kind (shared/notes/scale.md §c):

- bubblewrap run *as root* keeps real uid 0 (root's 0600 files stay readable, RLIMIT_NPROC is void),
  so a root server first drops to an unprivileged uid, one per pool slot (RLIMIT_NPROC counts per uid),
  and that uid starts ``bwrap`` through an unprivileged user namespace.
- bwrap's own PID 1 keeps the caller's environment, so bwrap is started with an empty environment and
  nothing secret goes into argv or ``--setenv``; per-call tokens travel on the worker's stdin.
- The sandbox sees ``/`` read-only, with the server root (data of every user, the users file, the ready
  file) and any outside users file masked, a private ``/tmp``, ``/proc`` of a new PID namespace (the
  server's environ is not visible) and a copy of the algorithm at ``/run/algofs/algo``. The network is
  shared: code inside an algorithm calls this server with its per-call token.
- Limits are set by ``prlimit`` before bwrap: address space, CPU time, processes, file size.
- Workers run ``nice``d (``niceness``, default 10): on a 2-core box busy algorithms otherwise starve the
  API server itself (bench/serve_load.py saw /healthz over 100 ms); a niced worker still gets the CPU
  whenever the server does not want it.

Without bwrap (or where user namespaces are refused) the worker runs as a plain child with the same
rlimits (and, under root, the slot uid): no weaker than the per-call processes it replaces.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

RUNNER = Path(__file__).with_name("algorithm_runner.py")
SANDBOX_STAGE = "/run/algofs"  # under a private tmpfs /run: the read-only / has no room for mount points
SANDBOX_RUNNER = f"{SANDBOX_STAGE}/algorithm_runner.py"
SANDBOX_ALGO = f"{SANDBOX_STAGE}/algo"
SYSTEM_PYTHON = "/usr/bin/python3"


@dataclass(frozen=True)
class SandboxPolicy:
    """Resource limits and isolation of every worker; ``mode`` is ``auto``, ``bwrap`` or ``none``."""

    mode: str = "auto"
    memory_bytes: int = 1 << 30
    cpu_seconds: int = 3600  # hard cap over a worker's life; each call also gets its own soft budget
    nproc: int = 64
    file_size_bytes: int = 256 << 20
    base_uid: int = 61000
    niceness: int = 10  # added to the server's own; 0 leaves workers at the server's priority
    hidden_paths: tuple[Path, ...] = field(default_factory=tuple)


@dataclass
class LaunchSpec:
    argv: list[str]
    env: dict[str, str]
    cwd: str
    user: int | None = None
    sandboxed: bool = False
    argv_switches_user: bool = False  # argv starts with setpriv, which drops to ``user`` itself


@functools.cache  # one entry per sandbox slot: a cache of 4 re-probed on most starts of 8 slots
def bwrap_works(as_uid: int | None) -> bool:
    """One probe per uid: is there a bwrap that can make its namespaces here?"""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return False
    extra: dict = {"user": as_uid, "group": as_uid, "extra_groups": []} if as_uid is not None else {}
    try:
        probe = [bwrap, "--unshare-all", "--share-net", "--ro-bind", "/", "/", "--proc", "/proc",
                 "--dev", "/dev", "true"]
        done = subprocess.run(probe, env={}, capture_output=True, timeout=10, **extra)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def stage_root() -> Path:
    """Where code is copied for workers: a 0711 directory another uid can traverse but not list."""
    root = Path(tempfile.gettempdir()) / f"algofs-code-{os.geteuid()}"
    root.mkdir(mode=0o711, exist_ok=True)
    os.chmod(root, 0o711)
    return root


#: A staged copy unused (no worker started from it) for this long is removed; workers are reaped when
#: idle and replaced on a new version long before, so no live worker still reads from such a copy.
STALE_CODE_SECONDS = 7 * 86400
#: At most one sweep of stale copies per this many seconds (each stage_code call would otherwise list).
PRUNE_INTERVAL_SECONDS = 3600.0
_last_prune = [float("-inf")]


def prune_stale_code(now: float | None = None) -> int:
    """Remove staged copies not used for ``STALE_CODE_SECONDS`` (every publish leaves one); returns how
    many. Without this every version ever run kept a copy under /tmp for the life of the machine."""
    now = time.time() if now is None else now
    removed = 0
    for entry in stage_root().iterdir():
        marker = entry / ".complete"
        try:
            stale = now - marker.stat().st_mtime > STALE_CODE_SECONDS
        except FileNotFoundError:  # a staging in progress, or a copy without marker
            stale = entry.name.startswith(".staging-") and now - entry.stat().st_mtime > STALE_CODE_SECONDS
        if stale:
            shutil.rmtree(entry, ignore_errors=True)
            removed += 1
    return removed


def stage_code(directory: Path) -> Path:
    """A world-readable copy of an algorithm directory, named by its content's hash, plus the runner.

    The server root may sit below directories the slot uid cannot traverse (pytest's 0700 tmp, /root),
    and the copy cannot change under a running worker.
    """
    files = sorted(p for p in directory.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    digest = hashlib.sha256(RUNNER.read_bytes())
    for path in files:
        digest.update(str(path.relative_to(directory)).encode() + b"\0" + path.read_bytes() + b"\0")
    target = stage_root() / digest.hexdigest()[:32]
    if time.monotonic() - _last_prune[0] > PRUNE_INTERVAL_SECONDS:
        _last_prune[0] = time.monotonic()
        prune_stale_code()
    marker = target / ".complete"
    if marker.exists():
        with contextlib.suppress(OSError):
            os.utime(marker)  # in use: not stale
        return target
    tmp = Path(tempfile.mkdtemp(prefix=".staging-", dir=stage_root()))
    for path in files:
        dest = tmp / "algo" / path.relative_to(directory)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
    (tmp / "algo").mkdir(exist_ok=True)
    shutil.copyfile(RUNNER, tmp / "algorithm_runner.py")
    (tmp / ".complete").touch()
    for path in [tmp, *tmp.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    try:
        os.rename(tmp, target)
    except OSError:  # another worker staged the same code first
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _traversable(path: Path) -> bool:
    """Can any uid reach ``path`` (o+x on every parent)? Else a slot uid cannot see it to begin with."""
    for parent in path.parents:
        try:
            if not os.stat(parent).st_mode & 0o001:
                return False
        except OSError:
            return False
    return True


def _python_for(as_uid: int | None) -> tuple[str, list[str]]:
    """The interpreter a worker runs, and the site-packages it needs on PYTHONPATH.

    Our own interpreter may live where another uid cannot execute it (a pyenv under a 0700 /root), so
    a dropped uid uses the system Python of the same minor version, given our site-packages.
    """
    if as_uid is None:
        return sys.executable, []
    if Path(SYSTEM_PYTHON).exists():
        site = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
        return SYSTEM_PYTHON, site
    return sys.executable, []


def _under_private_dirs(python: str, site: list[str]) -> list[str]:
    """What the interpreter needs that the sandbox's private ``/tmp`` and ``/run`` would hide: the
    venv (``sys.prefix``) when it runs our own interpreter, and the site-packages on its PYTHONPATH."""
    needed = [*site, sys.prefix] if python == sys.executable else list(site)
    private = (("tmp",), ("run",))
    return sorted({p for p in needed if Path(p).is_dir() and Path(p).resolve().parts[1:2] in private})


def _limits(policy: SandboxPolicy) -> list[str]:
    nice = shutil.which("nice")
    lower = [nice, "-n", str(policy.niceness)] if nice and policy.niceness > 0 else []
    prlimit = shutil.which("prlimit")
    if prlimit is None:
        return lower
    return [*lower, prlimit, f"--as={policy.memory_bytes}", f"--cpu={policy.cpu_seconds}",
            f"--nproc={policy.nproc}", f"--fsize={policy.file_size_bytes}", "--"]


def _switch_user(as_uid: int | None) -> list[str]:
    """``setpriv`` drops to the slot uid in the child, so ``Popen`` needs no ``user=``: with one, Python
    cannot use vfork, and a fork of the (threaded) server copies its page tables and makes its pages
    copy-on-write until the child execs, which stalled the event loop under load."""
    setpriv = shutil.which("setpriv") if as_uid is not None else None
    if setpriv is None:
        return []
    return [setpriv, f"--reuid={as_uid}", f"--regid={as_uid}", "--clear-groups", "--"]


def launch_spec(policy: SandboxPolicy, directory: Path, slot: int, api_address: str,
                check: bool = False) -> LaunchSpec:
    """The command that starts the runner for the algorithm in ``directory`` (``check``: the build step)."""
    as_uid = policy.base_uid + slot if os.geteuid() == 0 else None
    python, site = _python_for(as_uid)
    staged = stage_code(directory)
    runner, code = staged / "algorithm_runner.py", staged / "algo"
    use_bwrap = policy.mode == "bwrap" or (policy.mode == "auto" and bwrap_works(as_uid))
    entry = "algorithm.py"
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1",
           "HOME": "/tmp", "LANG": "C.UTF-8", "ALGORITHMIA_API": api_address}
    if site:
        env["PYTHONPATH"] = os.pathsep.join(site)
    mode = ["--check"] if check else []
    switch = _switch_user(as_uid)
    if not use_bwrap:
        argv = [*switch, *_limits(policy), python, str(runner), *mode, str(code / entry)]
        return LaunchSpec(argv, env, str(code), as_uid, sandboxed=False, argv_switches_user=bool(switch))
    bwrap = shutil.which("bwrap") or "bwrap"
    argv = [*switch, *_limits(policy), bwrap, "--unshare-all", "--share-net", "--die-with-parent",
            "--new-session", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
            "--tmpfs", "/run"]
    for path in _under_private_dirs(python, site):  # a checkout or venv under /tmp stays importable
        argv += ["--ro-bind", path, path]
    for hidden in policy.hidden_paths:
        if as_uid is not None and not _traversable(hidden):
            continue
        if hidden.is_dir():
            argv += ["--tmpfs", str(hidden)]
        elif hidden.exists():
            argv += ["--ro-bind", "/dev/null", str(hidden)]
    argv += ["--ro-bind", str(staged), SANDBOX_STAGE, "--chdir", SANDBOX_ALGO, "--clearenv"]
    for name, value in env.items():
        argv += ["--setenv", name, value]
    argv += [python, SANDBOX_RUNNER, *mode, f"{SANDBOX_ALGO}/{entry}"]
    return LaunchSpec(argv, {}, "/", as_uid, sandboxed=True, argv_switches_user=bool(switch))


def popen_kwargs(spec: LaunchSpec) -> dict:
    """Keyword arguments for ``subprocess``/``asyncio`` process creation (no preexec_fn: we have threads)."""
    kwargs: dict = {"env": spec.env, "cwd": spec.cwd, "start_new_session": True}
    if spec.user is not None and not spec.argv_switches_user:
        kwargs.update(user=spec.user, group=spec.user, extra_groups=[])
    return kwargs
