"""``LocalBackend``: a storage tree in a local directory (the hosted data, and today's connectors).

Writes are staged in hidden temp files (``.algofs-partial-*``, a name the API refuses and listings hide)
next to their destination and land with ``os.replace``, so an interrupted upload leaves the previous
version and no partial file; leftovers of a killed server are swept at start-up. There is no ``fsync``:
``os.replace`` is atomic for readers and interrupted transfers, not a power-loss guarantee.

Every key is resolved with ``realpath`` and refused (OutsideRoot) when its real location is outside the
root, so a symlink planted inside a collection is never followed out of it.
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

from ...names import RESERVED_PREFIX
from .base import (
    COPY,
    FOLDER_MTIME,
    MOVE,
    SET_MTIME,
    WRITE_AT_OFFSET,
    AlreadyExists,
    CrossBackend,
    DirectoryNotEmpty,
    EntryInfo,
    InvalidOperation,
    IsADirectory,
    Key,
    ListingPage,
    NameTooLong,
    NotADirectory,
    NotFound,
    OffsetBeyondEnd,
    OutsideRoot,
    PreconditionFailed,
    SortKey,
    StorageBackend,
    StorageError,
    Upload,
    check_key,
)
from .scan import DirectoryIndex

READ_CHUNK = 1024 * 1024
#: One index for every local backend of the process, so its memory bound holds for all of them together.
SHARED_INDEX = DirectoryIndex()

_ERRNO_TO_ERROR: dict[int, type[StorageError]] = {
    errno.ENOENT: NotFound,
    errno.EEXIST: AlreadyExists,
    errno.ENOTDIR: NotADirectory,
    errno.EISDIR: IsADirectory,
    errno.ENOTEMPTY: DirectoryNotEmpty,
    errno.ENAMETOOLONG: NameTooLong,
    errno.EINVAL: InvalidOperation,
    errno.ELOOP: OutsideRoot,
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
        messages = {NotFound: "path not found", NameTooLong: "name or path too long"}
        raise error(messages.get(error, exc.strerror or "storage error")) from exc


def etag_of(st: os.stat_result) -> str:
    """Cheap strong validator: inode, size and nanosecond mtime (changes on every replace or write)."""
    return f'"{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}"'


def entry_of(name: str, st: os.stat_result) -> EntryInfo:
    if stat.S_ISDIR(st.st_mode):
        return EntryInfo(name, True, 0, st.st_mtime, None)
    return EntryInfo(name, False, st.st_size, st.st_mtime, etag_of(st))


class LocalBackend(StorageBackend):
    """Objects under ``root``; metadata blobs under ``meta_dir`` (outside ``root``: keys can't reach it)."""

    capabilities = frozenset({WRITE_AT_OFFSET, MOVE, COPY, SET_MTIME, FOLDER_MTIME})

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

    def inside(self, real: str) -> bool:
        return real == self.real_root or real.startswith(self.real_root + os.sep)

    def path(self, key: Key) -> Path:
        """The local path of ``key``, refused when its real location (links followed) is outside."""
        check_key(key)
        path = self.root.joinpath(*key)
        with storage_errors():
            real = os.path.realpath(path)
        if not self.inside(real):
            raise OutsideRoot("path resolves outside the storage root")
        return path

    def _stat(self, key: Key) -> tuple[Path, os.stat_result]:
        path = self.path(key)
        with storage_errors():
            return path, path.stat()

    # -- reading -------------------------------------------------------------------------------------

    def info(self, key: Key) -> EntryInfo:
        _path, st = self._stat(key)
        return entry_of(key[-1] if key else "", st)

    def read(self, key: Key, start: int = 0, length: int | None = None) -> Iterator[bytes]:
        path = self.path(key)
        with storage_errors():
            handle = open(path, "rb", buffering=0)  # noqa: SIM115 (closed by the generator)
        if stat.S_ISDIR(os.fstat(handle.fileno()).st_mode):
            handle.close()
            raise IsADirectory("path is a directory")
        return self._chunks(handle, start, length)

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
        path, st = self._stat(key)
        if not stat.S_ISDIR(st.st_mode):
            raise NotADirectory("not a directory")
        with storage_errors():
            keys = self.index.sorted_keys(path)
        start = self.index.position_after(keys, after)
        chunk = keys[start:start + limit]
        entries = []
        for _kind, name in chunk:
            entry = self._listable(path / name, name)
            if entry is not None:
                entries.append(entry)
        more = start + limit < len(keys)
        return ListingPage(entries, chunk[-1] if more and chunk else None)

    def _listable(self, path: Path, name: str) -> EntryInfo | None:
        """The entry of a listing, or None for what isn't shown (vanished, special, link leading out)."""
        try:
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                if not self.inside(os.path.realpath(path)):
                    return None
                st = path.stat()
        except OSError:
            return None
        if stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode):
            return entry_of(name, st)
        return None

    # -- writing -------------------------------------------------------------------------------------

    def _parent_dir(self, key: Key) -> Path:
        if not key:
            raise InvalidOperation("the root is a directory")
        path = self.path(key)
        with storage_errors():
            if not stat.S_ISDIR(path.parent.stat().st_mode):
                raise NotADirectory("a parent is not a directory")
        return path

    def write(self, key: Key, *, offset: int | None = None, truncate: bool = False,
              if_match: str | None = None, expected_size: int | None = None) -> Upload:
        path = self._parent_dir(key)
        if offset is not None and offset < 0:
            raise InvalidOperation("offset must not be negative")
        current = self._current(path)
        if current is not None and current.is_dir:
            raise IsADirectory("a directory with that name exists")
        check_preconditions(current, if_match, expected_size)
        if offset is not None and offset > 0:
            if current is None:
                raise NotFound("path not found")
            if offset > current.size:
                raise OffsetBeyondEnd(f"offset {offset} is past the end of the file ({current.size} bytes)",
                                      size=current.size)
        return LocalUpload(self, path, offset, truncate, if_match, expected_size)

    @staticmethod
    def _current(path: Path) -> EntryInfo | None:
        try:
            return entry_of(path.name, path.stat())
        except FileNotFoundError:
            return None
        except OSError as exc:
            with storage_errors():
                raise exc

    def mkdir(self, key: Key) -> EntryInfo:
        path = self._parent_dir(key)
        with storage_errors():
            path.mkdir()
            return entry_of(path.name, path.stat())

    def delete_file(self, key: Key) -> None:
        path, st = self._stat(key)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectory("path is a directory")
        with storage_errors():
            path.unlink()

    def delete_dir(self, key: Key, force: bool = False) -> int:
        if not key:
            raise InvalidOperation("the root can't be deleted")
        path, st = self._stat(key)
        if not stat.S_ISDIR(st.st_mode):
            raise NotADirectory("not a directory")
        with storage_errors():
            if not force:
                path.rmdir()  # ENOTEMPTY -> DirectoryNotEmpty
                return 0
            deleted = sum(len(files) for _d, _s, files in os.walk(path))
            shutil.rmtree(path)
        return deleted

    # -- extensions ----------------------------------------------------------------------------------

    def move(self, source: Key, destination: Key, overwrite: bool = False) -> EntryInfo:
        if not source or not destination:
            raise InvalidOperation("the root can't be moved")
        if destination[:len(source)] == source and destination != source:
            raise InvalidOperation("a directory can't be moved into itself")
        src, st = self._stat(source)
        dst = self._parent_dir(destination)
        if source == destination:
            return entry_of(dst.name, st)
        with self._commit_lock, storage_errors():
            if os.path.lexists(dst):
                if not overwrite:
                    raise AlreadyExists("the destination exists")
                if stat.S_ISDIR(dst.stat().st_mode) != stat.S_ISDIR(st.st_mode):
                    kind = IsADirectory if not stat.S_ISDIR(st.st_mode) else NotADirectory
                    raise kind("the destination is of the other kind (file / directory)")
            os.rename(src, dst)
            return entry_of(dst.name, dst.stat())

    def copy(self, source: Key, destination: Key, overwrite: bool = False) -> EntryInfo:
        src, st = self._stat(source)
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectory("only files can be copied")
        dst = self._parent_dir(destination)
        if not overwrite and os.path.lexists(dst):
            raise AlreadyExists("the destination exists")
        upload = LocalUpload(self, dst, None, False, None, None)
        try:
            with storage_errors():
                shutil.copyfile(src, upload.temp_path)
            if not overwrite and os.path.lexists(dst):
                raise AlreadyExists("the destination exists")
            return upload.commit()
        finally:
            upload.abort()

    def set_mtime(self, key: Key, mtime: float) -> EntryInfo:
        path, st = self._stat(key)
        with storage_errors():
            os.utime(path, ns=(st.st_atime_ns, int(round(mtime * 1e9))))
            return entry_of(path.name, path.stat())

    # -- metadata ------------------------------------------------------------------------------------

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
            for dirpath, _dirnames, filenames in os.walk(top):
                for name in filenames:
                    if name.startswith(RESERVED_PREFIX):
                        Path(dirpath, name).unlink(missing_ok=True)
                        removed += 1
        return removed


def check_preconditions(current: EntryInfo | None, if_match: str | None, expected_size: int | None) -> None:
    """PreconditionFailed unless the file still has the ETag / size a writer based its change on."""
    etag = current.etag if current else None
    size = current.size if current else 0
    if if_match is not None and if_match.strip() != "*" and if_match.strip().removeprefix("W/") != etag:
        raise PreconditionFailed("the file changed (ETag does not match If-Match)", etag=etag, size=size)
    if if_match is not None and if_match.strip() == "*" and current is None:
        raise PreconditionFailed("the file does not exist (If-Match: *)", etag=None, size=0)
    if expected_size is not None and expected_size != size:
        raise PreconditionFailed(f"the file is {size} bytes, not the expected {expected_size}",
                                 etag=etag, size=size)


class LocalUpload(Upload):
    """The body is staged in a temp file; ``commit`` lands it.

    Whole-file writes replace the file with ``os.replace``. Appends (offset equal to the size at commit)
    copy the staged tail onto the end of the file in place and truncate it back if that fails, so the
    file is never left with part of a tail. Writes inside the file (or with ``truncate``) build the new
    version in a second temp file (a copy of the old one, patched) and replace the file with it.
    """

    def __init__(self, backend: LocalBackend, destination: Path, offset: int | None, truncate: bool,
                 if_match: str | None, expected_size: int | None):
        self.backend = backend
        self.destination = destination
        self.offset = offset
        self.truncate = truncate
        self.if_match = if_match
        self.expected_size = expected_size
        self.temp_path = destination.parent / f"{RESERVED_PREFIX}{secrets.token_hex(8)}"
        with storage_errors():
            fd = os.open(self.temp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        self._file = os.fdopen(fd, "wb", buffering=1024 * 1024)
        self.bytes_written = 0

    def write(self, chunk: bytes) -> None:
        with storage_errors():
            self._file.write(chunk)
        self.bytes_written += len(chunk)

    def commit(self) -> EntryInfo:
        with storage_errors():
            self._file.close()
        with self.backend._commit_lock:
            current = LocalBackend._current(self.destination)
            if current is not None and current.is_dir:
                raise IsADirectory("a directory with that name exists")
            check_preconditions(current, self.if_match, self.expected_size)
            with storage_errors():
                if self.offset is None or (current is None and self.offset == 0):
                    os.replace(self.temp_path, self.destination)
                elif current is None:
                    raise NotFound("the file was removed meanwhile")
                elif self.offset > current.size:
                    raise OffsetBeyondEnd(f"offset {self.offset} is past the end of the file "
                                          f"({current.size} bytes)", size=current.size)
                elif self.offset == current.size:
                    self._append_in_place(current.size)
                else:
                    self._patch_copy(current.size)
                return entry_of(self.destination.name, self.destination.stat())

    def _append_in_place(self, size: int) -> None:
        with open(self.destination, "r+b") as target, open(self.temp_path, "rb") as tail:
            try:
                target.seek(size)
                shutil.copyfileobj(tail, target, READ_CHUNK)
                target.flush()
            except BaseException:
                target.truncate(size)
                raise
        self.temp_path.unlink(missing_ok=True)

    def _patch_copy(self, size: int) -> None:
        assert self.offset is not None
        patched = self.destination.parent / f"{RESERVED_PREFIX}{secrets.token_hex(8)}"
        try:
            shutil.copyfile(self.destination, patched)
            with open(patched, "r+b") as target, open(self.temp_path, "rb") as body:
                target.seek(self.offset)
                shutil.copyfileobj(body, target, READ_CHUNK)
                if self.truncate:
                    target.truncate(self.offset + self.bytes_written)
            shutil.copystat(self.destination, patched)  # mode; the mtime is set by the write below
            os.utime(patched)
            os.replace(patched, self.destination)
        finally:
            patched.unlink(missing_ok=True)
        self.temp_path.unlink(missing_ok=True)

    def abort(self) -> None:
        if not self._file.closed:
            with contextlib.suppress(OSError):
                self._file.close()
        with contextlib.suppress(OSError):
            self.temp_path.unlink(missing_ok=True)
