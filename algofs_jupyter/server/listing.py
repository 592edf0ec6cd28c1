"""Directory listings: entries in a stable order, pages of at most 1000, opaque URL-safe markers.

Order: all folders by name, then all files by name. A marker encodes the last entry returned
(base64url, no padding: only ``A-Za-z0-9-_``), so paging stays correct when entries are added or
removed between pages.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..names import invalid_name_reason
from .errors import ApiError

PAGE_SIZE = 1000


@dataclass(frozen=True)
class Entry:
    is_dir: bool
    name: str
    size: int = 0
    mtime: float = 0.0

    @property
    def sort_key(self) -> tuple[int, str]:
        return (0 if self.is_dir else 1, self.name)


def format_timestamp(mtime: float) -> str:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ`` in UTC: the only format the official client parses."""
    moment = datetime.fromtimestamp(mtime, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def scan_directory(path: Path) -> list[Entry]:
    """Entries of a real directory, without names the API can't carry (e.g. in-flight uploads)."""
    entries = []
    with os.scandir(path) as it:
        for item in it:
            if invalid_name_reason(item.name):
                continue
            try:
                if item.is_dir():
                    entries.append(Entry(True, item.name))
                elif item.is_file():
                    st = item.stat()
                    entries.append(Entry(False, item.name, st.st_size, st.st_mtime))
            except FileNotFoundError:
                continue  # removed while we were listing
    return entries


def encode_marker(entry: Entry) -> str:
    raw = ("d" if entry.is_dir else "f") + entry.name
    return base64.urlsafe_b64encode(raw.encode("utf-8")).decode("ascii").rstrip("=")


def decode_marker(marker: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(marker + "=" * (-len(marker) % 4)).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ApiError(400, "Invalid marker used", code=5002) from exc
    if not raw or raw[0] not in "df":
        raise ApiError(400, "Invalid marker used", code=5002)
    return (0 if raw[0] == "d" else 1, raw[1:])


def page(entries: list[Entry], marker: str | None, sort: bool = True) -> dict:
    """One page of a listing as the API body (without ``acl``)."""
    ordered = sorted(entries, key=lambda e: e.sort_key) if sort else list(entries)
    if marker:
        after = decode_marker(marker)
        ordered = [e for e in ordered if e.sort_key > after]
    chunk = ordered[:PAGE_SIZE]
    body: dict = {}
    folders = [{"name": e.name} for e in chunk if e.is_dir]
    files = [
        {"filename": e.name, "last_modified": format_timestamp(e.mtime), "size": int(e.size)}
        for e in chunk
        if not e.is_dir
    ]
    if folders:
        body["folders"] = folders
    if files:
        body["files"] = files
    if len(ordered) > PAGE_SIZE:
        body["marker"] = encode_marker(chunk[-1])
    return body
