"""The warm small-file ceiling of a Python (mfusepy, libfuse3) FUSE filesystem on this machine.

A null filesystem: 2,000 files of 4 KiB held in a dict, the mount options algofs uses for warm reads
(attr/entry timeouts of 60 s, ``auto_cache``, ``noflush`` on open) and nothing else: no locks, no
caches, no network. Reading every file whole in a Python loop (``open``/``read``/``close``), warm, then
reaches the daemon as OPEN, IOCTL (Python's ``open`` asks ``isatty``) and RELEASE per file; its files/s
bound what any mfusepy filesystem, algofs included, can do on this path.

    python bench/fuse_floor.py     # prints files/s for 3 warm passes; mounts and unmounts in a tempdir
"""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from algofs_jupyter.supervise import ChildProcess

FILES, SIZE = 2000, 4096


def serve(mountpoint: str) -> None:
    os.environ.setdefault("FUSE_LIBRARY_NAME", "fuse3")
    import mfusepy

    data = {f"/f{i:05d}": os.urandom(SIZE) for i in range(FILES)}
    now = time.time()

    class Null(mfusepy.Operations):
        use_ns = False

        def init_with_config(self, conn, config):
            if config is not None:
                config.entry_timeout = config.attr_timeout = 60.0
                config.auto_cache = 1

        def getattr(self, path, fh=None):
            if path == "/":
                return {"st_mode": stat.S_IFDIR | 0o755, "st_nlink": 2, "st_mtime": now}
            if path not in data:
                raise mfusepy.FuseOSError(errno.ENOENT)
            return {"st_mode": stat.S_IFREG | 0o644, "st_nlink": 1, "st_size": SIZE, "st_mtime": now}

        def readdir(self, path, fh):
            return [".", "..", *(name[1:] for name in data)]

        def open(self, path, fi):
            fi.noflush = 1
            return 0

        def read(self, path, size, offset, fi):
            return data[path][offset:offset + size]

        def release(self, path, fi):
            return 0

    extra = {k: True for k in os.environ.get("NULLFS_OPTIONS", "").split(",") if k}
    mfusepy.FUSE(Null(), mountpoint, foreground=True, raw_fi=True, nothreads=False, fsname="nullfs", **extra)


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--serve":
        serve(sys.argv[2])
        return 0
    with tempfile.TemporaryDirectory() as work:
        mountpoint = os.path.join(work, "mnt")
        os.mkdir(mountpoint)
        child = ChildProcess("the null filesystem", Path(work) / "nullfs.log")
        child.spawn([sys.executable, __file__, "--serve", mountpoint])
        try:
            child.wait_ready(lambda: os.path.ismount(mountpoint), 30)
            names = sorted(os.listdir(mountpoint))
            for name in names:  # cold pass fills the page cache
                with open(os.path.join(mountpoint, name), "rb") as handle:
                    handle.read()
            for rep in range(3):
                started = time.perf_counter()
                for name in names:
                    with open(os.path.join(mountpoint, name), "rb") as handle:
                        handle.read()
                print(f"warm pass {rep + 1}: {len(names) / (time.perf_counter() - started):.0f} files/s")
        finally:
            subprocess.run(["fusermount3", "-u", mountpoint], check=False)
            child.stop(grace=15)  # it exits once unmounted
    return 0


if __name__ == "__main__":
    sys.exit(main())
