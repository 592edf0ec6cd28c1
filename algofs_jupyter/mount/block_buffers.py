"""Block buffers: a block's bytes in memory, shared by its fetch, the memory tier and its readers, and the
pool of page-aligned buffers they are received into.

Each pooled buffer is a ``memfd`` (where the platform has one) mapped into the daemon: its bytes can also be
named as ``(fd, offset)``, so a FUSE read reply can be spliced from it by libfuse instead of copied into
libfuse's reply buffer first (``BlockCache.read_spans``).

Locks (names of docs/architecture.md's *mount lock order*):
``BufferPool._lock`` guards ``_idle`` and ``allocated``; it is a leaf, and is taken under
``BlockIndex.lock`` (block_index.py: a buffer whose last reference goes returns to the pool there).
``Buffer.refs`` is guarded by ``BlockIndex.lock``.
"""

from __future__ import annotations

import mmap
import os
import threading
from typing import Protocol


class Buffer:
    """A block's bytes in memory, shared by its fetch, the memory tier and readers copying out of it.

    ``refs`` counts the holders; at zero a pooled buffer goes back to the pool.
    """

    __slots__ = ("mem", "length", "refs", "pooled", "fd")

    def __init__(self, mem: mmap.mmap | bytes | bytearray, length: int, pooled: bool, fd: int = -1):
        self.mem = mem
        self.length = length
        self.refs = 0
        self.pooled = pooled
        self.fd = fd  # the memfd behind ``mem`` (-1: none): valid while the buffer is referenced


class _Holder(Protocol):
    """What releases buffer references: ``block_index.BlockIndex``."""

    lock: threading.Lock

    def unref_locked(self, buffer: Buffer) -> None: ...


class ReadSpans:
    """A read's bytes where they lie: ``parts`` of ``(buffer, offset, length)``, in order. Each buffer is
    referenced (not reused) until ``release()``; its ``fd`` (a memfd) names the bytes for a splice."""

    __slots__ = ("parts", "_holder")

    def __init__(self, holder: _Holder):
        self.parts: list[tuple[Buffer, int, int]] = []
        self._holder = holder

    def add(self, buffer: Buffer, offset: int, length: int) -> None:
        """Take over one reference to ``buffer``."""
        self.parts.append((buffer, offset, length))

    @property
    def size(self) -> int:
        return sum(length for _, _, length in self.parts)

    def release(self) -> None:
        parts, self.parts = self.parts, []
        if parts:
            with self._holder.lock:
                for buffer, _, _ in parts:
                    self._holder.unref_locked(buffer)


class BufferPool:
    """Reusable page-aligned buffers of one block each.

    Reusing memory matters: a fresh multi-MiB buffer per block means a page fault per 4 KiB on first
    touch, which on virtual machines costs more than receiving the bytes. mmap'd buffers are also
    page-aligned, as ``O_DIRECT`` writes need. At most ``keep`` idle buffers are kept.
    """

    def __init__(self, size: int, keep: int, shared: bool = True):
        self.size = size
        self.keep = keep
        self._idle: list[mmap.mmap] = []
        self._lock = threading.Lock()
        self.allocated = 0
        #: Buffers are memfds (``fd_of``); False where memfd_create is missing or refused.
        self.shared = shared and hasattr(os, "memfd_create")
        self._fds: dict[mmap.mmap, int] = {}  # every allocated buffer's memfd, idle or not

    def take(self) -> mmap.mmap:
        with self._lock:
            if self._idle:
                return self._idle.pop()
            self.allocated += 1
        if self.shared:
            try:
                mem, fd = memfd_buffer(self.size)
            except OSError:
                self.shared = False
            else:
                with self._lock:
                    self._fds[mem] = fd
                return mem
        return anonymous_buffer(self.size)

    def fd_of(self, mem: mmap.mmap) -> int:
        """The memfd behind a buffer of this pool, -1 if it has none."""
        return self._fds.get(mem, -1)

    def give(self, mem: mmap.mmap) -> None:
        """Keep ``mem`` for reuse, or drop it (unmapped once no view of it is left, e.g. in a traceback)."""
        with self._lock:
            if len(self._idle) < self.keep:
                self._idle.append(mem)
                return
            self.allocated -= 1
            fd = self._fds.pop(mem, -1)
        if fd >= 0:
            os.close(fd)  # the mapping keeps the memory until it is unmapped

    def idle(self) -> int:
        return len(self._idle)

    def drop_idle(self) -> int:
        """Unmap the idle buffers (those still in use come back later and are kept or dropped then)."""
        with self._lock:
            dropped, self._idle = self._idle, []
            self.allocated -= len(dropped)
            fds = [self._fds.pop(mem, -1) for mem in dropped]
        for fd in fds:
            if fd >= 0:
                os.close(fd)
        return len(dropped)


def anonymous_buffer(size: int) -> mmap.mmap:
    """Private anonymous memory in small (4 KiB) pages.

    ``mmap.mmap(-1, n)`` would be *shared* anonymous memory (shmem, counted as Shmem): nothing here is
    shared with another process. Huge pages are refused explicitly (``MADV_NOHUGEPAGE``, also under THP
    ``always``): each first touch of a huge page zeroes 2 MiB at once out of memory the VM host has not
    backed yet. ``perf`` of the daemon during a cold 1 GiB read (issue 26): with ``MADV_HUGEPAGE``,
    ``clear_page_erms`` under ``folio_zero_user`` took 15-16 % of its CPU for the ~13 block buffers a
    fresh mount allocates; in small pages, 0.8 % plus 1.6 % in the page-fault path.
    """
    mem = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    if hasattr(mmap, "MADV_NOHUGEPAGE"):
        try:
            mem.madvise(mmap.MADV_NOHUGEPAGE)
        except OSError:  # THP not built in: small pages anyway
            pass
    return mem


def memfd_buffer(size: int) -> tuple[mmap.mmap, int]:
    """A private-to-the-daemon memfd of ``size`` bytes, mapped shared (its pages are the file's), and its fd.

    Page-aligned as ``anonymous_buffer``; the fd lets libfuse splice a read reply straight out of it.
    """
    fd = os.memfd_create("algofs-block", os.MFD_CLOEXEC)
    try:
        os.ftruncate(fd, size)
        return mmap.mmap(fd, size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE), fd
    except BaseException:
        os.close(fd)
        raise


def copy_out(buffer: Buffer, lo: int, hi: int, out: memoryview) -> None:
    with memoryview(buffer.mem) as source:
        out[:hi - lo] = source[lo:hi]
