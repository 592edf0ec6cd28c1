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
import errno
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
    MOVE,
    NOT_LOOKED_UP,
    POSIX,
    SET_MTIME,
    WRITE_AT_OFFSET,
    AlreadyExists,
    CreateRefused,
    CrossBackend,
    DirectoryNotEmpty,
    EntryInfo,
    InvalidOperation,
    IsADirectory,
    Key,
    ListingPage,
    Lookup,
    NameTooLong,
    NotADirectory,
    NotFound,
    OutsideRoot,
    Posix,
    SortKey,
    StorageBackend,
    StorageError,
    Upload,
    Usage,
    WriteRequest,
    check_key,
)
from .local_posix import describe, posix_of, read_attrs, write_attrs
from .posix import DEFAULT_FILE_MODE, LINK_MODE, AttrChange, check_target, now_ns
from .scan import DirectoryIndex

READ_CHUNK = 1024 * 1024
#: One index for every local backend of the process, so its memory bound holds for all of them together.
SHARED_INDEX = DirectoryIndex()
#: Links resolved in one key before giving up (the kernel's own limit is 40).
MAX_LINKS = 40
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC

_ERRNO_TO_ERROR: dict[int, type[StorageError]] = {
    errno.ENOENT: NotFound,
    errno.EEXIST: AlreadyExists,
    errno.ENOTDIR: NotADirectory,
    errno.EISDIR: IsADirectory,
    errno.ENOTEMPTY: DirectoryNotEmpty,
    errno.ENAMETOOLONG: NameTooLong,
    errno.EINVAL: InvalidOperation,
    errno.ELOOP: OutsideRoot,  # O_NOFOLLOW met a link swapped in after it was resolved
    errno.EXDEV: CrossBackend,
}


@contextlib.contextmanager
def storage_errors() -> Iterator[None]:
    """Turn the OSErrors of file system calls into StorageErrors (never a bare OSError upwards)."""
    try:
        yield
    except StorageError:
        raise
    except OSError as exc:
        error = _ERRNO_TO_ERROR.get(exc.errno or 0, StorageError)
        messages = {NotFound: "path not found", NameTooLong: "name or path too long",
                    OutsideRoot: "links are not followed here"}
        raise error(messages.get(error, exc.strerror or "storage error")) from exc


def entry_of(name: str, st: os.stat_result, dir_fd: int | None = None) -> EntryInfo:
    """The info of ``name`` in the open directory ``dir_fd``, its POSIX metadata included."""
    return describe(name, st, dir_fd)


class Located:
    """Where a key really is: an open descriptor of its parent directory and its name there (the name
    is not a link; it may not exist yet). Closes the descriptor when used as a context manager."""

    def __init__(self, dir_fd: int, name: str):
        self.dir_fd = dir_fd
        self.name = name

    def stat(self) -> os.stat_result:
        return os.stat(self.name, dir_fd=self.dir_fd, follow_symlinks=False)

    def lookup(self) -> os.stat_result | None:
        try:
            return self.stat()
        except FileNotFoundError:
            return None

    def open(self, flags: int, mode: int = 0o644) -> int:
        return os.open(self.name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=self.dir_fd)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.dir_fd)

    def __enter__(self) -> Located:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


class LocalBackend(StorageBackend):
    """Objects under ``root``; metadata blobs under ``meta_dir`` (outside ``root``: keys can't reach it)."""

    capabilities = frozenset({WRITE_AT_OFFSET, MOVE, COPY, SET_MTIME, FOLDER_MTIME, EXCLUSIVE_CREATE, POSIX})

    def __init__(self, root: Path, meta_dir: Path, index: DirectoryIndex | None = None):
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.real_root = os.path.realpath(root)
        self.meta_dir = meta_dir
        self.index = index or SHARED_INDEX
        self._commit_lock = threading.Lock()

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
        return self._chunks(os.fdopen(fd, "rb", buffering=0), start, length)

    @staticmethod
    def _chunks(handle, start: int, length: int | None) -> Iterator[bytes]:
        with handle:
            handle.seek(start)
            remaining = length if length is not None else float("inf")
            while remaining > 0:
                chunk = handle.read(int(min(READ_CHUNK, remaining)))
                if not chunk:
                    return  # truncated under us: a short body
                remaining -= len(chunk)
                yield chunk

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
                request.check(_current(where))
            return LocalUpload(self, where, request)
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
            if not stat.S_ISLNK(st.st_mode):  # the metadata moved with it; a move is a change: ctime
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
                if not overwrite and _current(upload.where) is not None:
                    raise AlreadyExists("the destination exists")
                with storage_errors(), open(src_fd, "rb", closefd=False) as body:
                    shutil.copyfileobj(body, upload.file, READ_CHUNK)
                with self._commit_lock:
                    if not overwrite and _current(upload.where) is not None:
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


def _current(where: Located) -> EntryInfo | None:
    st = where.lookup()
    return None if st is None else entry_of(where.name, st, where.dir_fd)


class LocalUpload(Upload):
    """The body is staged in a temp file next to the destination; ``commit`` lands it.

    Whole-file writes rename the temp file over the file. Appends (offset equal to the size at commit)
    copy the staged tail onto the end of the file in place and truncate it back if that fails, so the
    file is never left with part of a tail. Writes inside the file (or with ``truncate``) build the new
    version in a second temp file (a copy of the old one, patched) and rename it over the file.
    The upload owns ``where`` (its parent directory's descriptor) until commit or abort.
    """

    def __init__(self, backend: LocalBackend, where: Located, request: WriteRequest):
        self.backend = backend
        self.where = where
        self.request = request
        self.temp_name = f"{RESERVED_PREFIX}{secrets.token_hex(8)}"
        with storage_errors():
            fd = os.open(self.temp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o644, dir_fd=where.dir_fd)
        self.file = os.fdopen(fd, "wb", buffering=1024 * 1024)
        self.bytes_written = 0
        self._done = False
        #: the metadata the landed file gets (a copy's); None: the rules of ``_landing_posix``
        self.posix: Posix | None = None

    def write(self, chunk: bytes) -> None:
        with storage_errors():
            self.file.write(chunk)
        self.bytes_written += len(chunk)

    def commit(self) -> EntryInfo:
        where = self.where
        with storage_errors():
            self.file.close()
        with self.backend._commit_lock, storage_errors():
            current = _current(where)
            self.request.check(current)  # again: another writer may have got there first
            whole = self.request.offset is None or current is None  # a whole file, or a new one at offset 0
            posix = self._landing_posix(current, whole)
            if whole:
                if posix is not None:
                    write_attrs(where.dir_fd, self.temp_name, posix)
                if self.request.exclusive:  # link(2) never replaces: race-free against other processes too
                    try:
                        os.link(self.temp_name, where.name, src_dir_fd=where.dir_fd, dst_dir_fd=where.dir_fd,
                                follow_symlinks=False)
                    except FileExistsError as exc:
                        raise CreateRefused("something exists at that name (If-None-Match: *)") from exc
                    os.unlink(self.temp_name, dir_fd=where.dir_fd)
                else:
                    os.rename(self.temp_name, where.name, src_dir_fd=where.dir_fd, dst_dir_fd=where.dir_fd)
            elif current is not None and self.request.offset == current.size:
                self._append_in_place(current.size)
            else:
                self._patch_copy()
            if not whole and posix is not None:
                write_attrs(where.dir_fd, where.name, posix)
            self._done = True
            info = entry_of(where.name, where.stat(), where.dir_fd)
        self.abort()  # nothing left to discard: releases the directory descriptor
        return info

    def _landing_posix(self, current: EntryInfo | None, whole: bool) -> Posix | None:
        """The stored metadata of the file after this write (None: none stored, the defaults show).
        A new file gets the requested mode; a changed one keeps mode and owner (a replaced symlink
        becomes a plain file); ctime is now. mtime is the file's own."""
        now = now_ns()
        if self.posix is not None:
            return self.posix
        old = current.posix if current is not None else None
        if old is None or (whole and old.is_link) or current is None:
            if self.request.mode is None:
                return None
            return Posix(DEFAULT_FILE_MODE & ~0o7777 | self.request.mode, None, None, 0, now, now)
        return Posix(old.mode, old.uid, old.gid, 0, old.atime_ns, now)

    def _open_temp(self, name: str, flags: int) -> int:
        return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=self.where.dir_fd)

    def _append_in_place(self, size: int) -> None:
        with open(self.where.open(os.O_RDWR), "r+b") as target, \
                open(self._open_temp(self.temp_name, os.O_RDONLY), "rb") as tail:
            try:
                target.seek(size)
                shutil.copyfileobj(tail, target, READ_CHUNK)
                target.flush()
            except BaseException:
                target.truncate(size)
                raise
        os.unlink(self.temp_name, dir_fd=self.where.dir_fd)

    def _patch_copy(self) -> None:
        offset = self.request.offset
        assert offset is not None
        where = self.where
        patched = f"{RESERVED_PREFIX}{secrets.token_hex(8)}"
        try:
            with open(where.open(os.O_RDONLY), "rb") as old, \
                    open(self._open_temp(patched, os.O_RDWR | os.O_CREAT | os.O_EXCL), "r+b") as target, \
                    open(self._open_temp(self.temp_name, os.O_RDONLY), "rb") as body:
                shutil.copyfileobj(old, target, READ_CHUNK)
                target.seek(offset)
                shutil.copyfileobj(body, target, READ_CHUNK)
                if self.request.truncate:
                    target.truncate(offset + self.bytes_written)
                os.fchmod(target.fileno(), stat.S_IMODE(os.fstat(old.fileno()).st_mode))
            os.rename(patched, where.name, src_dir_fd=where.dir_fd, dst_dir_fd=where.dir_fd)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(patched, dir_fd=where.dir_fd)
        os.unlink(self.temp_name, dir_fd=where.dir_fd)

    def abort(self) -> None:
        if not self.file.closed:
            with contextlib.suppress(OSError):
                self.file.close()
        if self.where.dir_fd >= 0:
            if not self._done:
                with contextlib.suppress(OSError):
                    os.unlink(self.temp_name, dir_fd=self.where.dir_fd)
            self.where.close()
            self.where.dir_fd = -1
