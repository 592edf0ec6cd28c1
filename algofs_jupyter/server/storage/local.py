"""``LocalBackend``: a storage tree in a local directory (the hosted data, and today's connectors).

Keys are resolved one name at a time from an open descriptor of the root (``openat`` and friends, never
an absolute path), which gives two properties:

- Links never lead out. Each name is looked up without following links; a link is resolved by hand and
  refused (OutsideRoot) when its target leaves the root, and every open uses ``O_NOFOLLOW``, so a link
  swapped in meanwhile is not followed either. Links that stay inside the root work.
- Any key up to PATH_MAX (4095 bytes) works, whatever the length of the root's own path: the kernel only
  ever sees one name at a time.

Writes are staged in hidden temp files (``.algofs-partial-*``, a name the API refuses and listings hide)
next to their destination and land with ``rename``, so an interrupted upload leaves the previous version
and no partial file; leftovers of a killed server are swept at start-up. There is no ``fsync``:
``rename`` is atomic for readers and interrupted transfers, not a power-loss guarantee.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from ...names import RESERVED_PREFIX
from .base import (
    COPY,
    EXCLUSIVE_CREATE,
    FOLDER_MTIME,
    LOCAL_READS,
    MOVE,
    NOT_LOOKED_UP,
    POSIX,
    SET_MTIME,
    WRITE_AT_OFFSET,
    AlreadyExists,
    CreateRefused,
    EntryInfo,
    InvalidOperation,
    IsADirectory,
    Key,
    ListingPage,
    Lookup,
    NotADirectory,
    NotFound,
    OutsideRoot,
    Posix,
    SortKey,
    StorageBackend,
    StorageError,
    Usage,
    WriteRequest,
    check_key,
)
from .local_files import READ_CHUNK, FileSpan, Located, current_entry, entry_of, storage_errors
from .local_posix import posix_of, read_attrs, write_attrs, xattrs_supported
from .local_upload import LocalUpload
from .posix import LINK_MODE, AttrChange, check_target, now_ns
from .scan import DirectoryIndex

#: One index for every local backend of the process, so its memory bound holds for all of them together.
SHARED_INDEX = DirectoryIndex()
#: Links resolved in one key before giving up (the kernel's own limit is 40).
MAX_LINKS = 40
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class LocalBackend(StorageBackend):
    """Objects under ``root``; metadata blobs under ``meta_dir`` (outside ``root``: keys can't reach it)."""

    capabilities = frozenset({WRITE_AT_OFFSET, MOVE, COPY, SET_MTIME, FOLDER_MTIME, EXCLUSIVE_CREATE, POSIX,
                              LOCAL_READS})

    def __init__(self, root: Path, meta_dir: Path, index: DirectoryIndex | None = None):
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.real_root = os.path.realpath(root)
        self.meta_dir = meta_dir
        self.index = index or SHARED_INDEX
        self._commit_lock = threading.Lock()
        if not xattrs_supported(self.real_root):  # no place for modes and links: not advertised
            self.capabilities = LocalBackend.capabilities - {POSIX}

    def __repr__(self) -> str:
        return f"LocalBackend({str(self.root)!r})"

    # -- resolving keys ------------------------------------------------------------------------------

    def _open_root(self) -> int:
        with storage_errors():
            return os.open(self.real_root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def locate(self, key: Key, follow_last: bool = True) -> Located:
        """The parent directory and name of ``key``'s real location, links resolved inside the root.

        Raises OutsideRoot for a link leading out, NotFound / NotADirectory for a missing or non-directory
        parent. A missing last name is fine (the caller may create it). ``key`` must not be the root.
        ``follow_last=False`` stops at a link in the last place (to remove or rename the link itself).
        """
        check_key(key)
        if not key:
            raise InvalidOperation("the root has no parent")
        if any(not name or "/" in name or "\x00" in name or name in (".", "..") for name in key):
            raise InvalidOperation("a key is a tuple of plain names")  # callers validate; never traverse
        pending = list(key)
        depth: list[str] = []
        fd = self._open_root()
        links = 0
        try:
            with storage_errors():
                while True:
                    name = pending.pop(0)
                    if name in ("", "."):
                        if not pending:
                            raise IsADirectory("a link to a directory where a name is needed")
                        continue
                    if name == "..":
                        if not depth:
                            raise OutsideRoot("a link leads out of the storage root")
                        depth.pop()
                        os.close(fd)
                        fd = self._open_root()
                        pending = depth + pending
                        depth = []
                        continue
                    try:
                        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                    except FileNotFoundError:
                        if not pending:
                            return Located(fd, name)
                        raise
                    if stat.S_ISLNK(st.st_mode) and (pending or follow_last):
                        links += 1
                        if links > MAX_LINKS:
                            raise OutsideRoot("too many links")
                        target = os.readlink(name, dir_fd=fd)
                        if target.startswith("/"):
                            if target != self.real_root and not target.startswith(self.real_root + "/"):
                                raise OutsideRoot("a link leads out of the storage root")
                            os.close(fd)
                            fd = self._open_root()
                            depth = []
                            target = target[len(self.real_root):]
                        pending = [part for part in target.split("/") if part] + pending
                        if not pending:
                            raise IsADirectory("a link to the root where a name is needed")
                        continue
                    if not pending:
                        return Located(fd, name)
                    if not stat.S_ISDIR(st.st_mode):
                        raise NotADirectory("a parent is not a directory")
                    child = os.open(name, _DIR_FLAGS, dir_fd=fd)
                    os.close(fd)
                    fd = child
                    depth.append(name)
        except BaseException:
            os.close(fd)
            raise

    def open_dir(self, key: Key) -> int:
        """An open descriptor of directory ``key`` (the caller closes it)."""
        if not key:
            return self._open_root()
        with self.locate(key) as where, storage_errors():
            if where.lookup() is None:
                raise NotFound("path not found")
            return where.open(os.O_RDONLY | os.O_DIRECTORY)

    def _existing(self, key: Key, follow_last: bool = True) -> tuple[Located, os.stat_result]:
        where = self.locate(key, follow_last)
        try:
            with storage_errors():
                return where, where.stat()
        except BaseException:
            where.close()
            raise

    # -- reading -------------------------------------------------------------------------------------

    def info(self, key: Key) -> EntryInfo:
        if not key:
            check_key(key)
            with storage_errors():
                return entry_of("", os.stat(self.real_root))
        where, st = self._existing(key)
        with where, storage_errors():
            return entry_of(key[-1], st, where.dir_fd)

    def read(self, key: Key, start: int = 0, length: int | None = None) -> Iterator[bytes]:
        if not key:
            raise IsADirectory("path is a directory")
        with self.locate(key) as where, storage_errors():
            fd = where.open(os.O_RDONLY)
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            os.close(fd)
            raise IsADirectory("path is a directory")
        return FileSpan(fd, start, length)

    def open_file(self, key: Key) -> tuple[int, EntryInfo]:
        """Uploads land by rename or append past the end (local_upload.py): an open descriptor keeps the
        bytes of the version it was opened at."""
        if not key:
            raise IsADirectory("path is a directory")
        with self.locate(key) as where, storage_errors():
            fd = where.open(os.O_RDONLY)
            try:
                st = os.fstat(fd)
                if stat.S_ISDIR(st.st_mode):
                    raise IsADirectory("path is a directory")
                return fd, entry_of(where.name, st, where.dir_fd)
            except BaseException:
                os.close(fd)
                raise

    def list_page(self, key: Key, after: SortKey | None = None, limit: int = 1000) -> ListingPage:
        fd = self.open_dir(key)
        try:
            with storage_errors():
                keys = self.index.sorted_keys(fd)
            start = self.index.position_after(keys, after)
            chunk = keys[start:start + limit]
            entries = []
            for _kind, name in chunk:
                entry = self._listable(fd, key, name)
                if entry is not None:
                    entries.append(entry)
        finally:
            os.close(fd)
        more = start + limit < len(keys)
        return ListingPage(entries, chunk[-1] if more and chunk else None)

    def usage(self, key: Key) -> Usage:
        """One walk with a ``stat`` per file: every regular file and real folder below ``key`` (links and
        uploads in flight are not counted), names the API can't carry included (they take space too)."""
        fd = self.open_dir(key)
        total = count = 0
        try:
            with storage_errors():
                for _top, dirs, files, top_fd in os.fwalk(".", dir_fd=fd):
                    for name in files:
                        if name.startswith(RESERVED_PREFIX):
                            continue
                        with contextlib.suppress(FileNotFoundError):
                            st = os.stat(name, dir_fd=top_fd, follow_symlinks=False)
                            if stat.S_ISREG(st.st_mode):
                                total, count = total + st.st_size, count + 1
                    for name in dirs:  # links to directories are listed here too, never walked into
                        with contextlib.suppress(FileNotFoundError):
                            count += stat.S_ISDIR(os.stat(name, dir_fd=top_fd, follow_symlinks=False).st_mode)
        finally:
            os.close(fd)
        return Usage(total, count)

    def _listable(self, dir_fd: int, key: Key, name: str) -> EntryInfo | None:
        """The entry of a listing, or None for what isn't shown (vanished, special, link leading out)."""
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            linked = stat.S_ISLNK(st.st_mode)  # a link on disk (not the API's): followed inside the root
            if linked:
                where, st = self._existing((*key, name))
                where.close()
            if stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode):
                return entry_of(name, st, None if linked else dir_fd)
        except (OSError, StorageError):
            return None
        return None

    # -- writing -------------------------------------------------------------------------------------

    def write(self, key: Key, *, offset: int | None = None, truncate: bool = False,
              if_match: str | None = None, expected_size: int | None = None,
              current: EntryInfo | None | Literal[Lookup.NOT_DONE] = NOT_LOOKED_UP,
              exclusive: bool = False, mode: int | None = None) -> LocalUpload:
        # ``current`` is not needed: the disk answers at once, under the lock that makes the write safe
        if not key:
            raise IsADirectory("the root is a directory")
        request = WriteRequest(offset, truncate, if_match, expected_size, exclusive, mode)
        where = self.locate(key, follow_last=not exclusive)  # exclusive: a dangling disk link counts
        try:
            with storage_errors():
                request.check(current_entry(where))
            return LocalUpload(self._commit_lock, where, request)
        except BaseException:
            where.close()
            raise

    def mkdir(self, key: Key, mode: int | None = None) -> EntryInfo:
        if not key:
            raise AlreadyExists("the root exists")
        with self.locate(key) as where, storage_errors():
            os.mkdir(where.name, dir_fd=where.dir_fd)
            if mode is not None:
                st = where.stat()
                chosen = AttrChange(mode=mode).apply(posix_of(st, None), now_ns())
                write_attrs(where.dir_fd, where.name, chosen)
            return entry_of(where.name, where.stat(), where.dir_fd)

    def delete_file(self, key: Key) -> None:
        if not key:
            raise IsADirectory("the root is a directory")
        where, st = self._existing(key, follow_last=False)
        with where, storage_errors():
            if stat.S_ISDIR(st.st_mode):
                raise IsADirectory("path is a directory")
            os.unlink(where.name, dir_fd=where.dir_fd)  # a link: the link itself, as rm does

    def delete_dir(self, key: Key, force: bool = False) -> int:
        if not key:
            raise InvalidOperation("the root can't be deleted")
        where, st = self._existing(key, follow_last=False)
        with where, storage_errors():
            if stat.S_ISLNK(st.st_mode):  # a link to a directory: remove the link, not what it points to
                if not self.info(key).is_dir:
                    raise NotADirectory("not a directory")
                os.unlink(where.name, dir_fd=where.dir_fd)
                return 0
            if not stat.S_ISDIR(st.st_mode):
                raise NotADirectory("not a directory")
            if not force:
                os.rmdir(where.name, dir_fd=where.dir_fd)  # ENOTEMPTY -> DirectoryNotEmpty
                return 0
            deleted = 0
            for _top, dirs, files, top_fd in os.fwalk(where.name, topdown=False, dir_fd=where.dir_fd):
                for name in files:
                    os.unlink(name, dir_fd=top_fd)
                    deleted += 1
                for name in dirs:  # links to directories are listed here too: unlink, don't follow
                    if stat.S_ISLNK(os.stat(name, dir_fd=top_fd, follow_symlinks=False).st_mode):
                        os.unlink(name, dir_fd=top_fd)
                    else:
                        os.rmdir(name, dir_fd=top_fd)
            os.rmdir(where.name, dir_fd=where.dir_fd)
        return deleted

    # -- extensions ----------------------------------------------------------------------------------

    def move(self, source: Key, destination: Key, overwrite: bool = False) -> EntryInfo:
        if not source or not destination:
            raise InvalidOperation("the root can't be moved")
        if destination[:len(source)] == source and destination != source:
            raise InvalidOperation("a directory can't be moved into itself")
        src, st = self._existing(source, follow_last=False)  # a link moves as a link
        with src, self.locate(destination, follow_last=False) as dst, self._commit_lock, storage_errors():
            if source == destination:
                return entry_of(dst.name, st, dst.dir_fd)
            existing = dst.lookup()
            if existing is not None:
                if not overwrite:
                    raise AlreadyExists("the destination exists")
                if stat.S_ISDIR(existing.st_mode) != stat.S_ISDIR(st.st_mode):
                    kind = IsADirectory if not stat.S_ISDIR(st.st_mode) else NotADirectory
                    raise kind("the destination is of the other kind (file / directory)")
            os.rename(src.name, dst.name, src_dir_fd=src.dir_fd, dst_dir_fd=dst.dir_fd)
            if POSIX in self.capabilities and not stat.S_ISLNK(st.st_mode):  # moved along; ctime: now
                moved = dst.stat()
                old = posix_of(moved, read_attrs(dst.dir_fd, dst.name))
                write_attrs(dst.dir_fd, dst.name, Posix(old.mode, old.uid, old.gid, old.mtime_ns,
                                                        old.atime_ns, now_ns()))
            return entry_of(dst.name, dst.stat(), dst.dir_fd)

    def copy(self, source: Key, destination: Key, overwrite: bool = False) -> EntryInfo:
        if not source:
            raise IsADirectory("only files can be copied")
        with self.locate(source) as src, storage_errors():
            src_fd = src.open(os.O_RDONLY)
        try:
            if stat.S_ISDIR(os.fstat(src_fd).st_mode):
                raise IsADirectory("only files can be copied")
            upload = self.write(destination)
            attrs = read_attrs(src_fd, None)
            if attrs is not None:  # the copy keeps mode, owner and kind (a link copies as a link)
                old = posix_of(os.fstat(src_fd), attrs)
                upload.posix = Posix(old.mode, old.uid, old.gid, 0, now_ns(), now_ns())
            try:
                if not overwrite and current_entry(upload.where) is not None:
                    raise AlreadyExists("the destination exists")
                with storage_errors(), open(src_fd, "rb", closefd=False) as body:
                    shutil.copyfileobj(body, upload.file, READ_CHUNK)
                with self._commit_lock:
                    if not overwrite and current_entry(upload.where) is not None:
                        raise AlreadyExists("the destination exists")
                return upload.commit()
            finally:
                upload.abort()
        finally:
            os.close(src_fd)

    def set_mtime(self, key: Key, mtime: float) -> EntryInfo:
        if not key:
            raise InvalidOperation("the root's time is not the API's")
        where, st = self._existing(key)
        with where, storage_errors():
            os.utime(where.name, dir_fd=where.dir_fd, follow_symlinks=False,
                     ns=(st.st_atime_ns, int(round(mtime * 1e9))))
            return entry_of(where.name, where.stat())

    def set_attributes(self, key: Key, change: AttrChange) -> EntryInfo:
        if not key:
            raise InvalidOperation("the root's metadata is not the API's")
        where, st = self._existing(key)  # an API symlink is a plain file on disk: never followed
        with where, self._commit_lock, storage_errors():
            new = change.apply(entry_of(where.name, st, where.dir_fd).posix or posix_of(st, None), now_ns())
            write_attrs(where.dir_fd, where.name, new)
            if change.mtime_ns is not None:
                os.utime(where.name, dir_fd=where.dir_fd, follow_symlinks=False,
                         ns=(st.st_atime_ns, new.mtime_ns))
            return entry_of(where.name, where.stat(), where.dir_fd)

    def symlink(self, key: Key, target: str) -> EntryInfo:
        """A plain file holding the target, whose stored mode says it is a link; lands with ``link(2)``,
        so it never replaces anything."""
        check_target(target)
        if not key:
            raise AlreadyExists("the root exists")
        try:
            upload = self.write(key, exclusive=True)
            try:
                now = now_ns()
                upload.posix = Posix(LINK_MODE, None, None, 0, now, now)
                upload.write(target.encode("utf-8", "surrogateescape"))
                return upload.commit()
            finally:
                upload.abort()
        except CreateRefused as exc:
            raise AlreadyExists("something exists at that name") from exc

    # -- metadata (short names under meta_dir: plain paths) ----------------------------------------

    def _meta_path(self, name: Key) -> Path:
        check_key(name)
        return self.meta_dir.joinpath(*name)

    def read_meta(self, name: Key) -> bytes | None:
        path = self._meta_path(name)
        try:
            return path.read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            with storage_errors():
                raise exc

    def write_meta(self, name: Key, data: bytes) -> None:
        path = self._meta_path(name)
        with storage_errors():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{RESERVED_PREFIX}{secrets.token_hex(8)}")
            tmp.write_bytes(data)
            os.replace(tmp, path)

    def delete_meta(self, name: Key) -> None:
        path = self._meta_path(name)
        with storage_errors():
            path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):  # tidy: an empty folder of a forgotten collection
                path.parent.rmdir()

    def sweep(self) -> int:
        removed = 0
        for top in (self.root, self.meta_dir):
            if not top.is_dir():
                continue
            for _dir, _dirs, files, dir_fd in os.fwalk(top):
                for name in files:
                    if name.startswith(RESERVED_PREFIX):
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(name, dir_fd=dir_fd)
                        removed += 1
        return removed
