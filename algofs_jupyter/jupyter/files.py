"""Reading the AlgoFS tree from a kernel: through the mount when there is one, else through AlgoFileSystem.

Paths use the mount's layout (``data/<user>/<collection>/…``, ``s3/…``); ``data://user/coll`` URIs and
absolute paths inside the mount point are accepted too.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

CHUNK = 1024 * 1024
#: Files a prefetch reads at once: small files cost a round trip each, so one at a time is latency-bound;
#: a few in parallel keep the mount's (or the API's) connections busy without flooding it.
PREFETCH_THREADS = 8


@dataclass
class Entry:
    name: str
    is_dir: bool
    size: int | None


def normalise(path: str, mountpoint: Path | None = None) -> str:
    """Mount-relative POSIX path without leading/trailing slashes."""
    path = (path or "").strip()
    if "://" in path:
        scheme, rest = path.split("://", 1)
        path = f"{scheme}/{rest}"
    if mountpoint is not None and os.path.isabs(path):
        try:
            path = Path(path).relative_to(mountpoint).as_posix()
        except ValueError:
            raise ValueError(f"{path} is not inside the mount point {mountpoint}") from None
    return "/".join(part for part in path.split("/") if part not in ("", "."))


class Reader:
    """Listing and reading, with the same answers mounted or not."""

    def __init__(self, mountpoint: Path | None, filesystem_factory: Callable):
        self.mountpoint = mountpoint
        self._filesystem_factory = filesystem_factory
        self._fs = None

    @property
    def via(self) -> str:
        return "mount" if self.mountpoint else "api"

    @property
    def fs(self):
        if self._fs is None:
            self._fs = self._filesystem_factory()
        return self._fs

    def local(self, path: str) -> Path:
        """``path`` inside the mount point (callers check ``self.mountpoint`` first)."""
        if self.mountpoint is None:
            raise RuntimeError("nothing is mounted: read through the API")
        return self.mountpoint / path if path else self.mountpoint

    def ls(self, path: str) -> list[Entry]:
        if self.mountpoint:
            entries = []
            with os.scandir(self.local(path)) as listing:
                for item in listing:
                    is_dir = item.is_dir()
                    entries.append(Entry(item.name, is_dir, None if is_dir else item.stat().st_size))
        else:
            entries = []
            for info in self.fs.ls(path, detail=True):
                is_dir = info.get("type") == "directory"
                entries.append(
                    Entry(
                        info["name"].rstrip("/").rsplit("/", 1)[-1],
                        is_dir,
                        None if is_dir else info.get("size"),
                    )
                )
        return sorted(entries, key=lambda entry: (not entry.is_dir, entry.name))

    def read(self, path: str) -> bytes:
        if self.mountpoint:
            return self.local(path).read_bytes()
        with self.fs.open(path, "rb") as handle:
            return handle.read()

    def files_under(self, path: str) -> list[tuple[str, int]]:
        """(path, size) of every file at or below ``path``."""
        if self.mountpoint:
            root = self.local(path)
            if root.is_file():
                return [(path, root.stat().st_size)]
            found = []
            for directory, _dirs, files in os.walk(root):
                for name in sorted(files):
                    full = Path(directory) / name
                    found.append((full.relative_to(self.mountpoint).as_posix(), full.stat().st_size))
            return found
        if self.fs.isfile(path):
            return [(path, int(self.fs.info(path).get("size") or 0))]
        details = self.fs.find(path, detail=True)
        return [(name, int(info.get("size") or 0)) for name, info in sorted(details.items())]

    def stream(self, path: str) -> Iterator[int]:
        """Read ``path`` to the end in chunks (warming the cache); yields bytes read per chunk."""
        opener = open(self.local(path), "rb") if self.mountpoint else self.fs.open(path, "rb")
        with opener as handle:
            while True:
                chunk = handle.read(CHUNK)
                if not chunk:
                    return
                yield len(chunk)

    def prefetch(self, files: list[tuple[str, int]], progress: Callable[[int], None],
                 threads: int = PREFETCH_THREADS) -> int:
        """Read ``files`` to the end on ``threads`` threads (warming the mount's caches); ``progress(done)``
        is called on this thread with the bytes read so far. Returns the bytes read; the first error
        is raised once the files in flight have finished."""
        done = 0
        lock = threading.Lock()

        def read(name: str) -> None:
            nonlocal done
            for count in self.stream(name):
                with lock:
                    done += count

        with ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="algofs-prefetch") as pool:
            pending = {pool.submit(read, name) for name, _size in files}
            while pending:
                finished, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                progress(done)
                for future in finished:
                    if future.exception() is not None:
                        for other in pending:
                            other.cancel()
                        wait(pending)
                        raise future.exception()  # type: ignore[misc]
        progress(done)
        return done
