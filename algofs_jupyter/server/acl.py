"""Collection ACLs, kept as metadata of the hosted-data backend (out of reach of user keys).

Metadata blob ``acl/<user>/<collection>/read.json`` holds ``{"read": [...]}`` (on local storage:
``<root>/meta/acl/...``). A folder per collection keeps any collection name the API accepts (up to 255
bytes) storable; the earlier ``acl/<user>/<collection>.json`` layout is still read. The API knows exactly
three read lists; a collection without one has the default, ``["algo://.my/*"]``.
"""

from __future__ import annotations

import json

from .storage import StorageBackend, StorageError

PRIVATE: list[str] = []
MY_ALGORITHMS = ["algo://.my/*"]
PUBLIC = ["user://*"]
VALID_READ_LISTS = (PRIVATE, MY_ALGORITHMS, PUBLIC)
DEFAULT_READ = MY_ALGORITHMS


class AclError(ValueError):
    """The ACL in a request body is not one the API knows."""


def validate_acl(acl: object) -> list[str]:
    """The read list of a request's ``{"read": [...]}`` object, or AclError."""
    if not isinstance(acl, dict) or not isinstance(acl.get("read"), list):
        raise AclError('acl must look like {"read": [...]}')
    read = acl["read"]
    if read not in VALID_READ_LISTS:
        raise AclError('acl.read must be [], ["algo://.my/*"] or ["user://*"]')
    return list(read)


class AclStore:
    def __init__(self, backend: StorageBackend):
        self.backend = backend

    @staticmethod
    def _name(user: str, collection: str) -> tuple[str, ...]:
        return ("acl", user, collection, "read.json")

    def has(self, user: str, collection: str) -> bool:
        return self._load(user, collection) is not None

    def _load(self, user: str, collection: str) -> bytes | None:
        data = self.backend.read_meta(self._name(user, collection))
        if data is None and len(collection.encode()) <= 250:
            data = self.backend.read_meta(("acl", user, f"{collection}.json"))  # the earlier layout
        return data

    def read_list(self, user: str, collection: str) -> list[str]:
        """The collection's read list; an unreadable or damaged one counts as private, never as an error."""
        try:
            data = self._load(user, collection)
            return list(DEFAULT_READ) if data is None else validate_acl(json.loads(data))
        except (StorageError, ValueError, RecursionError):
            return list(PRIVATE)

    def set_read_list(self, user: str, collection: str, read: list[str]) -> None:
        self.backend.write_meta(self._name(user, collection), json.dumps({"read": read}).encode())

    def forget(self, user: str, collection: str) -> None:
        self.backend.delete_meta(self._name(user, collection))
        if len(collection.encode()) <= 250:
            self.backend.delete_meta(("acl", user, f"{collection}.json"))

    def move(self, user: str, collection: str, new_name: str) -> None:
        """Carry a renamed collection's ACL over to its new name."""
        self.set_read_list(user, new_name, self.read_list(user, collection))
        self.forget(user, collection)

    def may_read(self, owner: str, collection: str, username: str, algo_owner: str | None) -> bool:
        """Owners always read; others per the ACL (algorithms of the owner for ``algo://.my/*``)."""
        return username == owner or self.shared(owner, collection, algo_owner)

    def shared(self, owner: str, collection: str, algo_owner: str | None) -> bool:
        """Readable without being the owner: public, or ``algo://.my/*`` and an algorithm of the owner."""
        read = self.read_list(owner, collection)
        return read == PUBLIC or (read == MY_ALGORITHMS and algo_owner == owner)
