"""What a called algorithm may do with its per-call token: the call scope (docs/server.md, "What a called
algorithm may do").

A per-call token acts as the caller, narrowed to what the call needs:

- ``named``: the data locations the call's input points at: ``data://…`` and connector URIs (``s3://…``,
  ``dropbox+work://…``) in a text input or in the string values of a JSON input, ``.my`` meaning the
  caller. At and below them the algorithm reads, creates files and folders and replaces files, as far as
  the caller may; it never deletes, changes an ACL or creates a collection. A call made from inside an
  algorithm gets at most its parent's locations (``CallScope.nested``).
- ``scratch``: the call tree's ``data://.session`` (the API's name for it), kept in the hosted data under
  ``.session/<id>`` (user names never start with a dot, and the data root's listing leaves dot names out),
  created on first use, removed when the top-level call ends; tokens of the tree die with it.

Everything else of the caller's data is out of reach. What is shared anyway stays readable: collections
whose ACL lets everyone read, or the algorithms of their owner (``algo://.my/*``), and connector paths
everyone may read. The algorithm owner's own rights never flow in.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from dataclasses import dataclass

from .connectors import EVERYONE, Connector
from .paths import BadPath, parse_data_path
from .storage import AlreadyExists, Key, NotFound, StorageBackend, StorageError

log = logging.getLogger("algofs.serve")

#: The hosted-data folder holding every call tree's ``data://.session`` (a name no user can have).
SCRATCH_ROOT = ".session"
#: At most this many URIs of an input are looked at, and this many JSON values walked: a 10 MiB input
#: of URIs costs milliseconds, not seconds. What lies beyond is simply not named.
MAX_URIS = 256
MAX_JSON_VALUES = 100_000
#: A data URI in text: a connector id as ``paths.CONNECTOR_ID`` allows (not the end of a longer word)
#: right before ``://``, then the path, up to white space or a quote. Each ``://`` is found by ``str.find``
#: and only the text around it is matched: a regular expression tried at every position of a 10 MiB
#: input took 0.1-0.2 s of the event loop.
_SCHEME = re.compile(r"(?:^|[^A-Za-z0-9+])((?:azureblob|data|dropbox|gs|s3)(?:\+[a-zA-Z0-9]+)?)$")
_SCHEME_WINDOW = 64
_PATH = re.compile(r"[^\s\"'<>]{0,4200}")
_TRAILING_PUNCTUATION = ".,;:!)]}"

#: (connector id, key): ``("data", (user, collection, ...))`` or ``("s3", (path, ...))``
Location = tuple[str, Key]


class CallScratch:
    """The ``data://.session`` of one call tree: created on first use, closed when the top-level call ends.

    Its folder is named ``<caller>.<random>`` so that the storage quota charges what a called algorithm
    puts there to the caller whose call it is (``scratch_owner``; user names never hold a dot): without
    that, an algorithm could fill the disk through ``.session`` for as long as its call runs.
    """

    def __init__(self, caller: str) -> None:
        self.id = f"{caller}.{secrets.token_hex(16)}"
        self.caller = caller
        self.created = False
        self.closed = False

    @property
    def key(self) -> Key:
        return (SCRATCH_ROOT, self.id)


@dataclass(frozen=True, eq=False)
class CallScope:
    """What one call's token may reach besides shared data: ``named`` locations and the ``scratch``."""

    scratch: CallScratch
    named: frozenset[Location]

    def covers(self, connector: str, key: Key) -> bool:
        """``key`` is at or below a named location."""
        return any(c == connector and key[: len(k)] == k for c, k in self.named)

    def names_something_in(self, connector: str, key: Key) -> bool:
        """A named location is at or below ``key`` (a user folder lists such a collection)."""
        return any(c == connector and k[: len(key)] == key for c, k in self.named)

    def nested(self, named: frozenset[Location]) -> CallScope:
        """The scope of a call made from inside this one: what both name (never more than this call may
        reach), the same scratch."""
        narrowed: set[Location] = set()
        for connector, key in named:
            for parent_connector, parent_key in self.named:
                if connector != parent_connector:
                    continue
                if key[: len(parent_key)] == parent_key:
                    narrowed.add((connector, key))
                elif parent_key[: len(key)] == key:
                    narrowed.add((connector, parent_key))
        return CallScope(self.scratch, frozenset(narrowed))


def pointed_at(content_type: str, data: object, caller: str) -> frozenset[Location]:
    """The data locations a call input names (text, or the string values of JSON; never binary)."""
    found: set[Location] = set()
    looked_at = 0
    for text in _strings(content_type, data):
        at = text.find("://")
        while at != -1:
            looked_at += 1
            if looked_at > MAX_URIS:
                return frozenset(found)
            scheme = _SCHEME.search(text[max(0, at - _SCHEME_WINDOW) : at])
            if scheme is not None:
                path_match = _PATH.match(text, at + 3)
                path = path_match.group() if path_match else ""
                for spelling in {path, path.rstrip(_TRAILING_PUNCTUATION)}:
                    location = _location(scheme.group(1), spelling, caller)
                    if location is not None:
                        found.add(location)
            at = text.find("://", at + 3)
    return frozenset(found)


def _strings(content_type: str, data: object) -> list[str]:
    if content_type == "text" and isinstance(data, str):
        return [data]
    if content_type != "json":
        return []
    strings: list[str] = []
    pending = [data]
    walked = 0
    while pending and walked < MAX_JSON_VALUES:
        value = pending.pop()
        walked += 1
        if isinstance(value, str):
            strings.append(value)
        elif isinstance(value, dict):
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
    return strings


def _location(connector: str, path: str, caller: str) -> Location | None:
    """A named location, or None for what can't be one: a data root, a user folder, a connector root,
    a special collection, a malformed path."""
    try:  # as in a JSON body of the extensions: '%' is an ordinary character in a URI written out
        address = parse_data_path(f"{connector}://{path}".replace("%", "%25"))
    except BadPath:
        return None
    key = address.segments
    if address.connector != "data":
        return (address.connector, key) if key else None
    if key and key[0] == ".my":
        key = (caller, *key[1:])
    if len(key) < 2 or key[0].startswith("."):
        return None
    return ("data", key)


def scratch_owner(key: Key) -> str | None:
    """The caller a scratch folder, and what is in it, is charged to (``CallScratch``), else None."""
    if len(key) < 2 or key[0] != SCRATCH_ROOT:
        return None
    owner, dot, _ = key[1].partition(".")
    return owner if dot and owner else None


def everyone_may_read(connector: Connector) -> bool:
    """The connector's read list lets every user read (what any key can read, an algorithm may too)."""
    return EVERYONE in connector.rights.get("read", (EVERYONE,))


def open_scratch(data: StorageBackend, scratch: CallScratch) -> Key:
    """The scratch's folder in the hosted data, created on first use; NotFound once the call tree ended."""
    if scratch.closed:
        raise NotFound("this call's data://.session has ended")
    if not scratch.created:
        for key in ((SCRATCH_ROOT,), scratch.key):
            try:
                data.mkdir(key)
            except AlreadyExists:
                pass
        scratch.created = True
    return scratch.key


def close_scratch(data: StorageBackend, scratch: CallScratch) -> None:
    """The top-level call ended: no more use of the scratch, and its files are removed."""
    scratch.closed = True
    if not scratch.created:
        return
    try:
        data.delete_dir(scratch.key, force=True)
    except NotFound:
        pass
    except StorageError as exc:
        log.warning("data://.session of a finished call not removed (swept at the next start): %s", exc)


def sweep_scratches(data: StorageBackend, older_than: float) -> int:
    """Remove scratch folders left by a server that stopped mid-call: those last changed ``older_than``
    seconds ago or earlier (0: all, for storage no other server uses). Returns how many."""
    removed = 0
    deadline = time.time() - older_than
    after = None
    stale: list[str] = []
    try:
        while True:
            page = data.list_page((SCRATCH_ROOT,), after)
            stale.extend(e.name for e in page.entries if e.is_dir and (older_than <= 0 or e.mtime < deadline))
            if page.last_key is None:
                break
            after = page.last_key
        for name in stale:
            data.delete_dir((SCRATCH_ROOT, name), force=True)
            removed += 1
    except NotFound:
        pass
    except StorageError as exc:
        log.warning("leftover data://.session folders not swept: %s", exc)
    return removed
