"""Where an address lives on disk and what the caller may do with it.

Hosted data: ``<root>/data/<user>/<collection>/...`` (``.my`` is the caller). The data root and the user
level are virtual directories: the root lists users, a user folder lists collections. Everything
from the collection down is a real directory tree (nesting inside collections is an extension of the
hosted API). Connectors map to their configured local directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .acl import AclStore
from .connectors import Connector
from .errors import ApiError, forbidden, not_found
from .paths import DataAddress
from .users import Identity


@dataclass(frozen=True)
class Target:
    """A resolved address: ``level`` is "root" (data root), "user" (a user folder) or "path"."""

    address: DataAddress
    level: str
    local: Path
    readable: bool
    writable: bool
    owner: str | None = None
    collection: str | None = None
    connector: Connector | None = None

    @property
    def is_collection(self) -> bool:
        return self.address.connector == "data" and self.level == "path" and len(self.address.segments) == 2


class Namespace:
    def __init__(self, root: Path, connectors: dict[str, Connector], usernames: list[str]):
        self.root = root
        self.data_dir = root / "data"
        self.acl = AclStore(root)
        self.connectors = connectors
        self.usernames = usernames
        for user in usernames:
            (self.data_dir / user).mkdir(parents=True, exist_ok=True)

    def known_users(self) -> list[str]:
        on_disk = {p.name for p in self.data_dir.iterdir() if p.is_dir()} if self.data_dir.is_dir() else set()
        return sorted(on_disk | set(self.usernames))

    def resolve(self, address: DataAddress, who: Identity) -> Target:
        if address.connector == "data":
            return self._resolve_data(address, who)
        connector = self.connectors.get(address.connector)
        if connector is None:
            raise not_found(f"connector {address.connector!r} is not configured")
        allowed = connector.allows(address.segments)
        local = connector.directory.joinpath(*address.segments)
        return Target(address, "path", local, allowed, allowed, connector=connector)

    def _resolve_data(self, address: DataAddress, who: Identity) -> Target:
        segments = address.segments
        if segments and segments[0] == ".my":
            segments = (who.username, *segments[1:])
        if not segments:
            return Target(address, "root", self.data_dir, True, False)
        owner = segments[0]
        if owner.startswith("."):
            raise not_found(f"special collection {owner!r} is not supported by this server")
        user_dir = self.data_dir / owner
        if not user_dir.is_dir() and owner not in self.usernames:
            raise not_found()
        is_owner = owner == who.username
        if len(segments) == 1:
            return Target(address, "user", user_dir, True, is_owner, owner=owner)
        collection = segments[1]
        readable = self.acl.may_read(owner, collection, who.username, who.algo_owner)
        return Target(address, "path", user_dir.joinpath(*segments[1:]), readable, is_owner,
                      owner=owner, collection=collection)

    @staticmethod
    def require_read(target: Target) -> None:
        if not target.readable:
            if target.connector is not None:
                raise forbidden("path is outside the connector's path restriction")
            raise forbidden()

    @staticmethod
    def require_write(target: Target) -> None:
        if not target.writable:
            if target.connector is not None:
                raise forbidden("path is outside the connector's path restriction")
            if target.level == "root":
                raise ApiError(403, "the data root is read-only")
            raise forbidden("only the owner can change this collection")
