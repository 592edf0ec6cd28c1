"""Collection ACLs, kept in a sidecar tree that user files can never collide with.

``<root>/meta/acl/<user>/<collection>.json`` holds ``{"read": [...]}``. The API knows exactly three
read lists; a collection without a sidecar has the default, ``["algo://.my/*"]``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

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
    def __init__(self, root: Path):
        self.base = root / "meta" / "acl"

    def _file(self, user: str, collection: str) -> Path:
        return self.base / user / f"{collection}.json"

    def read_list(self, user: str, collection: str) -> list[str]:
        try:
            data = json.loads(self._file(user, collection).read_text(encoding="utf-8"))
            return validate_acl(data)
        except (FileNotFoundError, ValueError):
            return list(DEFAULT_READ)

    def set_read_list(self, user: str, collection: str, read: list[str]) -> None:
        path = self._file(user, collection)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps({"read": read}), encoding="utf-8")
        os.replace(tmp, path)

    def forget(self, user: str, collection: str) -> None:
        self._file(user, collection).unlink(missing_ok=True)

    def may_read(self, owner: str, collection: str, username: str, algo_owner: str | None) -> bool:
        """Owners always read; others per the ACL (algorithms of the owner for ``algo://.my/*``)."""
        if username == owner:
            return True
        read = self.read_list(owner, collection)
        if read == PUBLIC:
            return True
        return read == MY_ALGORITHMS and algo_owner == owner
