"""Organizations: teams that own collections (``data://<org>/…``) and algorithms (``<org>/<algo>``).

Two sources, one view. Organizations made through the admin API (``POST /v1/organizations``) persist in
``<root>/organizations.json`` (0600, replaced atomically). Hub-managed ones come from the watched
``--organizations-file`` (``{"organizations": {"<org>": {"members": {"<user>": "admin"|"member"}}}}``),
re-read on change like the users file, so a JupyterHub group change reaches the next request; the API
may read them but not change them (409). Names follow the user names' rule and never collide with one.

Roles: ``admin`` (manage the org's members and fields, create, delete and re-ACL its collections) and
``member`` (read and write inside its collections, create, build and publish its algorithms).
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from .errors import ApiError, bad_request, not_found
from .users import save_private_json
from .watched_file import WatchedFile

log = logging.getLogger("algofs.serve")

NAME = re.compile(r"^\w{1,64}$", re.ASCII)
ROLES = ("admin", "member")
#: The hosted API's organization types (ids as its own test server answered them).
ORG_TYPES = [
    {"id": "d0c85ea6-ddfa-11ea-a0c8-12a811be4db3", "name": "basic"},
    {"id": "d0bff917-ddfa-11ea-a0c8-12a811be4db3", "name": "legacy"},
    {"id": "d0c9d825-ddfa-11ea-a0c8-12a811be4db3", "name": "pro"},
]
#: Hosted-API fields an organization carries and an edit may change (strings or null).
EDITABLE_FIELDS = ("org_label", "org_contact_name", "org_email", "org_url", "external_id",
                   "external_admin_group", "external_member_group")
HUB_MANAGED = "organization {!r} is managed by JupyterHub groups: change its members there"


def type_id(value: object) -> str:
    """The id of an organization type named by id or by name; 400 otherwise."""
    for known in ORG_TYPES:
        if value in (known["id"], known["name"]):
            return known["id"]
    raise bad_request(f"type_id must be one of {', '.join(t['name'] for t in ORG_TYPES)} (or its id)")


def _fields(body: dict) -> dict[str, str | None]:
    fields: dict[str, str | None] = {}
    for name in EDITABLE_FIELDS:
        if name in body:
            value = body[name]
            if value is not None and (not isinstance(value, str) or len(value) > 1024):
                raise bad_request(f"{name} must be a string of at most 1024 characters, or null")
            fields[name] = value
    return fields


def check_role(role: object) -> str:
    if role not in ROLES:
        raise bad_request('role must be "admin" or "member"')
    assert isinstance(role, str)
    return role


@dataclass
class Organization:
    name: str
    fields: dict = field(default_factory=dict)  # id, type_id, org_created_at and EDITABLE_FIELDS
    members: dict[str, str] = field(default_factory=dict)  # user -> role
    hub_managed: bool = False

    def view(self, api_address: str = "", with_members: bool = False) -> dict:
        """The hosted API's organization object; ``members`` (an extension) for those who may see them."""
        body = {"id": self.fields.get("id"), "org_name": self.name, "org_label": None,
                "org_contact_name": None, "org_email": None, "org_url": None,
                "org_created_at": self.fields.get("org_created_at"),
                "type_id": self.fields.get("type_id", ORG_TYPES[0]["id"]), "stripe_customer_id": None,
                "external_admin_group": None, "external_member_group": None, "external_id": None,
                "owner_ids": None, "resource_type": "organization",
                "self_link": f"{api_address}/v1/organizations/{self.name}", "hub_managed": self.hub_managed}
        body |= {k: v for k, v in self.fields.items() if k in EDITABLE_FIELDS}
        if with_members:
            body["members"] = [{"username": u, "role": r} for u, r in sorted(self.members.items())]
        return body


def load_organizations_file(path: Path) -> dict[str, Organization]:
    """The hub's file; ValueError names what is wrong (the previous version then stays in use)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    orgs = data.get("organizations") if isinstance(data, dict) else None
    if not isinstance(orgs, dict):
        raise ValueError('expected {"organizations": {"<org>": {"members": {"<user>": "admin"|"member"}}}}')
    found: dict[str, Organization] = {}
    for name, entry in orgs.items():
        members = entry.get("members", {}) if isinstance(entry, dict) else None
        if not isinstance(name, str) or not NAME.match(name) or not isinstance(members, dict):
            raise ValueError(f"organization {name!r}: a name of 1-64 letters, digits or _ with a members map")
        for user, role in members.items():
            if not isinstance(user, str) or not NAME.match(user) or role not in ROLES:
                raise ValueError(f"organization {name!r}: member {user!r} needs a role admin or member")
        ident = str(uuid.uuid5(uuid.NAMESPACE_URL, f"org://{name}"))
        found[name] = Organization(name, {"id": ident, "type_id": ORG_TYPES[0]["id"]}, dict(members), True)
    return found


class OrganizationStore:
    """Both sources above; ``is_user`` says whether a name is a user's (an org never takes one).

    Concurrency: event loop and storage threads read; changes come from the event loop (admin routes) and
    each replaces the dicts whole, so a reader sees one version or the next.
    """

    def __init__(self, state_path: Path, hub_file: Path | None, is_user: Callable[[str], bool],
                 on_new: Callable[[list[str]], None] | None = None):
        self.state_path = state_path
        self.is_user = is_user
        self._on_new = on_new  # gives each new organization its data folder
        self._api: dict[str, Organization] = self._load_state()
        self._hub: dict[str, Organization] = {}
        self._watch = WatchedFile(hub_file) if hub_file is not None else None
        if self._watch is not None and self._watch.exists:
            self._hub = load_organizations_file(self._watch.path)  # a broken file at start: a clear error
        self._announce(self.names())

    # -- reading ------------------------------------------------------------------------------------
    def _load_state(self) -> dict[str, Organization]:
        try:
            data = json.loads(self.state_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        return {name: Organization(name, entry.get("fields", {}), entry.get("members", {}))
                for name, entry in data.get("organizations", {}).items()}

    def reload_if_changed(self) -> None:
        if self._watch is None or not self._watch.poll():
            return
        try:
            hub = load_organizations_file(self._watch.path) if self._watch.exists else {}
        except (OSError, ValueError) as exc:
            log.warning("organizations file %s not reloaded, keeping the previous members: %s",
                        self._watch.path, exc)
            return
        self._watch.accept()
        added = sorted(set(hub) - set(self._hub))
        self._hub = hub
        log.info("organizations file reloaded: %d organizations (%d new)", len(hub), len(added))
        self._announce(added)

    def _announce(self, names: Iterable[str]) -> None:
        taken = [n for n in names if self.is_user(n)]
        if taken:
            log.warning("organizations %s not served: a user has that name", ", ".join(taken))
        names = [n for n in names if not self.is_user(n)]
        if names and self._on_new is not None:
            self._on_new(names)

    def get(self, name: str) -> Organization | None:
        """The organization of that name (the hub's file wins over an API one of the same name)."""
        self.reload_if_changed()
        if self.is_user(name):
            return None  # a user of that name appeared later: the user's folder is theirs
        return self._hub.get(name) or self._api.get(name)

    def names(self) -> list[str]:
        return sorted({*self._hub, *self._api})

    def role(self, org: str, user: str) -> str | None:
        """``user``'s role in ``org``, or None (not a member, or not an organization)."""
        found = self.get(org)
        return found.members.get(user) if found is not None else None

    def of_user(self, user: str) -> list[dict[str, str]]:
        """``[{"name", "role"}]`` of the organizations ``user`` belongs to."""
        self.reload_if_changed()
        return [{"name": n, "role": r} for n in self.names()
                if (r := self.role(n, user)) is not None]

    # -- changes (the admin routes check who may make them) ------------------------------------------
    def require(self, name: str) -> Organization:
        found = self.get(name) if NAME.match(name) else None
        if found is None:
            raise not_found(f"organization {name!r} not found")
        return found

    def require_api_managed(self, name: str) -> Organization:
        org = self.require(name)
        if org.hub_managed:
            raise ApiError(409, HUB_MANAGED.format(name), code=4090)
        return org

    def create(self, body: dict) -> Organization:
        name = body.get("org_name")
        if not isinstance(name, str) or not NAME.match(name):
            raise bad_request("org_name must be 1-64 ASCII letters, digits or underscores")
        if self.is_user(name):
            raise ApiError(409, f"{name!r} is a user's name", code=4090)
        if self.get(name) is not None:
            raise ApiError(409, f"organization {name!r} already exists", code=4090)
        created = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        org = Organization(name, {"id": str(uuid.uuid4()), "type_id": type_id(body.get("type_id", "basic")),
                                  "org_created_at": created, **_fields(body)})
        self._api = {**self._api, name: org}
        self._save()
        self._announce([name])
        return org

    def edit(self, name: str, body: dict) -> Organization:
        org = self.require_api_managed(name)
        if body.get("org_name", name) != name:
            raise bad_request("an organization can't be renamed (org_name must stay the same)")
        fields = _fields(body)
        if "type_id" in body:
            fields["type_id"] = type_id(body["type_id"])
        changed = Organization(name, {**org.fields, **fields}, dict(org.members))
        self._api = {**self._api, name: changed}
        self._save()
        return changed

    def set_member(self, name: str, user: str, role: str) -> None:
        org = self.require_api_managed(name)
        self._api = {**self._api, name: Organization(name, org.fields, {**org.members, user: role})}
        self._save()

    def remove_member(self, name: str, user: str) -> None:
        org = self.require_api_managed(name)
        if user not in org.members:
            raise not_found(f"{user!r} is not a member of {name!r}")
        members = {u: r for u, r in org.members.items() if u != user}
        self._api = {**self._api, name: Organization(name, org.fields, members)}
        self._save()

    def _save(self) -> None:
        save_private_json(self.state_path, {"organizations": {
            n: {"fields": o.fields, "members": o.members} for n, o in sorted(self._api.items())}})
