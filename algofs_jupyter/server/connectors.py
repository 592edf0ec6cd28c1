"""Storage connectors (``s3://``, ``dropbox://``, ``dropbox+work://`` …), each with its own storage backend.

Configured in ``<root>/connectors.json``::

    {"connectors": {
        "s3":        {"path": "connectors/s3", "owner": "demo"},
        "s3+images": {"path": "connectors/s3-images", "allowed_paths": ["media/images"],
                      "owner": "demo", "read": ["*"], "write": ["demo", "alice"], "delete": ["demo"]}}}

``type`` chooses the backend (``"local"``, the default: ``path`` is a directory, relative to the root or
absolute; ``"s3"``: ``url`` is ``s3://BUCKET/PREFIX`` with optional ``endpoint``, ``region`` and
``profile``, see ``storage/select.py``); ``BACKENDS`` maps types to factories, so another storage is one
entry there.

``allowed_paths`` is the connector's *path restriction*: only those sub-paths (and everything below them)
are reachable; their ancestors, including the connector root, answer 403, and an allowed path itself can
be neither deleted nor moved (the connector would be dead).

Who may do what: ``read`` (download, list), ``write`` (create new files and folders) and ``delete``
(remove, and also replace, change, move or re-date what exists: each destroys the old data) are lists of
user names, ``"*"`` meaning every user. The owner is always allowed everything. A right without a list
defaults to:
- with an ``owner``: read ``["*"]``, write and delete ``[owner]``;
- ``"shared": true``: ``["*"]``, every user may do everything (only for users who trust each other);
- neither, on a multi-user server (``multi_user_server``): read ``["*"]``, write and delete nobody: the
  connector is read-only until the operator names an owner, lists or ``shared``; the server warns at start
  (``read_only_warning``: in the log and in ``/healthz``);
- neither, on a one-person server (one ``--user``, or a bare ``--demo`` with the published keys):
  ``["*"]``, as in earlier versions.
A fresh root gets ``DEFAULT_CONNECTORS``, owned by the server's user when it starts with exactly one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .paths import CONNECTOR_ID
from .storage import LocalBackend, StorageBackend

DEFAULT_CONNECTORS = {
    "s3": {"path": "connectors/s3"},
    "dropbox": {"path": "connectors/dropbox"},
}
EVERYONE = "*"
RIGHTS = ("read", "write", "delete")


def local_backend(cid: str, spec: dict, root: Path) -> StorageBackend:
    directory = Path(spec["path"])
    directory = directory if directory.is_absolute() else root / directory
    return LocalBackend(directory, root / "meta" / "connectors" / cid)


def s3_backend(cid: str, spec: dict, root: Path) -> StorageBackend:
    from .storage.select import s3_connector_backend

    return s3_connector_backend(cid, spec, root)


#: ``type`` of a connector spec -> factory(cid, spec, server root)
BACKENDS: dict[str, Callable[[str, dict, Path], StorageBackend]] = {"local": local_backend, "s3": s3_backend}


@dataclass(frozen=True)
class Connector:
    cid: str
    backend: StorageBackend
    allowed_paths: tuple[tuple[str, ...], ...] = field(default_factory=tuple)
    owner: str | None = None
    #: right ("read" / "write" / "delete") -> user names, or ("*",)
    rights: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: rights nobody has because nobody said (no owner, not shared, no list, on a multi-user server)
    unclaimed: tuple[str, ...] = ()

    @property
    def restricted(self) -> bool:
        return bool(self.allowed_paths)

    def allows(self, segments: tuple[str, ...]) -> bool:
        """True when ``segments`` is at or below one of the allowed paths (or there is no restriction)."""
        if not self.allowed_paths:
            return True
        return any(segments[: len(prefix)] == prefix for prefix in self.allowed_paths)

    def is_allowed_root(self, segments: tuple[str, ...]) -> bool:
        return segments in self.allowed_paths

    def may(self, right: str, username: str) -> bool:
        if username == self.owner:
            return True
        users = self.rights.get(right, (EVERYONE,))
        return EVERYONE in users or username in users


def _split(path: str) -> tuple[str, ...]:
    return tuple(part for part in path.split("/") if part)


def _rights(config_file: Path, cid: str, spec: dict, owner: str | None,
            multi_user: bool) -> dict[str, tuple[str, ...]]:
    shared = spec.get("shared", False)
    if not isinstance(shared, bool):
        raise ValueError(f"{config_file}: {cid}: 'shared' must be true or false")
    if owner and not shared:
        defaults: dict[str, list[str]] = {"read": [EVERYONE], "write": [owner], "delete": [owner]}
    elif shared or not multi_user:
        defaults = {right: [EVERYONE] for right in RIGHTS}
    else:  # nobody said who may change it: read-only (read_only_warning)
        defaults = {"read": [EVERYONE], "write": [], "delete": []}
    rights = {}
    for right in RIGHTS:
        users = spec.get(right, defaults[right])
        if not isinstance(users, list) or not all(isinstance(u, str) for u in users):
            raise ValueError(f"{config_file}: {cid}: {right!r} must be a list of user names or '*'")
        rights[right] = tuple(users)
    return rights


def load_connectors(root: Path, default_owner: str | None = None,
                    multi_user: bool = False) -> dict[str, Connector]:
    """Read the connectors file, writing the default one (s3 and dropbox, owned by ``default_owner``
    when given) when there is none. ``multi_user``: connectors without an owner or ``shared`` are
    read-only (``multi_user_server``)."""
    config_file = root / "connectors.json"
    if not config_file.exists():
        defaults = {cid: {**spec, **({"owner": default_owner} if default_owner else {})}
                    for cid, spec in DEFAULT_CONNECTORS.items()}
        config_file.write_text(json.dumps({"connectors": defaults}, indent=2) + "\n")
    config = json.loads(config_file.read_text(encoding="utf-8")).get("connectors", {})
    connectors = {}
    for cid, spec in config.items():
        if not CONNECTOR_ID.match(cid) or cid == "data":
            raise ValueError(f"{config_file}: invalid connector id {cid!r}")
        factory = BACKENDS.get(spec.get("type", "local"))
        if factory is None:
            raise ValueError(f"{config_file}: {cid}: unknown connector type {spec.get('type')!r}")
        allowed = tuple(_split(p) for p in spec.get("allowed_paths", []))
        if any(not p for p in allowed):
            raise ValueError(f"{config_file}: {cid}: an allowed path can't be the connector root")
        owner = spec.get("owner")
        if owner is not None and not isinstance(owner, str):
            raise ValueError(f"{config_file}: {cid}: owner must be a user name")
        rights = _rights(config_file, cid, spec, owner, multi_user)
        unclaimed = () if owner or spec.get("shared") or not multi_user else tuple(
            right for right in ("write", "delete") if right not in spec)
        connectors[cid] = Connector(cid, factory(cid, spec, root), allowed, owner, rights, unclaimed)
    return connectors


def read_only_warning(connectors: dict[str, Connector]) -> str | None:
    """What the operator of a multi-user server should hear about connectors nobody claimed, or None."""
    names = [f"{cid} ({'read-only' if len(c.unclaimed) == 2 else 'nobody may ' + c.unclaimed[0]})"
             for cid, c in sorted(connectors.items()) if c.unclaimed]
    if not names:
        return None
    return (f"connectors without an owner on this multi-user server: {', '.join(names)}. "
            'To let users write, give each in connectors.json an "owner", "write"/"delete" lists, or '
            '"shared": true (then every user may replace and delete every user\'s files there); '
            '"write": [], "delete": [] keeps it read-only without this warning (docs/server.md)')
