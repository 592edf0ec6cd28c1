"""JupyterHub groups as AlgoFS organizations: a hub service keeps the organizations file in step with them.

JupyterHub has no hook on group changes, so this runs as a hub-managed service
(``deploy/jupyterhub_config.py``) with a token that may only read groups and users. Every ``--interval``
seconds it reads ``/hub/api/groups`` and ``/hub/api/users`` and, when the result differs, atomically
replaces the organizations file that ``algofs serve --organizations-file`` re-reads on change: a user
removed from a group loses the org within one interval plus the server's next request, with no restart.
Which groups become orgs and who administers them is a ``GroupPolicy`` (docs/deploy.md, "Teams"). Names
the API could not carry are skipped with a log line, never guessed at; a hub that does not answer leaves
the file as it is (no one loses access because the hub restarts).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pwd
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from .hub_keys import USERNAME, replace_private_file

log = logging.getLogger("algofs.hub_groups")

#: The org roles the server knows (the contract of ``algofs serve --organizations-file``).
ADMIN, MEMBER = "admin", "member"
#: All the service's token may do: read groups (members, properties) and users' names and admin flags.
SERVICE_SCOPES = ("list:groups", "read:groups", "list:users")
#: JupyterHub answers a page of results, not a truncated list, when asked with this type.
PAGINATED = "application/jupyterhub-pagination+json"
#: Items asked for per page (the hub answers at most its api_page_max_limit, 200 by default): one page,
#: so one consistent read, on most hubs.
PAGE_LIMIT = 200


@dataclass(frozen=True)
class GroupPolicy:
    """Which hub groups are orgs, and who administers one.

    ``prefix``: only groups whose name starts with it; the org is named by the rest (``team_physics`` with
    prefix ``team_`` is the org ``physics``). Empty: every group, under its own name.
    ``admins_property``: the group property naming its org admins (a list, or names separated by commas or
    spaces, as the hub admin page edits them); names that are not members are ignored.
    ``hub_admins``: hub admins who are members of the group are its org's admins too.
    """

    prefix: str = ""
    admins_property: str = "algofs_admins"
    hub_admins: bool = True


@dataclass(frozen=True)
class HubGroup:
    name: str
    users: tuple[str, ...]
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Organizations:
    """The file's content (``{org: {user: role}}``) and why each left-out group or member was left out."""

    members: dict[str, dict[str, str]]
    skipped: tuple[str, ...]

    def document(self) -> dict[str, Any]:
        return {"organizations": {org: {"members": dict(sorted(members.items()))}
                                  for org, members in sorted(self.members.items())}}


def _names(value: Any) -> set[str]:
    if isinstance(value, str):
        return {name for name in re.split(r"[\s,]+", value) if name}
    if isinstance(value, list | tuple):
        return {name for name in value if isinstance(name, str)}
    return set()


def organizations_from_groups(groups: Iterable[HubGroup], hub_admins: set[str], hub_users: set[str],
                              policy: GroupPolicy) -> Organizations:
    """The orgs ``groups`` stand for under ``policy``. Skipped, with a reason: a group whose org name the
    API cannot carry or is a user's name (``data://<name>`` would be both); a member with no usable name."""
    members: dict[str, dict[str, str]] = {}
    skipped: list[str] = []
    for group in sorted(groups, key=lambda g: g.name):
        if not group.name.startswith(policy.prefix):
            continue
        org = group.name[len(policy.prefix):]
        if not USERNAME.match(org):
            skipped.append(f"group {group.name!r}: {org!r} is not a usable organization name "
                           "(1-64 letters, digits, _)")
            continue
        if org in hub_users:
            skipped.append(f"group {group.name!r}: {org!r} is also a user's name")
            continue
        admins = _names(group.properties.get(policy.admins_property))
        roles: dict[str, str] = {}
        for user in group.users:
            if not USERNAME.match(user):
                skipped.append(f"group {group.name!r}: member {user!r} has no usable AlgoFS name")
                continue
            is_admin = user in admins or (policy.hub_admins and user in hub_admins)
            roles[user] = ADMIN if is_admin else MEMBER
        members[org] = roles
    return Organizations(members, tuple(skipped))


class HubClient:
    """The two hub API calls the sync needs; the token travels only in a header."""

    def __init__(self, api_url: str, token: str, timeout: float = 10.0) -> None:
        self.api_url = api_url.rstrip("/")
        self.session = requests.Session()
        self.session.headers.update({"Authorization": f"token {token}", "Accept": PAGINATED})
        self.timeout = timeout

    def _items(self, path: str) -> list[dict[str, Any]]:
        """Every item of a list, in pages as large as the hub allows. A list whose length changed between
        pages may have shifted under the offsets (a group skipped): ValueError, read again next time."""
        items: list[dict[str, Any]] = []
        total = None
        while True:
            response = self.session.get(f"{self.api_url}{path}", timeout=self.timeout,
                                        params={"offset": len(items), "limit": PAGE_LIMIT})
            response.raise_for_status()
            page = response.json()
            if isinstance(page, list):  # a hub without pagination answers the whole list
                return page
            items += page["items"]
            pagination = page.get("_pagination") or {}
            if total is not None and pagination.get("total") != total:
                raise ValueError(f"{path} changed while it was read page by page")
            total = pagination.get("total")
            if not pagination.get("next") or not page["items"]:
                return items

    def groups(self) -> list[HubGroup]:
        return [HubGroup(g["name"], tuple(g.get("users") or ()), dict(g.get("properties") or {}))
                for g in self._items("/groups")]

    def users(self) -> tuple[set[str], set[str]]:
        """Every hub user's name, and the names of the hub admins."""
        names, admins = set(), set()
        for user in self._items("/users"):
            names.add(user["name"])
            if user.get("admin"):
                admins.add(user["name"])
        return names, admins


def write_organizations(path: Path, organizations: Organizations, owner: str) -> bool:
    """Replace the file (0600, owned by ``owner``) when its content would change; True if it did."""
    text = json.dumps(organizations.document(), indent=1) + "\n"
    try:
        if path.read_text() == text:
            return False
    except (FileNotFoundError, UnicodeDecodeError):
        pass
    replace_private_file(path, text, owner)
    return True


class GroupSync:
    """One hub, one file, one policy: ``sync_once`` per poll; logs what changed, not every poll."""

    def __init__(self, hub: HubClient, path: Path, owner: str, policy: GroupPolicy) -> None:
        self.hub, self.path, self.owner, self.policy = hub, path, owner, policy
        self._reported: tuple[str, ...] = ()
        self._failing: str | None = None

    def sync_once(self) -> bool:
        """Read the hub, write the file if it changed; False when the hub did not answer (file kept)."""
        try:
            groups = self.hub.groups()
            names, admins = self.hub.users()
        except (requests.RequestException, ValueError, KeyError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
            if problem != self._failing:
                log.warning("hub groups not read (organizations file kept as it is): %s", problem)
                self._failing = problem
            return False
        if self._failing is not None:
            log.info("hub groups read again")
            self._failing = None
        organizations = organizations_from_groups(groups, admins, names, self.policy)
        if organizations.skipped != self._reported:
            for reason in organizations.skipped:
                log.warning("skipped: %s", reason)
            self._reported = organizations.skipped
        if write_organizations(self.path, organizations, self.owner):
            counts = [f"{org} ({len(members)})" for org, members in sorted(organizations.members.items())]
            log.info("organizations file updated: %s", ", ".join(counts) or "none")
        return True

    def run(self, interval: float) -> None:
        while True:
            self.sync_once()
            time.sleep(interval)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m algofs_jupyter.hub_groups",
                                     description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--organizations-file", type=Path, required=True, help="the file algofs serve reads")
    parser.add_argument("--owner", default=pwd.getpwuid(os.geteuid()).pw_name,
                        help="account that owns the file (default: the one running this)")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between polls (default 2)")
    parser.add_argument("--prefix", default="",
                        help="only groups whose name starts with it; the org is named by the rest")
    parser.add_argument("--admins-property", default="algofs_admins",
                        help="group property naming the org's admins (default algofs_admins)")
    parser.add_argument("--no-hub-admins", action="store_true",
                        help="hub admins in a group are not made its org's admins")
    parser.add_argument("--once", action="store_true",
                        help="sync once and exit (1 if the hub did not answer)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Hub URL and token from the environment JupyterHub gives a managed service (never from argv)."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    hub = HubClient(os.environ["JUPYTERHUB_API_URL"], os.environ["JUPYTERHUB_API_TOKEN"])
    policy = GroupPolicy(args.prefix, args.admins_property, not args.no_hub_admins)
    sync = GroupSync(hub, args.organizations_file, args.owner, policy)
    if args.once:
        return 0 if sync.sync_once() else 1
    try:
        sync.run(args.interval)
    except KeyboardInterrupt:  # the hub stops its services with SIGINT
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
