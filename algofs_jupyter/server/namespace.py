"""Which storage backend and key an address names, and what the caller may do there.

Hosted data: one backend (``hosted_data_backend``: ``<root>/data`` on disk) whose keys are
``(<user>, <collection>, ...)``; ``.my`` in an address is the caller. The data root (the list of users)
is virtual; a user folder lists collections. Everything from the collection down is a real directory
tree (nesting inside collections is an extension of the hosted API). Each connector has its own
backend, and keys are the path below the connector.

Rights: ``readable`` (download, list), ``writable`` (create new entries) and ``deletable`` (remove,
replace, change, move away or re-date existing data). Hosted data: owners have all three, others read
per the collection ACL. Connectors: their ``read``/``write``/``delete`` lists and path restriction.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .acl import AclStore
from .connectors import Connector
from .errors import ApiError, forbidden, not_found
from .paths import DataAddress
from .storage import AlreadyExists, Key, LocalBackend, NotFound, StorageBackend, StorageError, check_key
from .users import Identity


def hosted_data_backend(root: Path) -> StorageBackend:
    """The backend of ``data://`` for a server root: objects in ``data/``, metadata (ACLs) in ``meta/``."""
    return LocalBackend(root / "data", root / "meta")


@dataclass(frozen=True)
class Target:
    """A resolved address: ``level`` is "root" (data root), "user" (a user folder) or "path"."""

    address: DataAddress
    level: str
    backend: StorageBackend
    key: Key
    readable: bool
    writable: bool
    deletable: bool
    #: hosted data: the user folder (user level and below) and the collection (path level)
    owner: str = ""
    collection: str | None = None
    connector: Connector | None = None

    @property
    def collection_id(self) -> tuple[str, str]:
        """``(owner, collection)`` of an address inside a collection of the hosted data."""
        assert self.collection is not None
        return self.owner, self.collection

    @property
    def is_collection(self) -> bool:
        return self.address.connector == "data" and self.level == "path" and len(self.key) == 2

    @property
    def backend_name(self) -> str:
        return self.address.connector


class Namespace:
    def __init__(self, data: StorageBackend, connectors: dict[str, Connector], usernames: list[str]):
        self.data = data
        self.acl = AclStore(data)
        self.connectors = connectors
        self.usernames: list[str] = []
        self.add_users(usernames)

    def add_users(self, names: list[str]) -> None:
        """Give each new user a folder (the users file may add users while the server runs)."""
        for user in names:
            try:
                self.data.mkdir((user,))
            except AlreadyExists:
                pass
        self.usernames = sorted({*self.usernames, *names})

    def backends(self) -> dict[str, StorageBackend]:
        return {"data": self.data, **{cid: c.backend for cid, c in self.connectors.items()}}

    def known_users(self) -> list[str]:
        on_storage: set[str] = set()
        after = None
        while True:
            page = self.data.list_page((), after)
            on_storage.update(e.name for e in page.entries if e.is_dir)
            if page.last_key is None:
                break
            after = page.last_key
        return sorted(on_storage | set(self.usernames))

    def resolve(self, address: DataAddress, who: Identity) -> Target:
        check_key(address.segments)  # a name over 255 bytes is a 400 (ENAMETOOLONG) on every verb
        if address.connector == "data":
            return self._resolve_data(address, who)
        connector = self.connectors.get(address.connector)
        if connector is None:
            raise not_found(f"connector {address.connector!r} is not configured")
        key = address.segments
        allowed = connector.allows(key)
        user = who.username
        keeps_connector_alive = connector.is_allowed_root(key)
        return Target(address, "path", connector.backend, key,
                      readable=allowed and connector.may("read", user),
                      writable=allowed and connector.may("write", user),
                      deletable=allowed and connector.may("delete", user) and not keeps_connector_alive,
                      connector=connector)

    def _resolve_data(self, address: DataAddress, who: Identity) -> Target:
        segments = address.segments
        if segments and segments[0] == ".my":
            segments = (who.username, *segments[1:])
        if not segments:
            return Target(address, "root", self.data, (), True, False, False)
        owner = segments[0]
        if owner.startswith("."):
            raise not_found(f"special collection {owner!r} is not supported by this server")
        if owner not in self.usernames and not self._user_exists(owner):
            raise not_found()
        is_owner = owner == who.username
        if len(segments) == 1:
            return Target(address, "user", self.data, segments, True, is_owner, False, owner=owner)
        collection = segments[1]
        readable = self.acl.may_read(owner, collection, who.username, who.algo_owner)
        return Target(address, "path", self.data, segments, readable, is_owner, is_owner,
                      owner=owner, collection=collection)

    def _user_exists(self, owner: str) -> bool:
        try:
            return self.data.info((owner,)).is_dir
        except NotFound:
            return False
        except StorageError:
            return False

    @staticmethod
    def _refuse(target: Target, what: str) -> ApiError:
        if target.connector is not None:
            if not target.connector.allows(target.key):
                return forbidden("path is outside the connector's path restriction")
            if target.connector.is_allowed_root(target.key) and what == "delete":
                return forbidden("the connector's allowed path itself can't be deleted or moved")
            return forbidden(f"you may not {what} in connector {target.connector.cid!r}")
        if target.level == "root":
            return ApiError(403, "the data root is read-only", code=2001)
        return forbidden("only the owner can change this collection")

    @classmethod
    def require_read(cls, target: Target) -> None:
        if not target.readable:
            if target.connector is not None:
                raise cls._refuse(target, "read")
            raise forbidden()

    @classmethod
    def require_write(cls, target: Target) -> None:
        if not target.writable:
            raise cls._refuse(target, "write")

    @classmethod
    def require_delete(cls, target: Target) -> None:
        if not target.deletable:
            raise cls._refuse(target, "delete")
