"""What the Data API's answers mean as fsspec-style infos: times from listings and HTTP dates, folder infos,
the info of a file just written, and the posix metadata (``posix_meta.Posix``) merged in.

Kept apart from ``data_api.DataClient`` (the requests) so the client stays about its calls.
"""

from __future__ import annotations

from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

from .posix_meta import Posix, seconds


def parse_listing_time(value: str | None) -> float:
    if not value:
        return 0.0
    try:
        moment = datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
        return float(int(moment.timestamp()))  # whole seconds, like Last-Modified: one mtime per version
    except ValueError:
        return 0.0


def parse_http_time(value: str | None) -> float:
    if not value:
        return 0.0
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return 0.0


def directory_info(name: str, mtime: float = 0.0) -> dict[str, Any]:
    return {"name": name, "type": "directory", "size": 0, "mtime": mtime, "etag": ""}


def stored_info(name: str, response: Any, size: int) -> dict[str, Any] | None:
    """The info of a file just written, from the answer's validators (None when it lacks them)."""
    etag, modified = response.headers.get("ETag"), response.headers.get("Last-Modified")
    if not (etag and modified):
        return None
    stored = response.headers.get("X-Algofs-Size")
    info = {"name": name, "type": "file", "size": int(stored) if stored and stored.isdigit() else size,
            "mtime": parse_http_time(modified), "etag": etag}
    return with_posix(info, Posix.from_headers(response.headers))


def with_posix(info: dict[str, Any], posix: Posix | None) -> dict[str, Any]:
    """``info`` with its ``posix`` entry (a ``Posix``) when the server sent the metadata; its ``mtime``
    is then the stored one, to the nanosecond (HTTP dates and listings say whole seconds), so a HEAD, a
    listing and an upload's answer agree on it."""
    if posix is not None:
        info["posix"] = posix
        info["mtime"] = seconds(posix.mtime_ns)
    return info
