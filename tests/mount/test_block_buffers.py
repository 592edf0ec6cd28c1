"""Block buffers: the memory cold reads are received into."""

from __future__ import annotations

import ctypes
import mmap
from pathlib import Path

import pytest

from algofs_jupyter.mount.block_buffers import BufferPool, anonymous_buffer

MiB = 1 << 20


def vm_flags(mem: mmap.mmap) -> list[str]:
    """The ``VmFlags`` of the mapping holding ``mem`` (from /proc/self/smaps)."""
    address = ctypes.addressof(ctypes.c_char.from_buffer(mem))
    inside = False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()[0] if line else ""
        if "-" in head and all(c in "0123456789abcdef-" for c in head):
            start, end = (int(x, 16) for x in head.split("-"))
            inside = start <= address < end
        elif inside and line.startswith("VmFlags:"):
            return line.split()[1:]
    raise AssertionError("mapping not found in /proc/self/smaps")


@pytest.mark.skipif(not hasattr(mmap, "MADV_NOHUGEPAGE") or not Path("/proc/self/smaps").exists(),
                    reason="needs Linux THP madvise")
def test_block_buffers_refuse_huge_pages() -> None:
    """A huge page's first touch zeroes 2 MiB of memory the VM host may not have backed (issue 26)."""
    mem = anonymous_buffer(8 * MiB)
    try:
        flags = vm_flags(mem)
        assert "nh" in flags and "hg" not in flags
    finally:
        mem.close()


def test_pool_reuses_buffers_up_to_keep() -> None:
    pool = BufferPool(MiB, keep=2)
    taken = [pool.take() for _ in range(3)]
    assert pool.allocated == 3
    for mem in taken:
        pool.give(mem)
    assert pool.idle() == 2 and pool.allocated == 2
    assert pool.take() in taken
