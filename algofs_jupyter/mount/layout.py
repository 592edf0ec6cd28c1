"""The path rules of the mount root, apart from FUSE so they can be tested without ``/dev/fuse``.

Layout::

    /data/<user>/<collection>/…   hosted data; /data lists what the server's data root does: the caller,
                                  their organizations (/data/<org>/…, docs/server.md), the other users
    /data/.my                     a symlink to the caller's own user directory
    /<connector>/…                s3, dropbox, dropbox+work, … (listed when known; looked up directly)
    /algorithms/…                 a VirtualTree (algorithm pipes)

A *layout path* is a FUSE path without its slashes at either end (``data/demo/x.csv``; ``""`` is the root).
"""

from __future__ import annotations

import errno
import functools
import logging
import re

from mfusepy import FuseOSError

from ..fs import api_paths
from ..names import invalid_name_reason, location_refusal, name_refusal

log = logging.getLogger(__name__)

ALGORITHMS = "algorithms"
MY_ALIAS = ".my"
MY_ALIAS_PATH = "data/" + MY_ALIAS
#: Layout paths that always exist and are not on the API: the root and the list of users.
LOCAL_DIRECTORIES = ("", "data")


#: libfuse "hides" a file unlinked while it thinks a handle is open by renaming it to
#: ``.fuse_hidden<node><counter>`` (16 hex digits) and deleting that at the last release. RELEASE reaches
#: the daemon after close() returns, so an unlink right after a close is hidden too: listings leave these
#: names out (lookups still answer, libfuse works on the hidden path).
LIBFUSE_HIDDEN_NAME = re.compile(r"\.fuse_hidden[0-9a-f]{16}")


def hidden_by_libfuse(name: str) -> bool:
    return LIBFUSE_HIDDEN_NAME.fullmatch(name) is not None


def layout_path(path: str) -> str:
    """``/data/demo/x`` → ``data/demo/x``."""
    return path.strip("/")


def virtual_path(path: str) -> str | None:
    """The path inside /algorithms (``"/"`` for its root), or None for other paths."""
    if path == "/" + ALGORITHMS:
        return "/"
    if path.startswith("/" + ALGORITHMS + "/"):
        return path[len(ALGORITHMS) + 1:]
    return None


#: The checks below run on every open and lookup of a warm file (a data loader's loop): cached per path.
#: Two caches of ~150 bytes per path: 16,384 paths hold ~5 MiB (65,536 held ~20 MiB at a 1M-file walk).
PATH_RULE_CACHE = 1 << 14


@functools.lru_cache(maxsize=PATH_RULE_CACHE)
def may_exist_remotely(layout: str) -> bool:
    """False for paths the API cannot hold (bad names, neither ``data`` nor a connector): no request."""
    parts = layout.split("/")
    if any(invalid_name_reason(part) for part in parts if part != MY_ALIAS):
        return False
    return parts[0] == "data" or api_paths.is_connector(parts[0])


def is_connector_root(layout: str) -> bool:
    return "/" not in layout and api_paths.is_connector(layout)


#: Longest name segment and path (below the mount root) in UTF-8 bytes, as statfs and the server say.
NAME_MAX = 255
PATH_MAX = 4095


def check_lengths(layout: str) -> None:
    """ENAMETOOLONG for a segment over NAME_MAX bytes or a path over PATH_MAX (never an EIO later)."""
    if _too_long(layout):
        raise FuseOSError(errno.ENAMETOOLONG)


@functools.lru_cache(maxsize=PATH_RULE_CACHE)
def _too_long(layout: str) -> bool:
    encoded = layout.encode("utf-8", "surrogateescape")
    return len(encoded) > PATH_MAX or any(len(part) > NAME_MAX for part in encoded.split(b"/"))


def check_new_name(layout: str) -> None:
    """ENAMETOOLONG for overlong names, EINVAL for a last segment the API cannot carry (see ``names``)."""
    check_lengths(layout)
    refusal = name_refusal(layout.rpartition("/")[2])
    if refusal:
        log.info("refused %s: %s", layout, refusal)
        raise FuseOSError(errno.EINVAL)


def check_writable_location(layout: str, directory: bool) -> None:
    """EACCES where the API can't create things (the root, /data, files directly in a user folder);
    the rule and its text are ``names.location_refusal``'s."""
    refusal = location_refusal(layout, directory)
    if refusal:
        log.info("refused %s: %s", layout, refusal)
        raise FuseOSError(errno.EACCES)


def parent_of(layout: str) -> str:
    return layout.rpartition("/")[0]
