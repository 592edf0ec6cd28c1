"""Storage connectors (``s3://``, ``dropbox://``, ``dropbox+work://`` …), each with its own storage backend.

Configured in ``<root>/connectors.json``::

    {"connectors": {
        "s3":        {"path": "connectors/s3", "owner": "demo"},
        "s3+images": {"path": "connectors/s3-images", "allowed_paths": ["media/images"],
                      "owner": "demo", "read": ["*"], "write": ["demo", "alice"], "delete": ["demo"]}}}

``type`` chooses the backend (``"local"``, the default: ``path`` is a directory, relative to the root or
absolute); ``BACKENDS`` maps types to factories, so another storage is one entry there.

``allowed_paths`` is the connector's *path restriction*: only those sub-paths (and everything below them)
are reachable; their ancestors, including the connector root, answer 403, and an allowed path itself can
be neither deleted nor moved (the connector would be dead).

Who may do what: ``read`` (download, list), ``write`` (create new files and folders) and ``delete``
(remove, and also replace, change, move or re-date what exists: each destroys the old data) are lists of
user names, ``"*"`` meaning every user. With an ``owner``, the defaults are read ``["*"]``, write and
delete ``[owner]``; without one the connector is shared by all users for everything (the behaviour of
earlier versions; only for servers whose users trust each other). The owner is always allowed everything.
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


#: ``type`` of a connector spec -> factory(cid, spec, server root)
BACKENDS: dict[str, Callable[[str, dict, Path], StorageBackend]] = {"local": local_backend}


@dataclass(frozen=True)
class Connector:
    cid: str
    backend: StorageBackend
    allowed_paths: tuple[tuple[str, ...], ...] = field(default_factory=tuple)
    owner: str | None = None
    #: right ("read" / "write" / "delete") -> user names, or ("*",)
    rights: dict[str, tuple[str, ...]] = field(default_factory=dict)

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


def _rights(config_file: Path, cid: str, spec: dict, owner: str | None) -> dict[str, tuple[str, ...]]:
    defaults = {"read": [EVERYONE], "write": [owner], "delete": [owner]} if owner else {}
    rights = {}
    for right in RIGHTS:
        users = spec.get(right, defaults.get(right, [EVERYONE]))
        if not isinstance(users, list) or not all(isinstance(u, str) for u in users):
            raise ValueError(f"{config_file}: {cid}: {right!r} must be a list of user names or '*'")
        rights[right] = tuple(users)
    return rights


def load_connectors(root: Path, default_owner: str | None = None) -> dict[str, Connector]:
    """Read the connectors file, writing the default one (s3 and dropbox, owned by ``default_owner``
    when given) when there is none."""
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
        connectors[cid] = Connector(cid, factory(cid, spec, root), allowed, owner,
                                    _rights(config_file, cid, spec, owner))
    return connectors
