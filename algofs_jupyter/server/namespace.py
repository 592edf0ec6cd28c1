"""Which storage backend and key an address names, and what the caller may do there.

Hosted data: one backend (``hosted_data_backend``: ``<root>/data`` on disk) whose keys are
``(<user>, <collection>, ...)``; ``.my`` in an address is the caller. The data root (the list of users)
is virtual; a user folder lists collections. Everything from the collection down is a real directory
tree (nesting inside collections is an extension of the hosted API). Each connector has its own
backend, and keys are the path below the connector.

Rights: ``readable`` (download, list), ``writable`` (create new entries) and ``deletable`` (remove,
replace, change, move away or re-date existing data). Hosted data: owners have all three, others read
per the collection ACL. An organization's folder (``organizations.py``): every member has all three
inside its collections; only its admins create, delete, move or re-ACL the collections themselves.
Connectors: their ``read``/``write``/``delete`` lists and path restriction.
A called algorithm's token (``Identity.scope``) gets less: ``_for_call`` and ``call_scope.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from .acl import AclStore
from .call_scope import SCRATCH_ROOT, CallScratch, everyone_may_read, open_scratch
from .connectors import Connector
from .errors import ApiError, bad_request, forbidden, not_found
from .organizations import OrganizationStore
from .paths import BadPath, DataAddress, parse_data_path
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
    #: replace or change an existing file; None: as ``deletable`` (a called algorithm: where it may write)
    replaceable: bool | None = None
    #: resolved for a called algorithm's token (call_scope.py): never an ACL change
    in_call: bool = False
    #: create, delete, move or re-ACL the collection itself; None: as ``writable`` (an organization's
    #: collections: its admins only)
    manages: bool | None = None

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
        self.organizations: OrganizationStore | None = None  # set by app.py once users are known
        self._org_folders: set[str] = set()  # every organization's folder made or seen since the start
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

    def add_folders(self, names: list[str]) -> None:
        """Give each new organization its folder (its collections go there)."""
        self._org_folders.update(names)
        for name in names:
            try:
                self.data.mkdir((name,))
            except AlreadyExists:
                pass

    def backends(self) -> dict[str, StorageBackend]:
        return {"data": self.data, **{cid: c.backend for cid, c in self.connectors.items()}}

    def known_users(self) -> list[str]:
        on_storage: set[str] = set()
        after = None
        while True:
            page = self.data.list_page((), after)
            on_storage.update(e.name for e in page.entries if e.is_dir and not e.name.startswith("."))
            if page.last_key is None:
                break
            after = page.last_key
        return sorted(on_storage | set(self.usernames))

    def resolve(self, address: DataAddress, who: Identity) -> Target:
        check_key(address.segments)  # a name over 255 bytes is a 400 (ENAMETOOLONG) on every verb
        if address.connector == "data":
            return self._for_call(self._resolve_data(address, who), who)
        connector = self.connectors.get(address.connector)
        if connector is None:
            raise not_found(f"connector {address.connector!r} is not configured")
        key = address.segments
        allowed = connector.allows(key)
        user = who.username
        keeps_connector_alive = connector.is_allowed_root(key)
        return self._for_call(Target(address, "path", connector.backend, key,
                                     readable=allowed and connector.may("read", user),
                                     writable=allowed and connector.may("write", user),
                                     deletable=allowed and connector.may("delete", user)
                                     and not keeps_connector_alive,
                                     connector=connector), who)

    def readable_file(self, uri: str, who: Identity) -> Target:
        """The file a data URI in a JSON body names (not percent-encoded: '%' is an ordinary character
        there), checked as a GET of it would be; what read-many and local reads resolve their paths with."""
        if "://" not in uri:
            raise bad_request("a path must be a data URI such as data://.my/collection/file")
        try:
            address = parse_data_path(uri.replace("%", "%25"))
        except BadPath as exc:
            raise bad_request(str(exc)) from exc
        target = self.resolve(address, who)
        if target.level != "path" or not target.key:
            raise ApiError(400, "not a file", errno="EISDIR")
        check_key(target.key)
        self.require_read(target)
        return target

    def _resolve_data(self, address: DataAddress, who: Identity) -> Target:
        segments = address.segments
        if segments and segments[0] == SCRATCH_ROOT and who.scope is not None:
            return self._scratch_target(address, who.scope.scratch)
        if segments and segments[0] == ".my":
            segments = (who.username, *segments[1:])
        if not segments:
            return Target(address, "root", self.data, (), True, False, False)
        owner = segments[0]
        if owner.startswith("."):
            raise not_found(f"special collection {owner!r} is not supported by this server")
        role = None if owner == who.username else self.org_role(owner, who.username)
        if role is not None:  # its folder was made with the organization: no lookup on storage
            return self._org_target(address, segments, role)
        if owner not in self.usernames and not self._user_exists(owner):
            raise not_found()
        is_owner = owner == who.username
        if len(segments) == 1:
            return Target(address, "user", self.data, segments, True, is_owner, False, owner=owner)
        collection = segments[1]
        readable = self.acl.may_read(owner, collection, who.username, who.algo_owner)
        return Target(address, "path", self.data, segments, readable, is_owner, is_owner,
                      owner=owner, collection=collection)

    def org_role(self, owner: str, username: str) -> str | None:
        """``username``'s role in the organization ``owner`` (None: not a member, or not an organization)."""
        return None if self.organizations is None else self.organizations.role(owner, username)

    def _org_target(self, address: DataAddress, segments: Key, role: str) -> Target:
        """A member's rights in an organization's folder: everything inside its collections; its admins
        alone create, delete, move and re-ACL the collections."""
        admin = role == "admin"
        if len(segments) == 1:
            return Target(address, "user", self.data, segments, True, admin, False, owner=segments[0],
                          manages=admin)
        inside = len(segments) > 2
        return Target(address, "path", self.data, segments, True, True, inside or admin,
                      owner=segments[0], collection=segments[1], manages=admin)

    def _scratch_target(self, address: DataAddress, scratch: CallScratch) -> Target:
        """``data://.session/…`` of a call tree: its own, everything allowed inside, nothing to others."""
        key = (*open_scratch(self.data, scratch), *address.segments[1:])
        check_key(key)
        inside = len(key) > 2  # the scratch folder itself is neither deleted nor moved
        return Target(address, "path", self.data, key, True, True, inside, in_call=True)

    def _for_call(self, target: Target, who: Identity) -> Target:
        """Narrow the caller's rights to a called algorithm's scope: at and below a location its input
        names, the caller's rights (never delete: replace instead); elsewhere what is shared with any
        user or the algorithm's owner (ACLs, connector read lists). No collection is created there."""
        scope = who.scope
        if scope is None or target.in_call:
            return target
        if target.level != "path":
            return replace(target, writable=False, deletable=False, in_call=True)
        named = scope.covers(target.address.connector, target.key)
        if target.connector is not None:
            shared = target.readable and everyone_may_read(target.connector)
        elif target.owner != who.username and self.org_role(target.owner, who.username) is None:
            shared = target.readable  # the ACL already said
        else:
            shared = self.acl.shared(*target.collection_id, who.algo_owner)
        return replace(target, readable=shared or (target.readable and named),
                       writable=target.writable and named, deletable=False,
                       replaceable=target.deletable and named, in_call=True)

    def lists_collection(self, owner: str, collection: str, who: Identity) -> bool:
        """Whether a listing of ``owner``'s folder shows ``collection`` to ``who``: one it may read (a
        called algorithm: shared with it, or holding a location its input names)."""
        own = owner == who.username or self.org_role(owner, who.username) is not None
        if who.scope is None:
            return own or self.acl.shared(owner, collection, who.algo_owner)
        return self.acl.shared(owner, collection, who.algo_owner) or (
            own and who.scope.names_something_in("data", (owner, collection)))

    def root_names(self, who: Identity) -> list[str]:
        """The data root's folders as ``who`` sees them: their own, their organizations', then the other
        users' (another organization's folder is not listed: its members alone see it there, nor is the folder
        of an organization the hub's file dropped while the server ran)."""
        me, store = who.username, self.organizations
        orgs = self._org_folders | set(store.names() if store is not None else ())
        mine = [o["name"] for o in store.of_user(me)] if store is not None else []
        users = set(self.usernames)
        others = [u for u in self.known_users() if u != me and (u not in orgs or u in users)]
        return [me, *mine, *others]

    def _user_exists(self, owner: str) -> bool:
        try:
            return self.data.info((owner,)).is_dir
        except NotFound:
            return False
        except StorageError:
            return False

    @staticmethod
    def _refuse(target: Target, what: str) -> ApiError:
        if target.connector is not None and not target.connector.allows(target.key):
            return forbidden("path is outside the connector's path restriction")
        if target.in_call:
            return forbidden(f"a called algorithm may not {what} here: it reads what its input names and "
                             "what is shared, writes only at locations its input names and in "
                             "data://.session, and never deletes or changes ACLs")
        if target.connector is not None:
            if target.connector.is_allowed_root(target.key) and what == "delete":
                return forbidden("the connector's allowed path itself can't be deleted or moved")
            return forbidden(f"you may not {what} in connector {target.connector.cid!r}")
        if target.level == "root":
            return ApiError(403, "the data root is read-only", code=2001)
        if target.manages is not None:
            return forbidden(f"only the admins of organization {target.owner!r} may create, delete, move or "
                             "change the ACL of its collections")
        return forbidden("only the owner can change this collection")

    @classmethod
    def require_read(cls, target: Target) -> None:
        if not target.readable:
            if target.connector is not None or target.in_call:
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

    @classmethod
    def require_replace(cls, target: Target) -> None:
        """Replace or change an existing file (``deletable``; for a called algorithm ``replaceable``)."""
        if not (target.deletable if target.replaceable is None else target.replaceable):
            raise cls._refuse(target, "replace")

    @classmethod
    def require_acl_change(cls, target: Target) -> None:
        cls.require_write(target)
        if target.in_call:
            raise cls._refuse(target, "change an ACL")
        cls.require_manage(target)

    @classmethod
    def require_manage(cls, target: Target) -> None:
        """Create (by a move), delete, move or re-ACL a collection of the hosted data itself."""
        if target.is_collection and target.manages is False:
            raise cls._refuse(target, "manage")
