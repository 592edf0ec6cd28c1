"""The FUSE operations of ``algofs mount`` (mfusepy, high-level path API, multi-threaded, ``raw_fi``).

The layout of the mount root and its path rules are in ``layout``. Every handler is thread-safe, reads
are addressed purely by offset, and every failure leaves as an ``OSError`` with a real errno
(``fuse_errors``): backend trouble is EIO, never a garbage errno. See docs/filesystem.md for the semantics.

Each method is one FUSE operation: it checks the path's kind and hands over. Open files are in
``handles`` (which kind an open makes; each kind's read, write, flush, fsync and release: an operation on
a handle calls it, never asking its kind), name resolution in ``resolver``, stat dicts in ``attributes``,
renames in ``renames``, uploads in ``uploads``.

Locks (names and order: docs/architecture.md's *mount lock order*; none is held across a FUSE reply):

- ``Resolver._listing_locks[directory]`` (resolver.py) - one listing of a directory at a time.
- ``StagedFile.lock`` (staged_file.py) - held by ``utimens`` of a staged file to record ``pending_mtime``
  or the server version after a set-mtime (no network call); renames (renames.py, under the rename locks
  of ``WriteStaging.renaming``) and uploads (uploads.py) hold it across their network calls.
- ``MetadataCache._lock``, the content caches' locks (``BlockIndex.lock``, ``SmallFiles._lock``, see
   content_cache.py), ``WriteStaging._lock`` - leaves of their modules, taken inside their methods only.
- ``Handles._lock`` (handles.py) - the table of open files; a leaf: nothing is called while it is held.

Unguarded on purpose: ``errors``.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import stat
import threading
import time
from collections.abc import Callable
from typing import Any

from mfusepy import FuseOSError, Operations

from ..fs.data_api import DataClient
from ..fs.posix_meta import UTIME_NOW, UTIME_OMIT
from . import layout as rules
from .attributes import Attributes
from .content_cache import ContentCache
from .handles import Handles
from .layout import ALGORITHMS, LOCAL_DIRECTORIES, MY_ALIAS, MY_ALIAS_PATH, layout_path, virtual_path
from .metadata_cache import DIRECTORY, FILE, RESTRICTED, Attr, MetadataCache
from .path_changes import PathChanges
from .posix_ops import PosixOps
from .renames import Renames
from .resolver import Resolver
from .staging import StagedFile, WriteStaging
from .uploads import Uploader
from .virtual import VirtualTree

log = logging.getLogger(__name__)
#: libfuse's ``FUSE_CAP_CACHE_SYMLINKS`` (fuse_common.h, libfuse 3.10+): the kernel caches symlink targets.
FUSE_CAP_CACHE_SYMLINKS = 1 << 23


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


class AlgoOperations(Operations):
    use_ns = True  # times are integer nanoseconds (stat_dicts.py; utimens gets them so too)

    def __init__(self, client: DataClient, content: ContentCache, metadata: MetadataCache,
                 staging: WriteStaging, uploader: Uploader, algorithms: VirtualTree | None = None,
                 extra_connectors: tuple[str, ...] = (), kernel_ttl: float = 60.0,
                 negative_ttl: float = 5.0, on_init: Callable[[], None] | None = None,
                 consistency: str = "ttl", read_only: bool = False):
        self.client = client
        #: file contents: the small-file store and the block cache behind one front
        self.content = content
        self.metadata = metadata
        self.changes = PathChanges(metadata, content)  # the one "this path changed" step (path_changes.py)
        self.staging = staging
        #: every upload: flush, fsync and release call it; it owns the opt-in write-back
        self.uploader = uploader
        self.algorithms = algorithms or VirtualTree()
        self.kernel_ttl = kernel_ttl
        self.kernel_caches_symlinks = False  # set by init_with_config when the kernel offers it
        self.readlink_requests = 0
        self.negative_ttl = negative_ttl
        self.on_init = on_init
        if consistency not in ("ttl", "strict"):
            raise ValueError(f"consistency must be 'ttl' or 'strict', not {consistency!r}")
        self.consistency = consistency
        if read_only and consistency == "strict":
            raise ValueError("a read-only mount answers opens from the kernel: consistency 'ttl' only")
        #: ``--read-only``: FUSE no-open, no /algorithms (see ``open`` and docs/filesystem.md)
        self.read_only = read_only
        self.attributes = Attributes(metadata)
        #: modes, owners, ns times, symlinks, exclusive creates (posix_ops.py)
        self.posix = PosixOps(client, metadata, staging, self.attributes, uploader.upload)
        self.resolver = Resolver(client, metadata, content.reading_directory, extra_connectors)
        self.renames = Renames(client, metadata, content, staging, uploader, self.resolver, self.attributes)
        #: the open files: which kind an open makes, and what each kind does
        self.handles = Handles(client, staging, uploader, self.resolver, self.attributes, content,
                               self.algorithms, strict=consistency == "strict")
        self.errors = 0
        #: directories open now (opendir minus releasedir): each holds a readdir snapshot in the binding
        self.open_directories = 0
        self._directories_lock = threading.Lock()

    # -- mount set-up -----------------------------------------------------------------------------

    def init_with_config(self, conn: Any, config: Any) -> None:
        if config is not None:
            config.entry_timeout = self.kernel_ttl
            # strict: the kernel asks for the attributes again at every open (each open HEADs anyway),
            # so a size changed remotely is never clamped by a stale kernel copy
            config.attr_timeout = self.kernel_ttl if self.consistency == "ttl" else 0.0
            config.negative_timeout = self.negative_ttl
            config.auto_cache = 1  # drop the kernel page cache on open when size/mtime changed
            config.kernel_cache = 0
            config.use_ino = 0
        if conn is not None and hasattr(conn, "max_background"):
            conn.max_background = max(int(conn.max_background), 64)
        if conn is not None and int(getattr(conn, "capable", 0)) & FUSE_CAP_CACHE_SYMLINKS:
            # data/.my never changes target: the kernel keeps it, instead of a READLINK per path walk
            conn.want = int(conn.want) | FUSE_CAP_CACHE_SYMLINKS
            self.kernel_caches_symlinks = True
        if self.on_init is not None:
            threading.Thread(target=self.on_init, name="algofs-post-init", daemon=True).start()

    def destroy(self, path: str) -> None:
        log.info("unmounting")
        self.uploader.drain()

    # -- metadata operations ----------------------------------------------------------------------

    @fuse_errors
    def getattr(self, path: str, fh: Any = None) -> dict[str, Any]:
        if fh is not None:  # fstat: a file open for writing answers from its staged bytes
            handle = self.handles.find(fh)
            own = handle.stat() if handle is not None else None
            if own is not None:
                return own
        sub = virtual_path(path)
        if sub is not None:
            if self.read_only:
                raise FuseOSError(errno.ENOENT)  # pipes need an open per call: not on a read-only mount
            return self.algorithms.getattr(sub, None)
        layout = layout_path(path)
        if layout in LOCAL_DIRECTORIES:
            return self.attributes.dir_stat()
        if layout == MY_ALIAS_PATH:
            target = self.resolver.username()
            st = self.attributes.dir_stat(0o777)
            st.update(st_mode=stat.S_IFLNK | 0o777, st_size=len(target))
            return st
        staged = self.staging.get(layout)
        if staged is not None:
            return self.attributes.staged_stat(staged)
        return self.attributes.attr_stat(self.resolver.require(layout), layout)

    @fuse_errors
    def readlink(self, path: str) -> str:
        self.readlink_requests += 1  # unlocked: a statistic, and the GIL makes each += whole enough
        layout = layout_path(path)
        if layout == MY_ALIAS_PATH:
            return self.resolver.username()
        if virtual_path(path) is not None or layout in LOCAL_DIRECTORIES:
            raise FuseOSError(errno.EINVAL)
        return self.posix.readlink(self.resolver.require(layout))

    @fuse_errors
    def access(self, path: str, amode: int) -> int:
        self.getattr(path)
        return 0

    @fuse_errors
    def opendir(self, path: str) -> int:
        if virtual_path(path) is None:
            layout = layout_path(path)
            if layout not in LOCAL_DIRECTORIES:
                attr = self.resolver.require(layout)
                if attr.kind == RESTRICTED:
                    raise FuseOSError(errno.EACCES)
                if attr.kind == FILE:
                    raise FuseOSError(errno.ENOTDIR)
        with self._directories_lock:
            self.open_directories += 1
        return 0

    def releasedir(self, path: str, fh: int) -> int:
        """Defined so that libfuse calls it at all (mfusepy leaves a callback the operations lack unset):
        the binding's ``releasedir`` drops the directory handle's readdir snapshot first (fuse_binding.py).
        Without it every directory ever listed kept its snapshot, and with it every attribute listed."""
        with self._directories_lock:
            self.open_directories -= 1
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
            entries += ["data", *([] if self.read_only else [ALGORITHMS]),
                        *sorted(self.resolver.known_connectors())]
            return entries
        if layout == "data":
            users = [e["name"].rpartition("/")[2] for e in self.client.iter_dir("data")]
            if users and self.resolver.known_username is None:
                self.resolver.known_username = users[0]
            return entries + [(MY_ALIAS, {"st_mode": stat.S_IFLNK}, 0)] + users
        children = self.resolver.listing(layout)
        staged = self.staging.paths_under(layout)
        # Attributes for READDIRPLUS (see fuse_binding: the kernel caches them, and `ls -l` needs no
        # lookup per entry), as the Attr/StagedFile they come from: the binding turns the few entries
        # of each kernel request into stat dicts (``entry_attrs``), so a listing of 50,000 entries
        # holds 50,000 small objects, not 50,000 dicts.
        for name, attr in children.items():
            if not rules.hidden_by_libfuse(name):
                entries.append((name, staged.get(name, attr), 0))
        for name in staged.keys() - children.keys():
            if not rules.hidden_by_libfuse(name):
                entries.append((name, staged[name], 0))
        return entries

    def entry_attrs(self, source: Attr | StagedFile) -> dict[str, Any]:
        """The stat dict of a ``readdir`` entry (see ``readdir``)."""
        if isinstance(source, Attr):
            return self.attributes.attr_stat(source)
        try:
            return self.attributes.staged_stat(source)
        except OSError:  # closed since the listing: the kernel will look it up
            return {"st_mode": stat.S_IFREG | 0o644}

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
        """A handle per open; on a read-only mount, ENOSYS to the first open: FUSE's no-open support.

        The kernel takes that ENOSYS as "this filesystem keeps no per-open state": that open and every
        later one on the connection succeed without an OPEN request, there is never a RELEASE, and the
        page cache is kept across opens (dropped when a fresh GETATTR shows another size or mtime). With
        the mount's ``ro`` flag (no atime update after a read, hence no GETATTR) and the FLUSH answered the
        same way, a warm open-read-close asks the daemon nothing; reads come with no handle
        (``Handles.read_unopened``)."""
        if self.read_only:
            raise FuseOSError(errno.ENOSYS)
        fi.fh = self.handles.open(path, fi)
        return 0

    @fuse_errors
    def read(self, path: str, size: int, offset: int, fi: Any) -> bytes:
        if self.read_only:
            return self.handles.read_unopened(path, size, offset)
        return self.handles.get(fi).read(path, size, offset)

    @fuse_errors
    def read_into(self, path: str, out: memoryview, offset: int, fi: Any) -> int:
        """``read`` straight into the kernel's reply buffer (see ``fuse_binding``): one copy per byte."""
        if self.read_only:
            return self.handles.read_unopened_into(path, out, offset)
        return self.handles.get(fi).read_into(path, out, offset)

    # -- writing ----------------------------------------------------------------------------------

    @fuse_errors
    def create(self, path: str, mode: int, fi: Any) -> int:
        sub = virtual_path(path)
        if sub is not None:
            fi.fh = self.handles.virtual(sub, self.algorithms.create(sub, mode, fi))
            return 0
        layout = layout_path(path)
        rules.check_new_name(layout)
        rules.check_writable_location(layout, directory=False)
        parent = self.resolver.resolve(rules.parent_of(layout))
        if parent is None:
            raise FuseOSError(errno.ENOENT)
        if not parent.is_dir:
            raise FuseOSError(errno.ENOTDIR)
        if self.posix.supported(layout) and self.posix.made_at_create(layout, mode, fi.flags):
            # made on the server now: its mode, owner, O_EXCL race-free
            self.changes.changed(layout, self.posix.create_file(layout, mode, bool(fi.flags & os.O_EXCL)))
        else:
            # A placeholder (getattr answers from the staged file until the upload): keeps the parent's
            # listing complete, so the next new name in it is known not to exist without a HEAD.
            self.changes.changed(layout, Attr(FILE, 0, time.time()))
        self.attributes.touch_directory(rules.parent_of(layout))
        fi.fh = self.handles.new_file(layout, append=bool(fi.flags & os.O_APPEND))
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
            self.uploader.upload(staged)
        finally:
            self.staging.release(staged)
        return 0

    @fuse_errors
    def write(self, path: str, data: bytes, offset: int, fi: Any) -> int:
        return self.handles.get(fi).write(data, offset)

    @fuse_errors
    def truncate(self, path: str, length: int, fh: Any = None) -> int:
        """``truncate(2)``, by path: under libfuse 3 mfusepy passes no handle, not even for ``ftruncate``."""
        sub = virtual_path(path)
        if sub is not None:
            self.algorithms.truncate(sub, length, None)
        else:
            self.handles.truncate(layout_path(path), length)
        return 0

    @fuse_errors
    def fallocate(self, path: str, mode: int, offset: int, size: int, fi: Any) -> int:
        """On the staged bytes of a file open for writing (staged_file.py); else EOPNOTSUPP."""
        self.handles.get(fi).allocate(mode, offset, size)
        return 0

    @fuse_errors
    def flush(self, path: str, fi: Any) -> int:
        """Every close(): a file open for writing is uploaded now, so close() reports a failed upload
        (with write-back: a few seconds after the last close). A read-only mount has nothing to upload:
        ENOSYS, and the kernel sends no FLUSH on this connection again."""
        if self.read_only:
            raise FuseOSError(errno.ENOSYS)
        self.handles.get(fi).flush()
        return 0

    @fuse_errors
    def fsync(self, path: str, datasync: int, fi: Any) -> int:
        if self.read_only:
            return 0  # nothing is ever written
        self.handles.get(fi).fsync(datasync)
        return 0

    @fuse_errors
    def release(self, path: str, fi: Any) -> int:
        if self.read_only:
            return 0  # never sent after the first open's ENOSYS
        handle = self.handles.pop(fi)
        if handle is not None:
            handle.release()
        return 0

    # -- namespace changes ------------------------------------------------------------------------

    @fuse_errors
    def mkdir(self, path: str, mode: int) -> int:
        if virtual_path(path) is not None:
            raise FuseOSError(errno.EACCES)
        layout = layout_path(path)
        rules.check_new_name(layout)
        rules.check_writable_location(layout, directory=True)
        if self.posix.supported(layout):
            self.changes.changed(layout, self.posix.mkdir(layout, mode))
        else:
            self.client.mkdir(layout, create_parents=False)
            self.changes.changed(layout, Attr(DIRECTORY, 0, time.time()))  # new directories carry their birth
        self.metadata.put_listing(layout, {})
        self.attributes.touch_directory(rules.parent_of(layout))
        return 0

    @fuse_errors
    def rmdir(self, path: str) -> int:
        if virtual_path(path) is not None or layout_path(path) in LOCAL_DIRECTORIES:
            raise FuseOSError(errno.EACCES)
        layout = layout_path(path)
        attr = self.resolver.require(layout)
        if attr.kind == FILE:
            raise FuseOSError(errno.ENOTDIR)
        if self.staging.paths_under(layout):
            raise FuseOSError(errno.ENOTEMPTY)
        self.client.delete(layout)
        self.changes.removed(layout)
        self.attributes.touch_directory(rules.parent_of(layout))
        return 0

    @fuse_errors
    def unlink(self, path: str) -> int:
        if virtual_path(path) is not None:
            raise FuseOSError(errno.EACCES)
        layout = layout_path(path)
        staged = self.staging.detach(layout)
        try:
            attr = self.resolver.require(layout)
            if attr.is_dir:
                raise FuseOSError(errno.EISDIR)
            self.client.delete(layout)
        except FuseOSError as exc:
            if staged is None or exc.errno != errno.ENOENT:  # a never-uploaded file is gone already
                raise
        except FileNotFoundError:
            if staged is None:
                raise
        self.changes.removed(layout)
        self.attributes.touch_directory(rules.parent_of(layout))
        return 0

    @fuse_errors
    def rename(self, old: str, new: str) -> int:
        """One server-side move (files and whole directories) when the server has the move extension;
        else files are copied then the source deleted (destination written first) and directories
        answer EXDEV so ``mv`` falls back to copying."""
        if virtual_path(old) is not None or virtual_path(new) is not None:
            raise FuseOSError(errno.EXDEV)
        src, dst = layout_path(old), layout_path(new)
        if src == dst:
            return 0
        self.renames.rename(src, dst)
        return 0

    # -- metadata: stored with the posix extension, else accepted no-ops --------------------------

    def _posix_layout(self, path: str) -> str | None:
        """The layout path of a Data API entry whose storage keeps POSIX metadata, else None."""
        layout = layout_path(path)
        if virtual_path(path) is not None or layout in LOCAL_DIRECTORIES or layout == MY_ALIAS_PATH \
                or not self.posix.supported(layout):
            return None
        return layout

    @fuse_errors
    def chmod(self, path: str, mode: int) -> int:
        self.getattr(path)
        layout = self._posix_layout(path)
        if layout is not None:
            self.posix.chmod(layout, mode)
        return 0  # without the posix extension: accepted, not stored

    @fuse_errors
    def chown(self, path: str, uid: int, gid: int) -> int:
        self.getattr(path)
        layout = self._posix_layout(path)
        if layout is not None:
            self.posix.chown(layout, self.resolver.require(layout), uid, gid)
        return 0  # without the posix extension: accepted, not stored

    @fuse_errors
    def utimens(self, path: str, times: Any = None) -> int:
        """Stores atime and mtime in nanoseconds with the posix extension; else sets the server's mtime
        when it has the set-mtime extension (``rsync -a``, ``cp -p``, ``touch -d``); a dirty open file
        gets it right after its upload. Else an accepted no-op."""
        self.getattr(path)
        layout = self._posix_layout(path)
        if layout is not None:
            self.posix.utimens(layout, times)
            return 0
        layout = layout_path(path)
        if virtual_path(path) is not None or layout in LOCAL_DIRECTORIES or layout == MY_ALIAS_PATH \
                or not self.client.supports("set-mtime", layout):
            return 0
        if times and times[1] == UTIME_OMIT:
            return 0
        mtime = times[1] / 1e9 if times and times[1] != UTIME_NOW else time.time()
        staged = self.staging.get(layout)
        if staged is not None:
            with staged.lock:
                if staged.dirty:
                    staged.pending_mtime = mtime
                    return 0
        info = self.client.set_mtime(layout, mtime)
        if staged is not None:
            with staged.lock:
                staged.record_server_version(info, exact=staged.remote_size is not None)
        self.metadata.put(layout, Attr.from_info(info))
        self.staging.drop_retained(layout)
        return 0

    @fuse_errors
    def symlink(self, target: str, source: str) -> int:
        """``ln -s source target`` (mfusepy's names): a symlink entry on the server, never followed there."""
        layout = self._posix_layout(target)
        if layout is None:
            raise FuseOSError(errno.EPERM)  # the storage keeps no symlinks
        rules.check_new_name(layout)
        rules.check_writable_location(layout, directory=False)
        self.changes.changed(layout, self.posix.symlink(layout, source))
        self.attributes.touch_directory(rules.parent_of(layout))
        return 0

    def link(self, target: str, source: str) -> int:
        raise FuseOSError(errno.EPERM)

    # -- status -----------------------------------------------------------------------------------

    def clear_caches(self) -> None:
        self.content.clear()
        self.metadata.clear()
        self.algorithms.clear_caches()  # the pipes' algorithm listings

    def open_handles(self) -> int:
        return len(self.handles)
