"""Turning the raw URL path of a Data API request into a validated address.

The raw path is split on literal ``/`` first and each segment is percent-decoded afterwards, so an
encoded slash (``%2F``) can never become a separator, and ``%2e%2e`` is caught as ``..`` after decoding.
Empty segments are ignored (``data:///foo`` and ``x/`` mean the same as ``foo`` and ``x``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote_to_bytes

from ..names import invalid_name_reason

#: Connector ids as validated by the generated API client: a type with an optional ``+label``.
CONNECTOR_ID = re.compile(r"^(azureblob|data|dropbox|gs|s3)(\+[a-zA-Z0-9]+)?$")
_SCHEME_PREFIX = re.compile(r"^([A-Za-z0-9+]+):/(/|$)")


class BadPath(ValueError):
    """The request path can't address anything (HTTP 400)."""


@dataclass(frozen=True)
class DataAddress:
    """A connector id and decoded path segments, plus how the caller spelled it (for result URIs)."""

    connector: str
    segments: tuple[str, ...] = field(default_factory=tuple)

    def uri(self) -> str:
        return f"{self.connector}://" + "/".join(self.segments)

    def child(self, name: str) -> DataAddress:
        return DataAddress(self.connector, (*self.segments, name))

    @property
    def parent(self) -> DataAddress:
        return DataAddress(self.connector, self.segments[:-1])


def decode_segment(raw: str) -> str:
    """Percent-decode one path segment as UTF-8 and check it is a usable name."""
    try:
        name = unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadPath(f"path segment {raw!r} is not valid UTF-8") from exc
    reason = invalid_name_reason(name)
    if reason:
        raise BadPath(f"invalid path segment {raw!r}: {reason}")
    return name


def split_segments(raw_path: str) -> tuple[str, ...]:
    if "\x00" in raw_path:
        raise BadPath("path contains a NUL byte")
    return tuple(decode_segment(part) for part in raw_path.split("/") if part)


def check_connector_id(cid: str) -> str:
    if not CONNECTOR_ID.match(cid):
        raise BadPath(f"unknown connector id {cid!r}")
    return cid


def parse_data_path(raw_path: str) -> DataAddress:
    """The part after ``/v1/data/``: ``<path>`` (hosted data) or ``<cid>://<path>``."""
    match = _SCHEME_PREFIX.match(raw_path)
    if match:
        cid = check_connector_id(match.group(1))
        return DataAddress(cid, split_segments(raw_path[match.end() :]))
    return DataAddress("data", split_segments(raw_path))


def parse_connector_path(cid_raw: str, raw_path: str) -> DataAddress:
    """The parts of ``/v1/connector/<cid>/<path>``."""
    return DataAddress(check_connector_id(unquote_to_bytes(cid_raw).decode("utf-8", "replace")),
                       split_segments(raw_path))
