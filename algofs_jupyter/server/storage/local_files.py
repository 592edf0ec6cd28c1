"""What ``LocalBackend`` (storage/local.py) and its uploads (storage/local_upload.py) share: file system
errors as storage errors, ``Located`` (a key's parent directory, open, and its name there), the
``EntryInfo`` of a stat, and ``FileSpan``, the bytes a read answers."""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator

from .base import (
    AlreadyExists,
    CrossBackend,
    DirectoryNotEmpty,
    EntryInfo,
    InvalidOperation,
    IsADirectory,
    NameTooLong,
    NotADirectory,
    NotFound,
    OutsideRoot,
    StorageError,
    Unsupported,
)
from .local_posix import describe

READ_CHUNK = 1024 * 1024

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
    errno.EOPNOTSUPP: Unsupported,  # e.g. extended attributes where the file system keeps none
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


def current_entry(where: Located) -> EntryInfo | None:
    st = where.lookup()
    return None if st is None else entry_of(where.name, st, where.dir_fd)


class FileSpan:
    """``length`` bytes (None: to the end) of an open file from ``offset``: an iterator of chunks of at most
    ``READ_CHUNK`` bytes, like every backend's ``read``, that also says where its bytes lie, so a handler
    on the event loop may hand the descriptor to ``sendfile(2)`` instead (``server/send_file.py``). A file
    cut shorter while it is read ends the chunks early (a short body); ``close`` closes the file."""

    def __init__(self, fd: int, offset: int, length: int | None):
        self.fd = fd
        self.offset = offset  # of the next byte to send
        self.remaining = length if length is not None else max(0, os.fstat(fd).st_size - offset)

    def __iter__(self) -> FileSpan:
        return self

    def __next__(self) -> bytes:
        chunk = os.pread(self.fd, min(READ_CHUNK, self.remaining), self.offset) if (
            self.remaining > 0 and self.fd >= 0) else b""
        if not chunk:  # the end, or truncated under us
            self.close()
            raise StopIteration
        self.offset += len(chunk)
        self.remaining -= len(chunk)
        return chunk

    def advance(self, sent: int) -> None:
        """``sent`` bytes went out by other means (sendfile)."""
        self.offset += sent
        self.remaining -= sent

    def close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)

    __del__ = close  # a reader that stops early without closing (a generator closed its file the same way)
