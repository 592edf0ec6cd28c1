"""Block buffers: a block's bytes in memory, shared by its fetch, the memory tier and its readers, and the
pool of page-aligned buffers they are received into.

Locks (names of docs/architecture.md's *mount lock order*):
``BufferPool._lock`` guards ``_idle`` and ``allocated``; it is a leaf, and is taken under
``BlockIndex.lock`` (block_index.py: a buffer whose last reference goes returns to the pool there).
``Buffer.refs`` is guarded by ``BlockIndex.lock``.
"""

from __future__ import annotations

import mmap
import threading


class Buffer:
    """A block's bytes in memory, shared by its fetch, the memory tier and readers copying out of it.

    ``refs`` counts the holders; at zero a pooled buffer goes back to the pool.
    """

    __slots__ = ("mem", "length", "refs", "pooled")

    def __init__(self, mem: mmap.mmap | bytes | bytearray, length: int, pooled: bool):
        self.mem = mem
        self.length = length
        self.refs = 0
        self.pooled = pooled


class BufferPool:
    """Reusable page-aligned buffers of one block each.

    Reusing memory matters: a fresh multi-MiB buffer per block means a page fault per 4 KiB on first
    touch, which on virtual machines costs more than receiving the bytes. mmap'd buffers are also
    page-aligned, as ``O_DIRECT`` writes need. At most ``keep`` idle buffers are kept.
    """

    def __init__(self, size: int, keep: int):
        self.size = size
        self.keep = keep
        self._idle: list[mmap.mmap] = []
        self._lock = threading.Lock()
        self.allocated = 0

    def take(self) -> mmap.mmap:
        with self._lock:
            if self._idle:
                return self._idle.pop()
            self.allocated += 1
        return anonymous_buffer(self.size)

    def give(self, mem: mmap.mmap) -> None:
        """Keep ``mem`` for reuse, or drop it (unmapped once no view of it is left, e.g. in a traceback)."""
        with self._lock:
            if len(self._idle) < self.keep:
                self._idle.append(mem)
            else:
                self.allocated -= 1

    def idle(self) -> int:
        return len(self._idle)

    def drop_idle(self) -> int:
        """Unmap the idle buffers (those still in use come back later and are kept or dropped then)."""
        with self._lock:
            dropped = len(self._idle)
            self._idle.clear()
            self.allocated -= dropped
        return dropped


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


def copy_out(buffer: Buffer, lo: int, hi: int, out: memoryview) -> None:
    with memoryview(buffer.mem) as source:
        out[:hi - lo] = source[lo:hi]
