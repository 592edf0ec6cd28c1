"""The fastest Python FUSE file system we know how to write: a read-only passthrough of one local file.

``bench/run.py`` mounts it next to algofs and reads the server's copy of the large file through it, cold
(a fresh mount, nothing in the kernel's page cache for it). There is no network and no cache logic: the
kernel hands 1 MiB reads (libfuse3, ``read_ahead_kb`` raised as algofs does) to ``os.preadv`` straight
into libfuse's reply buffer. Whatever it reaches is the ceiling for a Python FUSE mount on the machine,
which puts the "cold read vs curl" ratio in context.

    python bench/fuse_ceiling.py MOUNTPOINT FILE     # serves FILE as MOUNTPOINT/<its name>
"""

from __future__ import annotations

import errno
import os
import stat
import sys
import threading
from pathlib import Path

os.environ.setdefault("FUSE_LIBRARY_NAME", "fuse3")

import mfusepy  # noqa: E402 - after choosing libfuse3

from algofs_jupyter.mount.daemon import raise_readahead  # noqa: E402
from algofs_jupyter.mount.fuse_binding import DirectReadFUSE  # noqa: E402


class Passthrough(mfusepy.Operations):
    use_ns = True

    def __init__(self, source: Path, mountpoint: str):
        self.name = "/" + source.name
        self.fd = os.open(source, os.O_RDONLY)
        self.size = os.fstat(self.fd).st_size
        self.mountpoint = mountpoint

    def init(self, path: str) -> None:
        threading.Thread(target=raise_readahead, args=(self.mountpoint,), daemon=True).start()

    def getattr(self, path: str, fh: int | None = None) -> dict:
        if path == "/":
            return {"st_mode": stat.S_IFDIR | 0o755, "st_nlink": 2}
        if path == self.name:
            return {"st_mode": stat.S_IFREG | 0o444, "st_nlink": 1, "st_size": self.size}
        raise mfusepy.FuseOSError(errno.ENOENT)

    def readdir(self, path: str, fh: int) -> list[str]:
        return [".", "..", self.name[1:]]

    def open(self, path: str, flags: int) -> int:
        return 0

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        return os.pread(self.fd, size, offset)

    def read_into(self, path: str, out: memoryview, offset: int, fh: int) -> int:
        return os.preadv(self.fd, [out], offset)


def main() -> int:
    mountpoint, source = sys.argv[1], Path(sys.argv[2])
    DirectReadFUSE(Passthrough(source, mountpoint), mountpoint, foreground=True, nothreads=False, ro=True,
                   fsname="algofs-ceiling", subtype="algofs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
