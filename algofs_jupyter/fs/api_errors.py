"""HTTP answers and transport failures → ``OSError`` subclasses with a real errno.

Every caller (FUSE ops, fsspec users) gets an exception whose ``errno`` is set: FUSE bindings turn an
``OSError`` without errno into garbage or EINVAL, so nothing here may leave it ``None``.
"""

from __future__ import annotations

import errno


class BackendUnavailable(OSError):
    """The API did not answer in time (connection refused, reset, timeout): EIO."""

    def __init__(self, message: str):
        super().__init__(errno.EIO, message)


class StaleFile(OSError):
    """The remote file changed while it was being read in blocks: ESTALE."""

    def __init__(self, message: str):
        super().__init__(errno.ESTALE, message)


def error_for_status(status: int, message: str, path: str) -> OSError:
    """The exception for an HTTP error ``status`` (``message`` from the JSON body or X-Error-Message)."""
    text = f"{path}: {message}" if message else path
    lowered = message.lower()
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
