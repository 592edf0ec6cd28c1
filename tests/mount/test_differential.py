"""A differential property test: the same random file operations on a local directory and on the mount.

A Hypothesis ``RuleBasedStateMachine`` creates, writes at offsets, appends, truncates, renames files and
directories, makes and removes directories, unlinks, re-dates, reopens and reads, on both trees, and
asserts that every operation gives the same result or the same errno, and that both trees hold the same
names, kinds, sizes and bytes after each step (the approach JuiceFS runs in CI). The default suite runs
a bounded number of steps; ``-m slow`` runs many more.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from .conftest import Mounted

pytestmark = pytest.mark.fuse

NAMES = ["a", "b", "d1/a", "d1/b", "d2/a", "d1/d3/c"]
DIRS = ["d1", "d2", "d1/d3", "d2/d3"]
PATHS = st.sampled_from(NAMES + DIRS)
DATA = st.binary(max_size=3000)
OFFSETS = st.integers(min_value=0, max_value=5000)


def outcome(call, *args):
    """``("ok", value)`` or ``("errno", code)``: what each side is compared by."""
    try:
        return ("ok", call(*args))
    except OSError as exc:
        return ("errno", exc.errno)


def write_new(path: Path, data: bytes) -> int:
    with open(path, "wb") as handle:
        return handle.write(data)


def write_at(path: Path, offset: int, data: bytes) -> int:
    with open(path, "r+b") as handle:
        handle.seek(offset)
        return handle.write(data)


def append(path: Path, data: bytes) -> int:
    with open(path, "ab") as handle:
        return handle.write(data)


def reopen_twice(path: Path, first: bytes, second: bytes) -> bytes:
    """Write, read back through the same handle, write more, close; then a fresh open reads it all."""
    with open(path, "r+b") as handle:
        handle.seek(0, os.SEEK_END)
        handle.write(first)
        handle.flush()
        handle.seek(0)
        seen = handle.read()
        handle.write(second)
    return seen


def read(path: Path) -> bytes:
    return path.read_bytes()


def utime(path: Path, mtime: int) -> int:
    os.utime(path, (mtime, mtime))
    return int(os.stat(path).st_mtime) if path.is_file() else 0


def tree(root: Path) -> dict[str, object]:
    found: dict[str, object] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            found[os.path.relpath(os.path.join(folder, name), root)] = "dir"
        for name in files:
            full = os.path.join(folder, name)
            found[os.path.relpath(full, root)] = Path(full).read_bytes()
    return found


def make_machine(local_base: Path, mount_base: Path) -> type[RuleBasedStateMachine]:
    class SameAsLocalDisk(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            name = uuid.uuid4().hex[:8]
            self.local, self.remote = local_base / name, mount_base / name
            self.local.mkdir()
            self.remote.mkdir()

        def both(self, call, *args):
            mine = [outcome(call, *(self.local / a if isinstance(a, str) else a for a in args))]
            theirs = [outcome(call, *(self.remote / a if isinstance(a, str) else a for a in args))]
            assert mine == theirs, f"{call.__name__}{args}: local {mine}, mount {theirs}"

        @rule(path=PATHS, data=DATA)
        def create(self, path: str, data: bytes) -> None:
            self.both(write_new, path, data)

        @rule(path=PATHS, offset=OFFSETS, data=DATA)
        def write_at_offset(self, path: str, offset: int, data: bytes) -> None:
            self.both(write_at, path, offset, data)

        @rule(path=PATHS, data=DATA)
        def append(self, path: str, data: bytes) -> None:
            self.both(append, path, data)

        @rule(path=PATHS, first=DATA, second=DATA)
        def reopen(self, path: str, first: bytes, second: bytes) -> None:
            self.both(reopen_twice, path, first, second)

        @rule(path=PATHS, length=OFFSETS)
        def truncate(self, path: str, length: int) -> None:
            self.both(os.truncate, path, length)

        @rule(source=PATHS, destination=PATHS)
        def rename(self, source: str, destination: str) -> None:
            self.both(os.rename, source, destination)

        @rule(path=PATHS)
        def mkdir(self, path: str) -> None:
            self.both(os.mkdir, path)

        @rule(path=PATHS)
        def rmdir(self, path: str) -> None:
            self.both(os.rmdir, path)

        @rule(path=PATHS)
        def unlink(self, path: str) -> None:
            self.both(os.unlink, path)

        @rule(path=PATHS, mtime=st.integers(min_value=0, max_value=2_000_000_000))
        def utime(self, path: str, mtime: int) -> None:
            self.both(utime, path, mtime)

        @rule(path=PATHS)
        def read(self, path: str) -> None:
            self.both(read, path)

        @invariant()
        def same_tree(self) -> None:
            assert tree(self.local) == tree(self.remote)

    return SameAsLocalDisk


def run_machine(mounted: Mounted, tmp_path: Path, examples: int, steps: int) -> None:
    name = f"diff-{uuid.uuid4().hex[:8]}"
    mount_base = mounted.path / "data" / "demo" / name
    mount_base.mkdir()
    local_base = tmp_path / "local"
    local_base.mkdir()
    machine = make_machine(local_base, mount_base)
    run_state_machine_as_test(machine, settings=settings(
        max_examples=examples, stateful_step_count=steps, deadline=None, derandomize=True,
        suppress_health_check=list(HealthCheck)))


def test_mount_behaves_like_local_disk(mounted: Mounted, tmp_path: Path) -> None:
    run_machine(mounted, tmp_path, examples=6, steps=20)


@pytest.mark.slow
def test_mount_behaves_like_local_disk_long(mounted: Mounted, tmp_path: Path) -> None:
    run_machine(mounted, tmp_path, examples=60, steps=50)
