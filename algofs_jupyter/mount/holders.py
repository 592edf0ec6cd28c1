"""Which processes hold a mount: their working directory, root, open files or memory maps are inside it.

An unmount of a held mount cannot be clean: ``fusermount -u`` answers EBUSY and a lazy unmount leaves the
holders on a detached tree that fails with ``ENOTCONN`` once the daemon is gone. So whoever unmounts asks
first, tells the user who holds it, and moves what it can (a Jupyter kernel's working directory) out.

Only ``/proc`` entries this process may read are seen (its own user's processes; all of them as root),
which is what matters: another user's process cannot hold a private mount.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

#: At most this many open files are named per holder (a process may hold thousands).
FILES_PER_HOLDER = 3


@dataclass(frozen=True)
class Holder:
    pid: int
    command: str  # the process's name (``comm``)
    cwd: str | None  # its working directory, when inside the mount (relative to the mount's parent)
    files: tuple[str, ...]  # some of its open or mapped files inside the mount (same form)

    def as_dict(self) -> dict:
        return {**asdict(self), "files": list(self.files)}

    def describe(self) -> str:
        what = []
        if self.cwd is not None:
            what.append(f"working directory {self.cwd}")
        if self.files:
            what.append("open file" + ("s " if len(self.files) > 1 else " ") + ", ".join(self.files))
        return f"{self.command} (pid {self.pid}): {'; '.join(what)}"


def holders(mountpoint: str | os.PathLike, *, exclude: set[int] | None = None,
            proc: Path = Path("/proc")) -> list[Holder]:
    """Every readable process with its cwd, root, an fd or a mapping inside ``mountpoint``, by pid."""
    top = os.path.normpath(os.fspath(mountpoint))
    shown_from = os.path.dirname(top)
    skip = {os.getpid(), *(exclude or ())}
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) in skip:
            continue
        holder = _holder(entry, top, shown_from)
        if holder is not None:
            found.append(holder)
    return sorted(found, key=lambda h: h.pid)


def _inside(path: str, top: str) -> bool:
    return path == top or path.startswith(top + "/")


def _holder(entry: Path, top: str, shown_from: str) -> Holder | None:
    def shown(path: str) -> str:
        return os.path.relpath(path, shown_from)

    try:
        cwd = os.readlink(entry / "cwd")
        root = os.readlink(entry / "root")
    except OSError:  # gone, or not ours to read
        return None
    files: list[str] = []
    for path in _open_paths(entry):
        if _inside(path, top) and shown(path) not in files:
            files.append(shown(path))
    held_cwd = shown(cwd) if _inside(cwd, top) else None
    if held_cwd is None and not files and not _inside(root, top):
        return None
    try:
        command = (entry / "comm").read_text().strip()
    except OSError:
        command = "?"
    return Holder(int(entry.name), command, held_cwd, tuple(files[:FILES_PER_HOLDER]))


def _open_paths(entry: Path) -> list[str]:
    paths = []
    try:
        for fd in os.listdir(entry / "fd"):
            try:
                paths.append(os.readlink(entry / "fd" / fd))
            except OSError:
                continue
    except OSError:
        pass
    try:  # memory maps (numpy.memmap, mmap): the path is the 6th field of /proc/PID/maps
        with open(entry / "maps") as maps:
            for line in maps:
                fields = line.split(maxsplit=5)
                if len(fields) == 6 and fields[5].startswith("/"):
                    paths.append(fields[5].rstrip("\n").removesuffix(" (deleted)"))
    except OSError:
        pass
    return paths
