"""The ``posix`` extension on the wire (docs/api-extensions.md §10): ``X-Algofs-*`` headers of HEAD/GET,
the ``posix`` object of listing entries, and the mode an upload or a new folder asks for.

Entries whose backend told nothing (a storage without the extension, the data root's virtual folders)
show the defaults of ``storage.posix.default_posix``, so every entry a client sees has metadata.
"""

from __future__ import annotations

from urllib.parse import quote

from .errors import ApiError
from .storage import POSIX, EntryInfo, Posix, StorageBackend
from .storage.posix import PERMISSION_BITS, default_posix

MODE_HEADER = "X-Algofs-Mode"


def invalid(message: str) -> ApiError:
    return ApiError(400, message, errno="EINVAL")


def posix_of(info: EntryInfo) -> Posix:
    if info.posix is not None:
        return info.posix
    return default_posix(info.is_dir, int(round(info.mtime * 1e9)))


def headers(info: EntryInfo) -> dict[str, str]:
    """The metadata headers of a file or symlink's HEAD/GET (uid/gid left out when unknown)."""
    posix = posix_of(info)
    found = {MODE_HEADER: format(posix.mode, "o"), "X-Algofs-Mtime-Ns": str(posix.mtime_ns),
             "X-Algofs-Atime-Ns": str(posix.atime_ns), "X-Algofs-Ctime-Ns": str(posix.ctime_ns)}
    if posix.uid is not None:
        found["X-Algofs-Uid"] = str(posix.uid)
    if posix.gid is not None:
        found["X-Algofs-Gid"] = str(posix.gid)
    if posix.target is not None:
        found["X-Algofs-Link-Target"] = quote(posix.target.encode("utf-8", "surrogateescape"), safe="")
    return found


def listing_fields(info: EntryInfo) -> dict[str, object]:
    """What a listing entry gains: ``posix`` and, for a symlink, ``target``."""
    posix = posix_of(info)
    fields: dict[str, object] = {"posix": {k: v for k, v in posix.wire().items() if k != "target"}}
    if posix.target is not None:
        fields["target"] = posix.target
    return fields


def mode_header(value: str | None, backend: StorageBackend) -> int | None:
    """The permission bits an upload asks for (``X-Algofs-Mode: 755``); None when absent or when the
    storage keeps no modes."""
    if value is None or POSIX not in backend.capabilities:
        return None
    text = value.strip()
    if not text or len(text) > 6 or any(c not in "01234567" for c in text):
        raise invalid(f"{MODE_HEADER} must be octal permission bits (0 to 7777)")
    mode = int(text, 8)
    if mode > PERMISSION_BITS:
        raise invalid(f"{MODE_HEADER} must be permission bits only (0 to 7777), not a file type")
    return mode


def mode_field(body: dict, backend: StorageBackend) -> int | None:
    """The optional ``"mode"`` of a new folder (permission bits, an int)."""
    mode = body.get("mode")
    if mode is None:
        return None
    if isinstance(mode, bool) or not isinstance(mode, int) or not 0 <= mode <= PERMISSION_BITS:
        raise invalid('"mode" must be permission bits only, an integer from 0 to 0o7777')
    return mode if POSIX in backend.capabilities else None
