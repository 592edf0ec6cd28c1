"""The failures of storage backends (server/storage/base.py): one class per POSIX error a file system
would report; ``server/errors.py`` maps them to HTTP statuses in one table."""

from __future__ import annotations


class StorageError(Exception):
    """Base of every backend failure; ``errno`` names the POSIX error a file system would report."""

    errno = "EIO"

    def __init__(self, message: str, **details: object):
        super().__init__(message)
        self.message = message
        self.details = details


class NotFound(StorageError):
    """The key (or, for a create, its parent directory) does not exist."""

    errno = "ENOENT"


class AlreadyExists(StorageError):
    """Something already exists where a create or a non-overwriting move/copy would put its result."""

    errno = "EEXIST"


class NotADirectory(StorageError):
    """A directory was required (listing, parent of a create, delete_dir) but a file is there."""

    errno = "ENOTDIR"


class IsADirectory(StorageError):
    """A file was required (read, write, delete_file, copy) but a directory is there."""

    errno = "EISDIR"


class DirectoryNotEmpty(StorageError):
    """``delete_dir`` without ``force`` (or a move onto a directory) found entries."""

    errno = "ENOTEMPTY"


class NameTooLong(StorageError):
    """A segment over NAME_MAX bytes, or a key the backend cannot hold (over PATH_MAX)."""

    errno = "ENAMETOOLONG"


class InvalidOperation(StorageError):
    """A request that can never succeed as asked: moving a directory into itself, a negative offset …"""

    errno = "EINVAL"


class OffsetBeyondEnd(StorageError):
    """``write`` at an offset past the end of the file (no holes are made)."""

    errno = "EINVAL"


class PreconditionFailed(StorageError):
    """The object changed: its ETag or size is not what the writer expected. ``details`` has the
    current ``etag`` and ``size`` so the client can decide what to do."""

    errno = "ESTALE"


class CreateRefused(PreconditionFailed):
    """An exclusive create (``If-None-Match: *``) found a file, folder or symlink at the name (HTTP 412)."""

    errno = "EEXIST"


class Unsatisfiable(StorageError):
    """``read_file`` from at or past the end of the file (HTTP 416)."""

    errno = "EINVAL"


class OutsideRoot(StorageError):
    """The key resolves (through a link) to a location outside the backend's root."""

    errno = "EACCES"


class CrossBackend(StorageError):
    """A move or copy between two backends; the client copies through itself instead."""

    errno = "EXDEV"


class Unsupported(StorageError):
    """An optional operation this backend does not implement (see ``capabilities``)."""

    errno = "ENOTSUP"


class QuotaExceeded(StorageError):
    """The change would take its user's data past their storage quota (bytes, or files and folders);
    nothing of it was stored. ``details`` has the ``quota`` and the ``usage`` (``server/quota.py``)."""

    errno = "EDQUOT"
