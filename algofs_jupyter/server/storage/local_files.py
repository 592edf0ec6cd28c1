"""What ``LocalBackend`` (storage/local.py) and its uploads (storage/local_upload.py) share: file system
errors as storage errors, ``Located`` (a key's parent directory, open, and its name there), and the
``EntryInfo`` of a stat."""

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
