"""HTTP answers and transport failures → ``OSError`` subclasses with a real errno.

Every caller (FUSE ops, fsspec users) gets an exception whose ``errno`` is set: FUSE bindings turn an
``OSError`` without errno into garbage or EINVAL, so nothing here may leave it ``None``.
"""

from __future__ import annotations

import errno
from typing import Any


class BackendUnavailable(OSError):
    """The API did not answer in time (connection refused, reset, timeout): EIO."""

    def __init__(self, message: str):
        super().__init__(errno.EIO, message)


class StaleFile(OSError):
    """The remote file changed while it was being read in blocks: ESTALE."""

    def __init__(self, message: str):
        super().__init__(errno.ESTALE, message)


class PreconditionFailed(OSError):
    """A conditional write (``If-Match``/``expected_size``) found the file changed: ESTALE.

    ``size``/``etag`` describe the file as the server has it now (None when the server didn't say).
    """

    def __init__(self, message: str, size: int | None = None, etag: str | None = None):
        super().__init__(errno.ESTALE, message)
        self.size, self.etag = size, etag


class NotSupported(OSError):
    """The storage lacks an optional extension operation (HTTP 501 ENOTSUP): fall back."""

    def __init__(self, message: str):
        super().__init__(errno.EOPNOTSUPP, message)


#: errno names of the extensions' error bodies mapped to their exception classes (others: plain OSError).
_ERRNO_CLASSES: dict[str, type[OSError]] = {
    "ENOENT": FileNotFoundError, "EEXIST": FileExistsError, "EISDIR": IsADirectoryError,
    "ENOTDIR": NotADirectoryError, "EACCES": PermissionError, "EPERM": PermissionError,
}


def error_for_status(status: int, message: str, path: str, details: dict[str, Any] | None = None) -> OSError:
    """The exception for an HTTP error ``status`` (``message`` from the JSON body or X-Error-Message).

    ``details`` is the JSON ``error`` object; its ``errno`` (docs/api-extensions.md §7) wins over the
    status, so ENAMETOOLONG, EXDEV, ENOTDIR… reach the caller as themselves.
    """
    text = f"{path}: {message}" if message else path
    lowered = message.lower()
    name = (details or {}).get("errno")
    if (status == 412 and name != "EEXIST") or name == "ESTALE":  # 412 EEXIST: an exclusive create
        size, etag = (details or {}).get("size"), (details or {}).get("etag")
        return PreconditionFailed(text, size if isinstance(size, int) else None,
                                  etag if isinstance(etag, str) else None)
    if status == 501 or name == "ENOTSUP":
        return NotSupported(text)
    code = getattr(errno, name, None) if isinstance(name, str) and name.isupper() else None
    if isinstance(name, str) and isinstance(code, int) and code > 0 and status != 416:
        return _ERRNO_CLASSES.get(name, OSError)(code, text)
    if status == 404:
        return FileNotFoundError(errno.ENOENT, text)
    if status in (401, 403):
        return PermissionError(errno.EACCES, text)
    if status == 409:
        if "directory" in lowered and "exists" in lowered and "name" in lowered:
            return IsADirectoryError(errno.EISDIR, text)
        return FileExistsError(errno.EEXIST, text)
    if status == 400:
        if "not empty" in lowered:
            return OSError(errno.ENOTEMPTY, text)
        if "only be stored inside a collection" in lowered or "connector root" in lowered:
            return PermissionError(errno.EACCES, text)
        return OSError(errno.EINVAL, text)
    if status == 413:
        return OSError(errno.EFBIG, text)
    if status == 416:
        return OSError(errno.EINVAL, text)
    if status == 507:
        return OSError(errno.ENOSPC, text)
    return OSError(errno.EIO, f"{text} (HTTP {status})")
