"""Paths of the shared layout (``data/<user>/<collection>/…``, ``s3/…``, ``dropbox+work/…``) → API URLs.

The mount, the fsspec filesystem and the no-FUSE fallback all use this one layout. Every segment is
percent-encoded on its own (``safe=""``), so a name can never smuggle in a separator or a query.
"""

from __future__ import annotations

import re
from urllib.parse import quote

#: Connector ids the API accepts (``data`` is the hosted-data namespace, mapped to ``/v1/data``).
CONNECTOR_ID = re.compile(r"^(azureblob|dropbox|gs|s3)(\+[a-zA-Z0-9]+)?$")
#: Connectors probed when the root is listed (labelled ones are only found by a direct lookup).
DEFAULT_CONNECTORS = ("s3", "dropbox", "gs", "azureblob")
PROTOCOL_PREFIXES = ("algo://", "algo::")


def split_path(path: str) -> tuple[str, ...]:
    """``"/data/demo/x/"`` → ``("data", "demo", "x")``; an ``algo://`` prefix is ignored."""
    for prefix in PROTOCOL_PREFIXES:
        if path.startswith(prefix):
            path = path[len(prefix):]
            break
    return tuple(part for part in path.split("/") if part)


def join_path(parts: tuple[str, ...] | list[str]) -> str:
    return "/".join(parts)


def is_connector(name: str) -> bool:
    return bool(CONNECTOR_ID.match(name))


def api_path(parts: tuple[str, ...]) -> str:
    """The URL path (from ``/v1``) addressing ``parts``; raises FileNotFoundError outside the layout."""
    if not parts:
        raise FileNotFoundError("the layout root has no API address")
    head, rest = parts[0], parts[1:]
    encoded = "/".join(quote(part, safe="") for part in rest)
    if head == "data":
        return "/v1/data/" + encoded
    if is_connector(head):
        return f"/v1/connector/{quote(head, safe='+')}/" + encoded
    raise FileNotFoundError(f"{head!r} is neither 'data' nor a connector id")


def data_uri(parts: tuple[str, ...]) -> str:
    """The Algorithmia URI of a layout path (``data://…``, ``s3://…``), for messages and recovery notes."""
    if not parts:
        return ""
    return f"{parts[0]}://" + "/".join(parts[1:])
