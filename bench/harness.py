"""The bench harness every scenario shares: where results go, rows and their timing, whole-file reads and
small-file writes, CPU of a process, FUSE daemons started and unmounted (free ports come from
``algofs_jupyter.testing.ports``).

The scenarios (``run.py``: the filesystem, ``small_files.py``, ``writes.py``) import this module and
nothing of each other; each writes its own report (``results/<scenario>.md``)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import requests

from algofs_jupyter.mount.mount_table import entry_at
from algofs_jupyter.supervise import ChildProcess

RESULTS = Path(__file__).resolve().parent / "results"
#: The user and collection whose data a scenario's ``algofs serve`` holds.
USER, COLLECTION = "bench", "bench"
MiB = 1 << 20
READ_BUFFER = MiB
GiB = 1 << 30


# ------------------------------------------------------------------------------------------ results
@dataclass
class Row:
    scenario: str
    system: str
    seconds: float | None
    value: float | None = None  # MB/s for reads, None otherwise
    note: str = ""


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    facts: dict[str, object] = field(default_factory=dict)

    def add(self, scenario: str, system: str, seconds: float | None, nbytes: int | None = None,
            note: str = "") -> None:
        value = nbytes / seconds / 1e6 if nbytes and seconds else None
        self.rows.append(Row(scenario, system, seconds, value, note))
        shown = "failed" if seconds is None else f"{seconds:.3f} s" + (f", {value:.0f} MB/s" if value else "")
        print(f"  {scenario:<28} {system:<22} {shown} {note}", flush=True)

    def get(self, scenario: str, system: str) -> Row | None:
        return next((r for r in self.rows if r.scenario == scenario and r.system == system), None)


def timed(action: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    out = action()
    return time.perf_counter() - start, out


def attempt(results: Results, scenario: str, system: str, action: Callable[[], tuple[float, int | None]],
            note: str = "") -> None:
    """Run one measurement; a failure is recorded, not fatal (a broken peer must not hide the others)."""
    try:
        seconds, nbytes = action()
        results.add(scenario, system, seconds, nbytes, note)
    except Exception as exc:  # reported in the table
        results.add(scenario, system, None, None, f"{note} ({type(exc).__name__}: {exc})".strip())

# ------------------------------------------------------------------------------------ measurements
def read_whole(path: Path) -> tuple[float, int]:
    buffer = bytearray(READ_BUFFER)
    view = memoryview(buffer)

    def run() -> int:
        total = 0
        with open(path, "rb", buffering=0) as handle:
            while count := handle.readinto(view):
                total += count
        return total

    seconds, total = timed(run)
    return seconds, total


def process_cpu(pid: int | None) -> float:
    """User + system CPU seconds of a live process, all its threads (0 when unknown)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ls_l(directory: Path, expected: int, timeout: float) -> tuple[float, None]:
    seconds, proc = timed(lambda: subprocess.run(["ls", "-l", str(directory)], capture_output=True,
                                                 text=True, timeout=timeout))
    lines = [ln for ln in proc.stdout.splitlines() if not ln.startswith("total")]
    if proc.returncode != 0 or len(lines) != expected:
        raise RuntimeError(f"ls -l rc={proc.returncode}, {len(lines)} entries: {proc.stderr[-200:]}")
    return seconds, None


def write_small_files(directory: Path, count: int) -> tuple[float, int]:
    directory.mkdir(parents=True, exist_ok=True)
    payload = os.urandom(1024)

    def run() -> None:
        for index in range(count):
            with open(directory / f"w{index:05d}.txt", "wb") as handle:
                handle.write(payload)

    seconds, _ = timed(run)
    return seconds, None


# ------------------------------------------------------------------------------------ infrastructure
def mounted(mountpoint: Path) -> bool:
    """Any file system (algofs, rclone, fsspec's) at ``mountpoint``."""
    return entry_at(mountpoint) is not None


def unmount(mountpoint: Path) -> None:
    if mounted(mountpoint):
        if subprocess.run(["fusermount3", "-u", str(mountpoint)], capture_output=True).returncode:
            subprocess.run(["fusermount3", "-uz", str(mountpoint)], capture_output=True)


@contextmanager
def fuse_child(command: list[str], mountpoint: Path, env: dict[str, str],
               log: Path) -> Iterator[ChildProcess]:
    """A foreground FUSE daemon; unmounted and stopped on exit, whatever happened."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    child = ChildProcess(command[0], log)
    child.spawn(command, env)
    try:
        child.wait_ready(lambda: mounted(mountpoint), 30)
        yield child
    finally:
        unmount(mountpoint)
        child.stop(term_timeout=15)
        unmount(mountpoint)

def http_ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code < 500
    except requests.RequestException:
        return False


@contextmanager
def source_tree(source: str) -> Iterator[None]:
    """A daemon started inside runs the ``algofs_jupyter`` of ``source`` (a checkout), when given."""
    if not source:
        yield
        return
    before, cwd = os.environ.get("PYTHONPATH"), os.getcwd()
    os.environ["PYTHONPATH"] = source
    os.chdir(source)  # ``python -m`` puts the working directory first on sys.path
    try:
        yield
    finally:
        os.chdir(cwd)
        if before is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = before
