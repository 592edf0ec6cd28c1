"""Directory listings on the wire: pages of at most 1000 entries and opaque URL-safe markers.

Order: all folders by name, then all files by name (the backends' sort-key order). A marker encodes the
last key looked at (base64url, no padding: only ``A-Za-z0-9-_``), so paging stays correct when entries
are added or removed between pages. Folders carry ``last_modified`` when their storage knows it (an
extension the official client ignores: it reads only ``name``).
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime, timezone

from . import posix_wire
from .errors import ApiError
from .storage import EntryInfo, ListingPage, SortKey

PAGE_SIZE = 1000


def format_timestamp(mtime: float) -> str:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ`` in UTC: the only format the official client parses."""
    moment = datetime.fromtimestamp(mtime, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def encode_marker(key: SortKey) -> str:
    raw = ("d" if key[0] == 0 else "f") + key[1]
    return base64.urlsafe_b64encode(raw.encode("utf-8")).decode("ascii").rstrip("=")


def decode_marker(marker: str | None) -> SortKey | None:
    if not marker:
        return None
    try:
        raw = base64.urlsafe_b64decode(marker + "=" * (-len(marker) % 4)).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ApiError(400, "Invalid marker used", code=5002) from exc
    if not raw or raw[0] not in "df":
        raise ApiError(400, "Invalid marker used", code=5002)
    return (0 if raw[0] == "d" else 1, raw[1:])


def virtual_page(entries: list[EntryInfo], after: SortKey | None, sort: bool = True) -> ListingPage:
    """A page of a listing made up by the server (the data root), in the same shape as a backend's."""
    ordered = sorted(entries, key=lambda e: e.sort_key) if sort else list(entries)
    if after is not None:
        ordered = [e for e in ordered if e.sort_key > after]
    chunk = ordered[:PAGE_SIZE]
    return ListingPage(chunk, chunk[-1].sort_key if len(ordered) > PAGE_SIZE else None)


def body(page: ListingPage, posix: bool = True) -> dict:
    """The API body of a listing page (without ``acl``); ``posix``: entries carry their metadata (not in the
    data root's made-up listing of users)."""
    result: dict = {}

    def extra(entry: EntryInfo) -> dict[str, object]:
        return posix_wire.listing_fields(entry) if posix else {}

    folders = [{"name": e.name, **({"last_modified": format_timestamp(e.mtime)} if e.mtime else {}),
                **extra(e)} for e in page.entries if e.is_dir]
    files = [{"filename": e.name, "last_modified": format_timestamp(e.mtime), "size": int(e.size),
              **extra(e)} for e in page.entries if not e.is_dir]
    if folders:
        result["folders"] = folders
    if files:
        result["files"] = files
    if page.last_key is not None:
        result["marker"] = encode_marker(page.last_key)
    return result
