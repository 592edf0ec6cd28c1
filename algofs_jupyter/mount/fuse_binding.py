"""mfusepy's ``FUSE`` with two changes on hot paths. Import after ``mount/__init__`` has chosen libfuse3.

* **Reads land directly in libfuse's reply buffer.** mfusepy calls ``operations.read`` for a ``bytes``
  result and then copies it into the reply buffer: an extra allocation and copy per 1 MiB request. When
  the operations object has ``read_into(path, out, offset, fh) -> count``, ``out`` is a writable view of
  the reply buffer itself and the block cache copies each byte once.
* **READDIRPLUS.** mfusepy hands libfuse only the mode of each directory entry, and libfuse 3.14 drops
  the attributes of entries filled without an offset anyway, so after a listing the kernel looks up every
  entry again (``ls -l`` of 10,000 files: 10,000 LOOKUP calls). Here each open directory handle keeps a
  snapshot of ``readdir`` (taken at offset 0, dropped at ``releasedir``) and entries are filled with their
  index as offset; entries whose attributes are complete (a dict with ``st_nlink``) go out with
  ``FUSE_FILL_DIR_PLUS`` and the kernel caches them with the entry for the attr/entry timeout. An entry's
  attributes may also be any object that ``operations.entry_attrs(obj)`` turns into that dict, so a
  snapshot of a huge directory holds small objects and only the entries of one request become dicts.
* **A soft limit on nodes** (``node_limit``): every path the kernel is told about (a lookup's getattr, a
  READDIRPLUS entry) is recorded, and past the limit the oldest names are invalidated with
  ``fuse_lowlevel_notify_inval_entry`` on the session of the running ``struct fuse`` (taken in ``init``),
  so the kernel drops the dentry, forgets the inode and libfuse frees the node. (libfuse's
  ``fuse_invalidate_path`` only invalidates the inode's attributes and pages: the name and node stay.)
  The parent's node id is its ``st_ino`` on the mount (``use_ino`` is off: libfuse reports node ids).
* **One Python thread state per libfuse worker thread.** libfuse's workers are C threads, so ctypes
  wraps each callback in ``PyGILState_Ensure``/``Release``: without a state it makes one and deletes it
  on return. That cost a ``gettid`` and a 16 KiB ``mmap``/``munmap`` (Python's frame stack) per callback;
  the ``munmap`` flushes the other vCPU's TLB (an IPI: 7 µs alone, ~50 µs with the other CPU busy), and
  an OPEN can be two callbacks (``open``, then libfuse's auto_cache ``getattr`` once the node's attributes
  are older than the attribute timeout). The first callback on a
  worker takes one more ``PyGILState_Ensure`` that is never released, so its state outlives the
  callback. The states are bounded: libfuse ≥ 3.12 never ends a worker (``max_idle_threads`` defaults
  to -1) and runs at most ``max_threads`` (10) of them.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import mfusepy

from .node_limit import NodeLimit

FUSE_ROOT_ID = 1  # the node id of the mount's root
FUSE_READDIR_PLUS = 1  # enum fuse_readdir_flags
FUSE_FILL_DIR_PLUS = 2  # enum fuse_fill_dir_flags


class DirectReadFUSE(mfusepy.FUSE):
    def __init__(self, *args: Any, node_limit: NodeLimit | None = None, **kwargs: Any) -> None:
        self._node_limit = node_limit if node_limit is not None and node_limit.enabled else None
        self._mount_root = os.fsencode(args[1]).rstrip(b"/") if len(args) > 1 else b""
        self._dir_handles = itertools.count(1)
        self._listings: dict[int, _Listing] = {}  # directory handle -> readdir snapshot
        self._plus_until: dict[bytes, float] = {}  # directory -> when the kernel's plus entries expire
        super().__init__(*args, **kwargs)  # runs the mount loop until unmounted

    def _wrapper(self, func: Callable, *args: Any, **kwargs: Any) -> Any:
        """mfusepy's entry point of every callback, on a libfuse worker thread."""
        if not getattr(_worker, "kept", False):  # the state's own attribute: set once per worker
            keep_thread_state()
        return super()._wrapper(func, *args, **kwargs)

    def read(self, path: bytes | None, buf: Any, size: int, offset: int, fip: Any) -> int:
        read_into = getattr(self.operations, "read_into", None)
        if read_into is None:
            return super().read(path, buf, size, offset, fip)
        fh = fip.contents if self.raw_fi else fip.contents.fh
        address = ctypes.cast(buf, ctypes.c_void_p).value
        assert address is not None, "libfuse passes a reply buffer with every read"
        with memoryview((ctypes.c_char * size).from_address(address)).cast("B") as out:
            count = read_into(None if path is None else path.decode(self.encoding, self.errors), out,
                              offset, fh)
        if count > size:
            raise AssertionError(f"read_into reported {count} bytes for a {size}-byte buffer")
        return count

    def init_fuse_3(self, conn: Any, config: Any) -> None:
        super().init_fuse_3(conn, config)
        if self._node_limit is not None:
            self._node_limit.start(self._entry_invalidator())

    def getattr_fuse_3(self, path: bytes | None, buf: Any, fip: Any) -> int:
        result = super().getattr_fuse_3(path, buf, fip)  # raises for a name that does not exist
        if self._node_limit is not None and path is not None and path != b"/":
            self._node_limit.seen(path)
        return result

    def _entry_invalidator(self) -> Callable[[bytes], int]:
        """``invalidate(path)``: the kernel forgets the name ``path`` (0, or a negative errno)."""
        lib = mfusepy._libfuse
        lib.fuse_get_session.argtypes, lib.fuse_get_session.restype = [ctypes.c_void_p], ctypes.c_void_p
        notify = lib.fuse_lowlevel_notify_inval_entry
        notify.argtypes = [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_char_p, ctypes.c_size_t]
        notify.restype = ctypes.c_int
        session = lib.fuse_get_session(ctypes.c_void_p(lib.fuse_get_context().contents.fuse))
        root = self._mount_root

        def invalidate(path: bytes) -> int:
            parent, _, name = path.rpartition(b"/")
            try:  # never from a FUSE request thread: the kernel may ask the daemon for the parent
                node = os.stat(root + parent).st_ino if parent else FUSE_ROOT_ID
            except OSError as exc:
                return -(exc.errno or 1)
            return int(notify(session, node, name, len(name)))

        return invalidate

    def opendir(self, path: bytes, fip: Any) -> int:
        self.operations.opendir(path.decode(self.encoding, self.errors))  # checks; raises FuseOSError
        fip.contents.fh = next(self._dir_handles)
        return 0

    def releasedir(self, path: bytes | None, fip: Any) -> int:
        self._listings.pop(fip.contents.fh, None)
        return super().releasedir(path, fip)

    def readdir_fuse_3(self, path: bytes | None, buf: Any, filler: Any, offset: int, fip: Any,
                       flags: int) -> int:
        fh = fip.contents.fh
        listing = self._listings.get(fh) if offset else None
        if listing is None:  # first call, or rewinddir
            decoded = None if path is None else path.decode(self.encoding, self.errors)
            entries = list(self.operations.readdir(decoded, fh))
            listing = self._listings[fh] = _Listing(entries, self._wants_plus(path, flags))
        entry_attrs = getattr(self.operations, "entry_attrs", None)
        for index in range(offset, len(listing.entries)):
            item = listing.entries[index]
            name, attrs = (item, None) if isinstance(item, str) else (item[0], item[1])
            if attrs is not None and not isinstance(attrs, dict) and entry_attrs is not None:
                attrs = entry_attrs(attrs)
            st, fill = None, 0
            if isinstance(attrs, dict):
                st = mfusepy.c_stat()
                if listing.plus and "st_nlink" in attrs:
                    _set_stat(st, attrs)
                    fill = FUSE_FILL_DIR_PLUS
                    if self._node_limit is not None and path is not None:
                        child = name.encode(self.encoding, self.errors)
                        self._node_limit.seen(path.rstrip(b"/") + b"/" + child)
                else:
                    st.st_mode = attrs.get("st_mode", 0)
            if filler(buf, name.encode(self.encoding, self.errors), st, index + 1, fill) != 0:
                break  # the kernel's buffer is full; it asks again from this entry's offset
        return 0

    def _wants_plus(self, path: bytes | None, flags: int) -> bool:
        """Send attributes when the kernel asks and does not hold them from a recent listing: the kernel
        asks on every listing from the start, and a warm `ls -l` would pay for 10,000 attributes it has."""
        if not flags & FUSE_READDIR_PLUS or path is None:
            return False
        now = time.monotonic()
        if self._plus_until.get(path, 0.0) > now:
            return False
        if len(self._plus_until) >= 4096:
            self._plus_until = {p: t for p, t in self._plus_until.items() if t > now}
        self._plus_until[path] = now + getattr(self.operations, "kernel_ttl", 0.0) / 2
        return True


_worker = threading.local()  # lives in the thread state: ``kept`` is seen again only if the state was kept
_kept_lock = threading.Lock()
_kept_states = 0  # guarded by _kept_lock
_gil_state_ensure = ctypes.pythonapi.PyGILState_Ensure
_gil_state_ensure.restype = ctypes.c_int


def keep_thread_state() -> None:
    """Keep the calling C thread's Python thread state after the current callback returns (the module
    docstring). Call with the GIL held, from a thread Python did not start; once per thread."""
    _gil_state_ensure()  # the thread's state already holds the GIL: this only counts one more user
    _worker.kept = True
    global _kept_states
    with _kept_lock:
        _kept_states += 1


def kept_thread_states() -> int:
    """How many worker threads have kept a thread state: one per worker, however many requests."""
    return _kept_states


@dataclass
class _Listing:
    entries: list[Any]
    plus: bool  # fill with attributes (FUSE_FILL_DIR_PLUS)


def _set_stat(st: Any, attrs: dict[str, Any]) -> None:
    """mfusepy.set_st_attrs for the fields readdir returns, at a third of its cost (10,000 entries)."""
    st.st_mode = attrs["st_mode"]
    st.st_nlink = attrs["st_nlink"]
    st.st_uid = attrs.get("st_uid", 0)
    st.st_gid = attrs.get("st_gid", 0)
    st.st_size = attrs.get("st_size", 0)
    st.st_blocks = attrs.get("st_blocks", 0)
    st.st_blksize = attrs.get("st_blksize", 0)
    for field in ("st_atime", "st_mtime", "st_ctime"):  # integer nanoseconds (``use_ns``), maybe < 0
        spec = getattr(st, field + "spec")
        spec.tv_sec, spec.tv_nsec = divmod(int(attrs.get(field, 0)), 1_000_000_000)
