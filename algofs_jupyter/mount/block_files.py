"""Block files: the disk tier of the block cache, in a private, ``flock``-held directory per cache instance.

Nothing is reused across restarts (the index lives in memory only): on start, directories of instances
that are gone (their lock is free) are deleted, and two live mounts sharing a ``cache_dir`` don't collide.
Blocks are written with ``O_DIRECT`` where the file system allows it (see ``block_cache``).

Not thread-safe by itself except where noted: ``BlockCache`` calls ``write`` from its writer thread and
``read_into``/``remove`` from any thread, on distinct names (a re-fetched block gets a new name).
"""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
import shutil
from pathlib import Path

from ..private_dirs import make_private_dirs
from .block_buffers import Buffer

INSTANCE_PREFIX = "blocks-"
#: O_DIRECT needs offsets, lengths and buffer addresses aligned to the device's logical block size.
DIRECT_IO_ALIGN = 4096
LOCK_NAME = ".lock"


class BlockFiles:
    """Block files in a private, locked directory: ``<dir>/<name>``.

    One flat directory: a cache of 10 GiB in 8 MiB blocks is ~1,300 files, nothing ext4's hashed
    directories notice, while a sub-directory per name prefix cost a ``mkdir`` (a new inode) for most
    blocks of a fresh mount's cold read: ~3 % of the daemon's CPU in ``perf`` (issue 26).
    """

    def __init__(self, cache_dir: Path):
        make_private_dirs(cache_dir)
        remove_abandoned_instances(cache_dir)
        self.root = cache_dir / f"{INSTANCE_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
        self.root.mkdir(mode=0o700)
        self._lock_fd = os.open(self.root / LOCK_NAME, os.O_WRONLY | os.O_CREAT, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.direct_io = True  # until the file system refuses it

    def file(self, name: str) -> str:
        return os.path.join(self.root, name)

    def write(self, name: str, buffer: Buffer) -> None:
        path = self.file(name)
        length = buffer.length
        padded = -(-length // DIRECT_IO_ALIGN) * DIRECT_IO_ALIGN
        if self.direct_io and buffer.pooled and padded <= len(buffer.mem):
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_DIRECT, 0o600)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                self.direct_io = False  # tmpfs and some others refuse O_DIRECT
            else:
                try:
                    with memoryview(buffer.mem) as view:
                        _write_all(fd, view[:padded])  # the tail past length is cut off below
                    if padded != length:
                        os.ftruncate(fd, length)
                    return
                except OSError as exc:
                    if exc.errno != errno.EINVAL:
                        raise
                    self.direct_io = False
                finally:
                    os.close(fd)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with memoryview(buffer.mem) as view:
                _write_all(fd, view[:length])
        finally:
            os.close(fd)

    def read_into(self, name: str, offset: int, out: memoryview) -> int:
        fd = os.open(self.file(name), os.O_RDONLY)
        try:
            filled = 0
            while filled < len(out):
                got = os.preadv(fd, [out[filled:]], offset + filled)
                if not got:
                    break
                filled += got
            return filled
        finally:
            os.close(fd)

    def remove(self, name: str) -> None:
        try:
            os.unlink(self.file(name))
        except FileNotFoundError:
            pass

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
        os.close(self._lock_fd)


def remove_abandoned_instances(cache_dir: Path) -> None:
    """Delete block directories whose owner is gone (their lock can be taken)."""
    for entry in cache_dir.glob(INSTANCE_PREFIX + "*"):
        try:
            fd = os.open(entry / LOCK_NAME, os.O_WRONLY | os.O_CREAT, 0o600)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue  # a live cache instance owns it
        shutil.rmtree(entry, ignore_errors=True)
        os.close(fd)



def _write_all(fd: int, view: memoryview) -> None:
    while view:
        view = view[os.write(fd, view):]

