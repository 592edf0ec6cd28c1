"""Open files: the three handle kinds, each with its own behaviour, and ``Handles``, which opens the right
kind and keeps the table of ids libfuse hands back (``fi.fh``).

mountpoint-s3's ``fs/handles.rs`` puts read/write/flush/release on the handle state; so does this module.
``AlgoOperations`` (operations.py) looks a handle up and calls the operation on it, never asking its kind.

* ``ReadHandle``: a remote file opened read-only. Reads go through the content cache (content_cache.py)
  for the one version seen at open, and follow a rename of the open file; a write is EBADF; flush, fsync
  and release have nothing to do.
* ``StagedHandle``: a file open for writing, or read while someone writes it: the local staged bytes
  (staging.py). A write needs room on the staging disk (ENOSPC); with O_APPEND every write goes to the end.
  flush (every ``close()``) hands the staged file to ``Uploader.closed`` (uploads.py), fsync uploads it now;
  release tries once more (an error is only logged: nobody gets release's answer) and gives the staged file
  back to the staging (the last handle gone, a clean copy is kept for a reopen). ``fstat`` answers from
  the staged file.
* ``VirtualHandle``: a file of the /algorithms tree (virtual.py, pipes.py): every operation goes to the
  tree with the tree's own handle.

Which kind an open makes (``Handles.open``): a path under /algorithms → the tree's; opened for writing or
with O_TRUNC → staged (filled with the server's bytes first, when it has any), except that a write-only
O_APPEND open of a version this mount kept a clean copy of needs no request; read-only while someone
writes the file → the same staged bytes; else → a ``ReadHandle`` of the version the resolver gives (a
HEAD at every open with ``--consistency strict``). A ``--read-only`` mount makes no handles at all: the
kernel opens its files without asking (FUSE no-open, operations.py) and ``read_unopened_into`` reads by
path. ``truncate(2)`` goes by path (under libfuse 3 mfusepy
passes no handle to it, not even for ``ftruncate``): it changes the staged bytes of an open file, else
stages, truncates and uploads the file now.

Locks (names and order: docs/architecture.md's *mount lock order*):

- ``Handles._lock`` - guards ``_handles`` and ``_ids``; a leaf: nothing is called while it is held.
- The handle kinds take none of their own, and a handle's operation runs with no lock held: a
  ``StagedHandle`` reaches ``StagedFile.lock`` through the ``Uploader`` (uploads.py) and
  ``WriteStaging._lock`` through the registry's methods; a ``ReadHandle`` the content caches' locks
  inside their methods (content_cache.py).
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mfusepy import FuseOSError

from ..fs.data_api import DataClient
from .attributes import Attributes
from .block_index import FileVersion
from .content_cache import ContentCache, file_version
from .layout import layout_path, virtual_path
from .resolver import Resolver
from .staged_file import StagedFile
from .staging import WriteStaging
from .uploads import Uploader
from .virtual import VirtualTree

log = logging.getLogger(__name__)


def fh_of(fi: Any) -> int:
    """The handle id in ``fi`` (libfuse's file info, or the id itself); 0, never a handle, for None."""
    if fi is None:
        return 0
    return fi if isinstance(fi, int) else fi.fh


class FileHandle:
    """What every kind of open file answers; the defaults are those of a file with nothing to write or
    upload. ``path`` arguments are the FUSE path of the request."""

    #: the id in the table (``Handles.add``); it also names the reader to the block cache's readahead
    fh = 0

    def read(self, path: str, size: int, offset: int) -> bytes:
        raise FuseOSError(errno.EBADF)

    def read_into(self, path: str, out: memoryview, offset: int) -> int:
        """``read`` straight into the kernel's reply buffer (see fuse_binding.py); returns the count."""
        data = self.read(path, len(out), offset)
        out[:len(data)] = data
        return len(data)

    def write(self, data: bytes, offset: int) -> int:
        raise FuseOSError(errno.EBADF)

    def allocate(self, mode: int, offset: int, length: int) -> None:
        """``fallocate``: only where there are local bytes to allocate (a file open for writing)."""
        raise FuseOSError(errno.EOPNOTSUPP)

    def flush(self) -> None:
        """Every ``close()`` of a descriptor of this handle."""

    def fsync(self, datasync: int) -> None:
        """``fsync``/``fdatasync``."""

    def release(self) -> None:
        """The last descriptor is closed; the id is gone from the table already."""

    def stat(self) -> dict[str, Any] | None:
        """``fstat``: the handle's own attributes, or None: those of its path."""
        return None


@dataclass(eq=False)
class ReadHandle(FileHandle):
    """A remote file opened read-only: reads go through the content cache, for this one version."""

    path: str  # layout path; follows a rename of the open file
    version: FileVersion
    etag: str  # the server's ETag if known ("" for attributes from a listing)
    content: ContentCache

    def read(self, path: str, size: int, offset: int) -> bytes:
        return self.content.read(self._version(path), self.etag, offset, size, stream_id=self.fh)

    def read_into(self, path: str, out: memoryview, offset: int) -> int:
        return self.content.read_into(self._version(path), self.etag, offset, out, stream_id=self.fh)

    def _version(self, path: str) -> FileVersion:
        version = self.version
        layout = layout_path(path)
        if layout != version.path:  # renamed while open
            version = self.version = version._replace(path=layout)
            self.path = layout
        return version


@dataclass(eq=False)
class StagedHandle(FileHandle):
    """A file open for writing, or read while someone writes it: the local staged bytes."""

    path: str
    staged: StagedFile
    staging: WriteStaging
    uploader: Uploader
    attributes: Attributes
    append: bool = False  # O_APPEND: every write goes to the end of the staged bytes

    def read(self, path: str, size: int, offset: int) -> bytes:
        return self.staged.pread(size, offset)

    def write(self, data: bytes, offset: int) -> int:
        self.staging.check_space(len(data))
        if self.append:
            return self.staged.append(data)
        return self.staged.pwrite(data, offset)

    def allocate(self, mode: int, offset: int, length: int) -> None:
        self.staging.check_space(max(offset + length - self.staged.size(), 0))
        self.staged.allocate(mode, offset, length)

    def flush(self) -> None:
        """Upload a dirty staged file now, so close() reports a failed upload (with write-back: leave it
        to the write-back, which uploads it a few seconds after the last close)."""
        self.uploader.closed(self.staged)

    def fsync(self, datasync: int) -> None:
        self.uploader.upload(self.staged)

    def release(self) -> None:
        try:
            self.uploader.closed(self.staged)  # last chance (e.g. the writer was killed before close)
        except OSError as exc:
            log.error("release of %s: %s", self.path, exc)
        finally:
            self.staging.release(self.staged)

    def stat(self) -> dict[str, Any] | None:
        return self.attributes.staged_stat(self.staged)


@dataclass(eq=False)
class VirtualHandle(FileHandle):
    """A file of the /algorithms tree: every operation goes to the tree with the tree's own handle."""

    path: str  # the path inside the tree
    tree_fh: int
    tree: VirtualTree

    def read(self, path: str, size: int, offset: int) -> bytes:
        return self.tree.read(self.path, size, offset, self.tree_fh)

    def write(self, data: bytes, offset: int) -> int:
        return self.tree.write(self.path, data, offset, self.tree_fh)

    def flush(self) -> None:
        self.tree.flush(self.path, self.tree_fh)

    def fsync(self, datasync: int) -> None:
        self.tree.fsync(self.path, datasync, self.tree_fh)

    def release(self) -> None:
        self.tree.release(self.path, self.tree_fh)


class Handles:
    """The mount's open files: which kind each open makes, and the table of their ids."""

    def __init__(self, client: DataClient, staging: WriteStaging, uploader: Uploader, resolver: Resolver,
                 attributes: Attributes, content: ContentCache, tree: VirtualTree, strict: bool = False):
        """``strict``: ``--consistency strict`` (a HEAD at every read-only open)."""
        self.client = client
        self.staging = staging
        self.uploader = uploader
        self.resolver = resolver
        self.attributes = attributes
        self.content = content
        self.tree = tree
        self.strict = strict
        self._handles: dict[int, FileHandle] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    # -- the table --------------------------------------------------------------------------------

    def add(self, handle: FileHandle) -> int:
        with self._lock:
            handle.fh = next(self._ids)
            self._handles[handle.fh] = handle
        return handle.fh

    def get(self, fi: Any) -> FileHandle:
        """The handle of ``fi``; EBADF for an id that names none."""
        handle = self._handles.get(fh_of(fi))
        if handle is None:
            raise FuseOSError(errno.EBADF)
        return handle

    def find(self, fi: Any) -> FileHandle | None:
        return self._handles.get(fh_of(fi))

    def pop(self, fi: Any) -> FileHandle | None:
        with self._lock:
            return self._handles.pop(fh_of(fi), None)

    def __len__(self) -> int:
        return len(self._handles)

    # -- opening ----------------------------------------------------------------------------------

    def virtual(self, sub: str, tree_fh: int) -> int:
        """A handle of the tree's own ``tree_fh`` (from its ``open`` or ``create``) for ``sub``."""
        return self.add(VirtualHandle(sub, tree_fh, self.tree))

    def staged(self, layout: str, staged: StagedFile, append: bool = False) -> int:
        return self.add(StagedHandle(layout, staged, self.staging, self.uploader, self.attributes, append))

    def new_file(self, layout: str, append: bool) -> int:
        """``create``: a new, empty staged file (the name checks are the caller's)."""
        return self.staged(layout, self.staging.open(layout, None, truncate=True, new=True), append)

    def open(self, path: str, fi: Any) -> int:
        """The handle id of an ``open(2)`` of ``path`` with ``fi.flags`` (module docstring)."""
        sub = virtual_path(path)
        if sub is not None:
            return self.virtual(sub, self.tree.open(sub, fi))
        layout = layout_path(path)
        flags = fi.flags
        writing = (flags & os.O_ACCMODE) in (os.O_WRONLY, os.O_RDWR)
        staged = self.staging.get(layout)
        if writing:
            reopened = self._reopen_for_append(layout, flags, staged)
            if reopened is not None:
                return reopened
        if writing or (flags & os.O_TRUNC):
            attr = None if staged is not None else self.resolver.revalidate(layout)
            if attr is None and staged is None:
                raise FuseOSError(errno.ENOENT)
            if attr is not None and attr.is_dir:
                raise FuseOSError(errno.EISDIR)
            fill = self._fill(layout) if attr is not None and attr.size > 0 else None
            remote = (attr.size, attr.etag) if attr is not None else None
            staged = self.staging.open(layout, fill, truncate=bool(flags & os.O_TRUNC), remote=remote)
            return self.staged(layout, staged, append=bool(flags & os.O_APPEND))
        if staged is not None:  # someone is writing it: read the local bytes
            return self.staged(layout, self.staging.open(layout, None, truncate=False))
        attr = self.resolver.revalidate(layout) if self.strict else self.resolver.fresh(layout)
        if attr is None:
            raise FuseOSError(errno.ENOENT)
        if attr.is_dir:
            raise FuseOSError(errno.EISDIR)
        version = file_version(layout, attr)
        fh = self.add(ReadHandle(layout, version, attr.etag, self.content))
        if self.content.is_small(attr.size):
            # FOPEN_NOFLUSH (libfuse >= 3.11): the close() of a read-only handle has nothing to upload, so
            # the kernel skips its FLUSH request, one of the two synchronous round trips of a warm
            # open+close. Small files only: large files gain nothing from it, and while it was set on
            # every open a cold sequential read was seen in 128 KiB requests instead of 1 MiB. That was
            # later also seen without it (run to run), so the cause is open; see the branch report.
            fi.noflush = 1
        self.content.opened(version)
        return fh

    def _fill(self, layout: str) -> Callable[[Path], object]:
        """How a file opened for writing gets its current bytes: copied from the server's own file when
        the server is on this machine (``ServerFiles.copy_to``), else one streamed GET."""
        def fill(local: Path) -> object:
            server_files = self.content.server_files
            copied = server_files.copy_to(layout, local) if server_files is not None else None
            return copied if copied is not None else self.client.download_to(layout, local)
        return fill

    def _reopen_for_append(self, layout: str, flags: int, staged: StagedFile | None) -> int | None:
        """``open(p, "ab")`` (write-only, append, no truncate) of a file whose clean copy this mount
        kept (or still has open, e.g. the previous handle's release is still on its way): no HEAD.
        Nothing can be read through such a handle; the upload's precondition finds a change made
        elsewhere meanwhile, and the new bytes are then appended to the current version."""
        if (flags & os.O_ACCMODE) != os.O_WRONLY or not flags & os.O_APPEND or flags & os.O_TRUNC \
                or not self.client.supports("write-at-offset", layout):
            return None
        if staged is not None:
            if staged.dirty or staged.remote_size is None or not staged.remote_etag:
                return None  # someone else is writing it: share the staged file as any open does
            kept: tuple[int, str] | None = (staged.remote_size, staged.remote_etag)
        else:
            kept = self.staging.kept_version(layout)
        if kept is None:
            return None
        staged = self.staging.open(layout, None, truncate=False, remote=kept, unverified=True)
        return self.staged(layout, staged, append=True)

    # -- reads without a handle (a read-only mount) --------------------------------------------------

    def read_unopened(self, path: str, size: int, offset: int) -> bytes:
        out = bytearray(size)
        with memoryview(out) as view:
            count = self.read_unopened_into(path, view, offset)
        return bytes(out[:count])

    def read_unopened_into(self, path: str, out: memoryview, offset: int) -> int:
        """A read on a read-only mount, where the kernel opens files without asking (FUSE no-open, see
        ``AlgoOperations.open``): the version the resolver holds now (the one the kernel's attributes
        describe: both expire together), read through the content cache as a ``ReadHandle`` reads. The
        first bytes of a small file count as its open for the directory prefetcher."""
        layout = layout_path(path)
        attr = self.resolver.fresh(layout)
        if attr is None:
            raise FuseOSError(errno.ENOENT)
        if attr.is_dir:
            raise FuseOSError(errno.EISDIR)
        version = file_version(layout, attr)
        if offset == 0:
            self.content.opened(version)
        return self.content.read_into(version, attr.etag, offset, out)

    # -- truncate(2) of a path --------------------------------------------------------------------

    def truncate(self, layout: str, length: int) -> None:
        """An open file's staged bytes; a file nobody has open is staged, truncated and uploaded now."""
        staged = self.staging.get(layout)
        if staged is not None:
            if length > staged.size():
                self.staging.check_space(length - staged.size())
            staged.truncate(length)
            return
        attr = self.resolver.require(layout)
        if attr.is_dir:
            raise FuseOSError(errno.EISDIR)
        fill = self._fill(layout) if length > 0 and attr.size > 0 else None
        staged = self.staging.open(layout, fill, truncate=False, remote=(attr.size, attr.etag))
        try:
            staged.truncate(length)
            self.uploader.upload(staged)
        finally:
            self.staging.release(staged)
