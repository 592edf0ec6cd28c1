"""The FUSE operations of ``algofs mount`` (mfusepy, high-level path API, multi-threaded, ``raw_fi``).

The layout of the mount root and its path rules are in ``layout``. Every handler is thread-safe, reads
are addressed purely by offset, and every failure leaves as an ``OSError`` with a real errno
(``fuse_errors``): backend trouble is EIO, never a garbage errno. See docs/filesystem.md for the semantics.

An open file is one of three handle kinds (``ReadHandle``, ``StagedHandle``, ``VirtualHandle``); each
operation dispatches on the kind, never on which optional field happens to be set.

Locks (take them only in this order; none is held across a FUSE reply):

1. ``_listing_locks[directory]`` - one listing of a directory at a time (single flight); held across the
   paged listing requests. Nothing else of this module is taken under it.
2. ``StagedFile.lock`` (staging.py) - held by ``rename`` across the destination's upload (a network call)
   and while ``WriteStaging.rekey`` takes the replaced destination's ``StagedFile.lock`` and
   ``WriteStaging._lock`` (see staging.py).
3. ``MetadataCache._lock``, ``BlockCache._lock``, ``WriteStaging._lock`` - leaves of their modules,
   taken inside their methods only.
4. ``_lock`` - guards ``_handles``, ``_handle_ids`` and ``_listing_locks`` (the dict, not the locks in
   it); a leaf: nothing is called while it is held.

Unguarded on purpose: ``_connectors`` and ``_connectors_probed_at`` (a root listing may probe twice),
``_username`` (learned once; any thread may set the same value), ``errors``.
"""

from __future__ import annotations

import errno
import functools
import itertools
import logging
import os
import stat
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mfusepy import FuseOSError, Operations

from ..fs import AlgoFileSystem
from . import layout as rules
from .block_cache import BlockCache, FileVersion
from .layout import ALGORITHMS, LOCAL_DIRECTORIES, MY_ALIAS, MY_ALIAS_PATH, layout_path, virtual_path
from .metadata_cache import DIRECTORY, FILE, RESTRICTED, Attr, MetadataCache
from .range_streams import Fill
from .staging import StagedFile, WriteStaging
from .stat_dicts import directory_stat, file_stat
from .virtual import VirtualTree

log = logging.getLogger(__name__)

CONNECTOR_PROBE_TTL = 60.0
#: Block size the mount reports to stat (tools size their reads by it).
STAT_BLOCK_SIZE = 1 << 20


def fuse_errors(method: Callable) -> Callable:
    """Turn every exception into an errno: OSError keeps its errno (EIO if it has none), others → EIO."""

    @functools.wraps(method)
    def wrapper(self: AlgoOperations, *args: Any) -> Any:
        try:
            return method(self, *args)
        except FuseOSError:
            raise
        except OSError as exc:
            code = exc.errno if isinstance(exc.errno, int) and exc.errno > 0 else errno.EIO
            if code not in (errno.ENOENT, errno.EACCES, errno.EINVAL, errno.ENOTEMPTY, errno.EEXIST):
                log.warning("%s%s: %s", method.__name__, args[:1], exc)
            raise FuseOSError(code) from exc
        except Exception as exc:
            log.exception("%s%s failed", method.__name__, args[:1])
            raise FuseOSError(errno.EIO) from exc

    return wrapper


@dataclass(frozen=True)
class RangeFetch:
    """Ranged GETs of one file version for the block cache (``into`` fills the cache's own buffers)."""

    fs: AlgoFileSystem
    path: str
    etag: str

    def __call__(self, start: int, end: int) -> bytes | bytearray:
        return self.fs.read_block(self.path, start, end, etag=self.etag)

    def into(self, start: int, out: memoryview) -> int:
        return self.fs.read_block_into(self.path, start, out, etag=self.etag)

    def stream(self, start: int, end: int) -> AbstractContextManager[Fill]:
        return self.fs.open_range(self.path, start, end, etag=self.etag)


@dataclass
class ReadHandle:
    """A remote file opened read-only: reads go through the block cache, for this one version."""

    path: str  # layout path; follows a rename of the open file
    version: FileVersion


@dataclass
class StagedHandle:
    """A file open for writing, or read while someone writes it: the local staged bytes."""

    path: str
    staged: StagedFile


@dataclass
class VirtualHandle:
    """A file of the /algorithms tree: every operation goes to the tree with the tree's own handle."""

    path: str  # the path inside the tree
    tree_fh: int


Handle = ReadHandle | StagedHandle | VirtualHandle


def _fh(fi: Any) -> int:
    """The handle id in ``fi`` (libfuse's file info, or the id itself); 0, never a handle, for None."""
    if fi is None:
        return 0
    return fi if isinstance(fi, int) else fi.fh


class AlgoOperations(Operations):
    use_ns = False

    def __init__(self, fs: AlgoFileSystem, block_cache: BlockCache, metadata: MetadataCache,
                 staging: WriteStaging, algorithms: VirtualTree | None = None,
                 extra_connectors: tuple[str, ...] = (), kernel_ttl: float = 60.0,
                 negative_ttl: float = 5.0, on_init: Callable[[], None] | None = None):
        self.fs = fs
        self.blocks = block_cache
        self.metadata = metadata
        self.staging = staging
        self.algorithms = algorithms or VirtualTree()
        self.kernel_ttl = kernel_ttl
        self.negative_ttl = negative_ttl
        self.on_init = on_init
        self.uid, self.gid = os.getuid(), os.getgid()
        self.started = time.time()
        self._handles: dict[int, Handle] = {}
        self._handle_ids = itertools.count(1)
        self._lock = threading.Lock()
        self._listing_locks: dict[str, threading.Lock] = {}
        self._connectors: set[str] = set(extra_connectors)
        self._connectors_probed_at = 0.0
        self._username: str | None = None
        self.errors = 0

    # -- mount set-up -----------------------------------------------------------------------------

    def init_with_config(self, conn: Any, config: Any) -> None:
        if config is not None:
            config.entry_timeout = self.kernel_ttl
            config.attr_timeout = self.kernel_ttl
            config.negative_timeout = self.negative_ttl
            config.auto_cache = 1  # drop the kernel page cache on open when size/mtime changed
            config.kernel_cache = 0
            config.use_ino = 0
        if conn is not None and hasattr(conn, "max_background"):
            conn.max_background = max(int(conn.max_background), 64)
        if self.on_init is not None:
            threading.Thread(target=self.on_init, name="algofs-post-init", daemon=True).start()

    def destroy(self, path: str) -> None:
        log.info("unmounting")

    # -- helpers ----------------------------------------------------------------------------------

    def username(self) -> str:
        if self._username is None:
            self._username = self.fs.username()
        return self._username

    def _owner_fields(self) -> dict[str, Any]:
        return {"st_uid": self.uid, "st_gid": self.gid, "st_blksize": STAT_BLOCK_SIZE}

    def _dir_stat(self, mode: int = 0o755) -> dict[str, Any]:
        return directory_stat(self.started, mode, st_size=0, **self._owner_fields())

    def _file_stat(self, size: int, mtime: float) -> dict[str, Any]:
        return file_stat(size, mtime, st_blocks=(size + 511) // 512, **self._owner_fields())

    def _attr_stat(self, attr: Attr) -> dict[str, Any]:
        if attr.kind == DIRECTORY:
            return self._dir_stat()
        if attr.kind == RESTRICTED:
            return self._dir_stat(0o111)
        return self._file_stat(attr.size, attr.mtime or self.started)

    def _staged_stat(self, staged: StagedFile) -> dict[str, Any]:
        """A file open for writing: its local size, and the time of its last write, or once uploaded
        and unchanged, the server's mtime (what every later stat reports)."""
        local = os.fstat(staged.fd)
        mtime = local.st_mtime
        uploaded = staged.uploaded
        if not staged.dirty and uploaded is not None and uploaded.get("size") == local.st_size:
            mtime = uploaded["mtime"]
        return self._file_stat(local.st_size, mtime)

    def _resolve(self, layout: str) -> Attr | None:
        """Attributes of a layout path (None = doesn't exist), from caches, else one HEAD."""
        if not rules.may_exist_remotely(layout):
            return None  # no request
        known, attr = self.metadata.lookup(layout)
        if known:
            return attr
        try:
            info = self.fs.head(layout)
        except FileNotFoundError:
            self.metadata.put(layout, None)
            return None
        except PermissionError:
            attr = Attr(RESTRICTED)
        else:
            attr = Attr.from_info(info)
        if rules.is_connector_root(layout):
            self._connectors.add(layout)
        self.metadata.put(layout, attr)
        return attr

    def _require(self, layout: str) -> Attr:
        attr = self._resolve(layout)
        if attr is None:
            raise FuseOSError(errno.ENOENT)
        return attr

    def _handle(self, fi: Any) -> Handle:
        handle = self._handles.get(_fh(fi))
        if handle is None:
            raise FuseOSError(errno.EBADF)
        return handle

    def _new_handle(self, handle: Handle) -> int:
        with self._lock:
            fh = next(self._handle_ids)
            self._handles[fh] = handle
        return fh

    def _fetcher(self, layout: str, etag: str) -> RangeFetch:
        return RangeFetch(self.fs, layout, etag)

    def _after_upload(self, staged: StagedFile) -> None:
        info = staged.uploaded
        if info is not None and info.get("size") == staged.size():  # not written to since the upload
            self.metadata.put(staged.path, Attr.from_info(info))
        else:
            self._refresh(staged.path)
        self.blocks.invalidate(staged.path)

    def _refresh(self, layout: str) -> None:
        """After our own upload: the server chose mtime/etag, so record what one HEAD says (tools like
        tar compare mtimes before and after reading); if that fails, forget the entry."""
        try:
            info = self.fs.head(layout)
        except OSError:
            self.metadata.invalidate(layout)
            return
        self.metadata.put(layout, Attr.from_info(info))

    # -- metadata operations ----------------------------------------------------------------------

    @fuse_errors
    def getattr(self, path: str, fh: Any = None) -> dict[str, Any]:
        if fh is not None:
            handle = self._handles.get(_fh(fh))
            if isinstance(handle, StagedHandle):
                return self._staged_stat(handle.staged)
        sub = virtual_path(path)
        if sub is not None:
            return self.algorithms.getattr(sub, None)
        layout = layout_path(path)
        if layout in LOCAL_DIRECTORIES:
            return self._dir_stat()
        if layout == MY_ALIAS_PATH:
            target = self.username()
            st = self._dir_stat(0o777)
            st.update(st_mode=stat.S_IFLNK | 0o777, st_size=len(target))
            return st
        staged = self.staging.get(layout)
        if staged is not None:
            return self._staged_stat(staged)
        return self._attr_stat(self._require(layout))

    @fuse_errors
    def readlink(self, path: str) -> str:
        if layout_path(path) == MY_ALIAS_PATH:
            return self.username()
        raise FuseOSError(errno.EINVAL)

    @fuse_errors
    def access(self, path: str, amode: int) -> int:
        self.getattr(path)
        return 0

    @fuse_errors
    def opendir(self, path: str) -> int:
        if virtual_path(path) is None:
            layout = layout_path(path)
            if layout not in LOCAL_DIRECTORIES:
                attr = self._require(layout)
                if attr.kind == RESTRICTED:
                    raise FuseOSError(errno.EACCES)
                if attr.kind == FILE:
                    raise FuseOSError(errno.ENOTDIR)
        return 0

    @fuse_errors
    def readdir(self, path: str, fh: int) -> list[Any]:
        sub = virtual_path(path)
        if sub is not None:
            names = self.algorithms.readdir(sub)
            return [".", "..", *names]
        layout = layout_path(path)
        entries: list[Any] = [".", ".."]
        if layout == "":
            entries += ["data", ALGORITHMS, *sorted(self._known_connectors())]
            return entries
        if layout == "data":
            users = [e["name"].rpartition("/")[2] for e in self.fs.iter_dir("data")]
            if users and self._username is None:
                self._username = users[0]
            return entries + [(MY_ALIAS, {"st_mode": stat.S_IFLNK}, 0)] + users
        children = self._list(layout)
        staged = self.staging.paths_under(layout)
        # Attributes for READDIRPLUS (see fuse_binding: the kernel caches them, and `ls -l` needs no
        # lookup per entry), as the Attr/StagedFile they come from: the binding turns the few entries
        # of each kernel request into stat dicts (``entry_attrs``), so a listing of 50,000 entries
        # holds 50,000 small objects, not 50,000 dicts.
        for name, attr in children.items():
            entries.append((name, staged.get(name, attr), 0))
        for name in staged.keys() - children.keys():
            entries.append((name, staged[name], 0))
        return entries

    def entry_attrs(self, source: Attr | StagedFile) -> dict[str, Any]:
        """The stat dict of a ``readdir`` entry (see ``readdir``)."""
        if isinstance(source, Attr):
            return self._attr_stat(source)
        try:
            return self._staged_stat(source)
        except OSError:  # closed since the listing: the kernel will look it up
            return {"st_mode": stat.S_IFREG | 0o644}

    def _list(self, layout: str) -> dict[str, Attr]:
        """The children of a directory: a fresh cached listing, else one paged listing (single flight)."""
        cached = self.metadata.listing(layout)
        if cached is not None:
            return dict(cached)
        with self._lock:
            lock = self._listing_locks.setdefault(layout, threading.Lock())
        with lock:
            cached = self.metadata.listing(layout)
            if cached is not None:
                return dict(cached)
            children: dict[str, Attr] = {}
            for entry in self.fs.iter_dir(layout):
                children[entry["name"].rpartition("/")[2]] = Attr.from_info(entry)
            self.metadata.put_listing(layout, children)
        with self._lock:
            self._listing_locks.pop(layout, None)
        return dict(children)

    def _known_connectors(self) -> set[str]:
        now = time.monotonic()
        if now - self._connectors_probed_at > CONNECTOR_PROBE_TTL:
            try:
                self._connectors.update(self.fs.connectors())
                self._connectors_probed_at = now
            except OSError as exc:  # root listing must work with the backend down
                log.info("connector probe failed: %s", exc)
        return set(self._connectors)

    @fuse_errors
    def statfs(self, path: str) -> dict[str, int]:
        """Capacity of the local staging disk (what writes can use); never a network call."""
        st = os.statvfs(self.staging.directory)
        return {"f_bsize": st.f_bsize, "f_frsize": st.f_frsize, "f_blocks": st.f_blocks,
                "f_bfree": st.f_bfree, "f_bavail": st.f_bavail, "f_files": 1 << 32, "f_ffree": 1 << 31,
                "f_favail": 1 << 31, "f_namemax": 255}

    # -- reading ----------------------------------------------------------------------------------

    @fuse_errors
    def open(self, path: str, fi: Any) -> int:
        sub = virtual_path(path)
        if sub is not None:
            fi.fh = self._new_handle(VirtualHandle(sub, self.algorithms.open(sub, fi)))
            return 0
        layout = layout_path(path)
        flags = fi.flags
        writing = (flags & os.O_ACCMODE) in (os.O_WRONLY, os.O_RDWR)
        staged = self.staging.get(layout)
        if writing or (flags & os.O_TRUNC):
            attr = None if staged is not None else self._revalidate(layout)
            if attr is None and staged is None:
                raise FuseOSError(errno.ENOENT)
            if attr is not None and attr.is_dir:
                raise FuseOSError(errno.EISDIR)
            fill = None
            if attr is not None and attr.size > 0:
                fill = lambda local: self.fs.download_to(layout, local)  # noqa: E731
            staged = self.staging.open(layout, fill, truncate=bool(flags & os.O_TRUNC))
            fi.fh = self._new_handle(StagedHandle(layout, staged))
            return 0
        if staged is not None:  # someone is writing it: read the local bytes
            staged = self.staging.open(layout, None, truncate=False)
            fi.fh = self._new_handle(StagedHandle(layout, staged))
            return 0
        attr = self._revalidate(layout)
        if attr is None:
            raise FuseOSError(errno.ENOENT)
        if attr.is_dir:
            raise FuseOSError(errno.EISDIR)
        version = FileVersion(layout, attr.size, attr.etag or f"size{attr.size}-mtime{attr.mtime}")
        fi.fh = self._new_handle(ReadHandle(layout, version))
        return 0

    def _revalidate(self, layout: str) -> Attr | None:
        """Close-to-open consistency: HEAD at open so a remote change is seen and cached blocks dropped."""
        self.metadata.invalidate(layout)
        attr = self._resolve(layout)
        if attr is None:
            return None
        if attr.kind == RESTRICTED:
            raise FuseOSError(errno.EACCES)
        return attr

    @fuse_errors
    def read(self, path: str, size: int, offset: int, fi: Any) -> bytes:
        handle = self._handle(fi)
        if isinstance(handle, VirtualHandle):
            return self.algorithms.read(handle.path, size, offset, handle.tree_fh)
        if isinstance(handle, StagedHandle):
            return handle.staged.pread(size, offset)
        version = self._read_version(handle, path)
        return self.blocks.read(version, offset, size, self._fetcher(version.path, version.etag),
                                stream_id=_fh(fi))

    @fuse_errors
    def read_into(self, path: str, out: memoryview, offset: int, fi: Any) -> int:
        """``read`` straight into the kernel's reply buffer (see ``fuse_binding``): one copy per byte."""
        handle = self._handle(fi)
        if not isinstance(handle, ReadHandle):
            data = self.read(path, len(out), offset, fi)
            out[:len(data)] = data
            return len(data)
        version = self._read_version(handle, path)
        return self.blocks.read_into(version, offset, out, self._fetcher(version.path, version.etag),
                                     stream_id=_fh(fi))

    def _read_version(self, handle: ReadHandle, path: str) -> FileVersion:
        version = handle.version
        layout = layout_path(path)
        if layout != version.path:  # renamed while open
            version = handle.version = version._replace(path=layout)
            handle.path = layout
        return version

    # -- writing ----------------------------------------------------------------------------------

    @fuse_errors
    def create(self, path: str, mode: int, fi: Any) -> int:
        sub = virtual_path(path)
        if sub is not None:
            fi.fh = self._new_handle(VirtualHandle(sub, self.algorithms.create(sub, mode, fi)))
            return 0
        layout = layout_path(path)
        rules.check_new_name(layout)
        rules.check_writable_location(layout, directory=False)
        parent = self._resolve(rules.parent_of(layout))
        if parent is None:
            raise FuseOSError(errno.ENOENT)
        if not parent.is_dir:
            raise FuseOSError(errno.ENOTDIR)
        # A placeholder (getattr answers from the staged file until the upload): keeps the parent's
        # listing complete, so the next new name in it is known not to exist without a HEAD.
        self.metadata.put(layout, Attr(FILE, 0, time.time()))
        staged = self.staging.open(layout, None, truncate=True, new=True)
        fi.fh = self._new_handle(StagedHandle(layout, staged))
        return 0

    @fuse_errors
    def mknod(self, path: str, mode: int, dev: int) -> int:
        if not stat.S_ISREG(mode):
            raise FuseOSError(errno.EPERM)
        layout = layout_path(path)
        rules.check_new_name(layout)
        rules.check_writable_location(layout, directory=False)
        staged = self.staging.open(layout, None, truncate=True, new=True)
        try:
            self._upload(staged)
        finally:
            self.staging.release(staged)
        return 0

    @fuse_errors
    def write(self, path: str, data: bytes, offset: int, fi: Any) -> int:
        handle = self._handle(fi)
        if isinstance(handle, VirtualHandle):
            return self.algorithms.write(handle.path, data, offset, handle.tree_fh)
        if not isinstance(handle, StagedHandle):
            raise FuseOSError(errno.EBADF)
        self.staging.check_space(len(data))
        return handle.staged.pwrite(data, offset)

    @fuse_errors
    def truncate(self, path: str, length: int, fh: Any = None) -> int:
        sub = virtual_path(path)
        if sub is not None:
            self.algorithms.truncate(sub, length, None)
            return 0
        layout = layout_path(path)
        staged = self.staging.get(layout)
        if staged is not None:
            if length > staged.size():
                self.staging.check_space(length - staged.size())
            staged.truncate(length)
            return 0
        attr = self._require(layout)  # truncate(2) on a file nobody has open: apply and upload now
        if attr.is_dir:
            raise FuseOSError(errno.EISDIR)
        fill = (lambda local: self.fs.download_to(layout, local)) if length > 0 and attr.size > 0 else None
        staged = self.staging.open(layout, fill, truncate=False)
        try:
            staged.truncate(length)
            self._upload(staged)
        finally:
            self.staging.release(staged)
        return 0

    def _upload(self, staged: StagedFile) -> None:
        """Upload if dirty and update the caches; a failure leaves the server's state unknown to us."""
        try:
            uploaded = self.staging.commit(staged)
        except OSError:
            self.metadata.invalidate(staged.path)
            raise
        if uploaded:
            self._after_upload(staged)

    @fuse_errors
    def flush(self, path: str, fi: Any) -> int:
        """Every close(): upload a dirty staged file now, so close() reports a failed upload."""
        handle = self._handle(fi)
        if isinstance(handle, VirtualHandle):
            self.algorithms.flush(handle.path, handle.tree_fh)
        elif isinstance(handle, StagedHandle):
            self._upload(handle.staged)
        return 0

    @fuse_errors
    def fsync(self, path: str, datasync: int, fi: Any) -> int:
        handle = self._handle(fi)
        if isinstance(handle, VirtualHandle):
            self.algorithms.fsync(handle.path, datasync, handle.tree_fh)
        elif isinstance(handle, StagedHandle):
            self._upload(handle.staged)
        return 0

    @fuse_errors
    def release(self, path: str, fi: Any) -> int:
        with self._lock:
            handle = self._handles.pop(_fh(fi), None)
        if isinstance(handle, VirtualHandle):
            self.algorithms.release(handle.path, handle.tree_fh)
        elif isinstance(handle, StagedHandle):
            try:
                self._upload(handle.staged)  # last chance (e.g. the writer was killed before close)
            except OSError as exc:
                log.error("release of %s: %s", handle.path, exc)
            finally:
                self.staging.release(handle.staged)
        return 0

    # -- namespace changes ------------------------------------------------------------------------

    @fuse_errors
    def mkdir(self, path: str, mode: int) -> int:
        if virtual_path(path) is not None:
            raise FuseOSError(errno.EACCES)
        layout = layout_path(path)
        rules.check_new_name(layout)
        rules.check_writable_location(layout, directory=True)
        self.fs.mkdir(layout)
        self.metadata.put(layout, Attr(DIRECTORY))
        self.metadata.put_listing(layout, {})
        return 0

    @fuse_errors
    def rmdir(self, path: str) -> int:
        if virtual_path(path) is not None or layout_path(path) in LOCAL_DIRECTORIES:
            raise FuseOSError(errno.EACCES)
        layout = layout_path(path)
        attr = self._require(layout)
        if attr.kind == FILE:
            raise FuseOSError(errno.ENOTDIR)
        if self.staging.paths_under(layout):
            raise FuseOSError(errno.ENOTEMPTY)
        self.fs.rmdir(layout)
        self.metadata.remove(layout)
        return 0

    @fuse_errors
    def unlink(self, path: str) -> int:
        if virtual_path(path) is not None:
            raise FuseOSError(errno.EACCES)
        layout = layout_path(path)
        staged = self.staging.detach(layout)
        try:
            attr = self._require(layout)
            if attr.is_dir:
                raise FuseOSError(errno.EISDIR)
            self.fs.rm_file(layout)
        except FuseOSError as exc:
            if staged is None or exc.errno != errno.ENOENT:  # a never-uploaded file is gone already
                raise
        except FileNotFoundError:
            if staged is None:
                raise
        self.metadata.remove(layout)
        self.blocks.invalidate(layout)
        return 0

    @fuse_errors
    def rename(self, old: str, new: str) -> int:
        """Files only (copy + delete, destination written first); directories answer EXDEV so ``mv``
        falls back to copying."""
        if virtual_path(old) is not None or virtual_path(new) is not None:
            raise FuseOSError(errno.EXDEV)
        src, dst = layout_path(old), layout_path(new)
        if src == dst:
            return 0
        rules.check_new_name(dst)
        rules.check_writable_location(dst, directory=False)
        staged = self.staging.get(src)
        src_attr = None if staged is not None else self._require(src)
        if src_attr is not None and src_attr.is_dir:
            raise FuseOSError(errno.EXDEV)
        dst_attr = None if self.staging.get(dst) else self._resolve(dst)
        if dst_attr is not None and dst_attr.is_dir:
            raise FuseOSError(errno.EISDIR)
        if staged is not None:
            with staged.lock:
                self.fs.put_file(str(staged.local), dst)
                staged.mark_clean()
                self._delete_quietly(src)
                self.staging.rekey(src, dst)
        else:
            temp = self.staging.temp_path()
            try:
                self.fs.download_to(src, temp)
                self.fs.put_file(str(temp), dst)
            finally:
                Path(temp).unlink(missing_ok=True)
            self.fs.rm_file(src)
        self.metadata.remove(src)
        self._refresh(dst)
        self.blocks.invalidate(src)
        self.blocks.invalidate(dst)
        return 0

    def _delete_quietly(self, layout: str) -> None:
        try:
            self.fs.rm_file(layout)
        except FileNotFoundError:
            pass  # never uploaded

    # -- accepted no-ops and refusals -------------------------------------------------------------

    @fuse_errors
    def chmod(self, path: str, mode: int) -> int:
        self.getattr(path)
        return 0  # the API has no per-file modes: accepted, not stored

    @fuse_errors
    def chown(self, path: str, uid: int, gid: int) -> int:
        self.getattr(path)
        return 0  # no owners either: accepted, not stored

    @fuse_errors
    def utimens(self, path: str, times: Any = None) -> int:
        self.getattr(path)
        return 0  # mtime is set by the server at upload time

    def symlink(self, target: str, source: str) -> int:
        raise FuseOSError(errno.EPERM)

    def link(self, target: str, source: str) -> int:
        raise FuseOSError(errno.EPERM)

    # -- status -----------------------------------------------------------------------------------

    def clear_caches(self) -> None:
        self.blocks.clear()
        self.metadata.clear()
        self.algorithms.clear_caches()  # the pipes' algorithm listings

    def open_handles(self) -> int:
        return len(self._handles)
