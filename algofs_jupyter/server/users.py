"""Users, API keys and the Authorization header.

Keys come from a users file (JSON or TOML) or a single ``--user``/``--api-key`` pair. They are compared
in constant time and never logged. Algorithm calls additionally get short-lived per-call tokens so
that code running inside an algorithm acts as the caller, narrowed to the call's scope
(``call_scope.py``: what its input names, its ``data://.session``), *and* is known to be an algorithm of
its owner (needed for the ``algo://.my/*`` ACL). A token dies with its call, and every token of a call
tree with the top-level call.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .watched_file import WatchedFile

if TYPE_CHECKING:  # only for a type: the call scope is the handlers' business
    from .call_scope import CallScope

log = logging.getLogger("algofs.serve")

DEMO_USERS = {"demo": "sim-demo-key", "anowell": "sim-anowell-key", "alice": "sim-alice-key"}


@dataclass(frozen=True)
class Identity:
    """Who is calling; ``algo_owner`` and ``scope`` are set when the call comes from inside an algorithm
    (a per-call token): it acts as ``username`` within ``scope`` only."""

    username: str
    algo_owner: str | None = None
    scope: CallScope | None = None


def _load_toml(path: str | Path, text: str) -> object:
    """``tomllib`` came with Python 3.11; on 3.10 a TOML users file is refused with a clear message."""
    if sys.version_info >= (3, 11):
        import tomllib

        return tomllib.loads(text)
    raise ValueError(f"{path}: TOML users files need Python >= 3.11 (tomllib); use a JSON users file")


def load_users_file(path: str | Path) -> dict[str, str]:
    """Read ``{"users": {name: key}}`` or a flat ``{name: key}`` mapping from JSON or TOML.

    An empty mapping is allowed: a JupyterHub adds each user's key when it first spawns their server.
    """
    text = Path(path).read_text(encoding="utf-8")
    data = _load_toml(path, text) if str(path).endswith(".toml") else json.loads(text)
    users = data.get("users", data) if isinstance(data, dict) else None
    if not isinstance(users, dict):
        raise ValueError(f"{path}: expected a mapping of user names to API keys")
    for name, key in users.items():
        if not isinstance(name, str) or not isinstance(key, str) or not key:
            raise ValueError(f"{path}: user {name!r} needs a non-empty string key")
    return dict(users)


def load_created_users(path: Path) -> dict[str, dict]:
    """Users the admin API made (``{"users": {name: {"api_key", "email", …}}}``); none when no file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    return {n: r for n, r in data.get("users", {}).items() if isinstance(r, dict) and r.get("api_key")}


def save_private_json(path: Path, body: dict) -> None:
    """Replace ``path`` atomically with a 0600 file (keys, or who may reach which data)."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(body, handle, indent=1)
    os.replace(tmp, path)


def parse_authorization(header: str | None) -> str | None:
    """The credential from any of the three forms ``<key>``, ``Simple <key>``, ``Bearer <token>``."""
    if not header:
        return None
    header = header.strip()
    scheme, _, rest = header.partition(" ")
    if rest and scheme.lower() in ("simple", "bearer"):
        return rest.strip() or None
    return header


class UserRegistry:
    """API keys of the configured users plus the live per-call algorithm tokens.

    With ``users_file`` the file is watched: a JupyterHub hook (deploy/jupyterhub_config.py) adds a user's
    key while the server runs, and an admin revokes one by deleting its line, without a restart. A file
    that fails to parse keeps the previous keys. ``on_new_users`` is told the names that appeared.
    """

    def __init__(self, users: dict[str, str], users_file: Path | None = None,
                 on_new_users: Callable[[list[str]], None] | None = None,
                 admins: frozenset[str] = frozenset(), created_file: Path | None = None):
        self.admins = admins  # named by the operator (``--admin``): the admin API's callers
        self._created_file = created_file
        self._created: dict[str, dict] = load_created_users(created_file) if created_file else {}
        users = {**{n: r["api_key"] for n, r in self._created.items()}, **users}
        self._keys = dict(users)
        self._algo_tokens: dict[str, Identity] = {}
        self._users_file = users_file
        self._watch = WatchedFile(users_file) if users_file is not None else None
        self._on_new_users = on_new_users
        self._fixed = dict(users)
        if users_file is not None and self._watch is not None:
            from_file = load_users_file(users_file) if self._watch.exists else {}
            self._fixed = {n: k for n, k in users.items() if from_file.get(n) != k}

    @property
    def usernames(self) -> list[str]:
        return sorted(self._keys)

    def is_user(self, name: str) -> bool:
        self.reload_if_changed()
        return name in self._keys

    def create_user(self, name: str, record: dict) -> str:
        """A user made by an admin (``POST /v1/users``): a new key, kept 0600 in ``created_file`` with
        ``record`` so it survives a restart; the caller checked the name is free."""
        assert self._created_file is not None
        key = "algofs-" + secrets.token_urlsafe(24)
        created = {**self._created, name: {**record, "api_key": key}}
        save_private_json(self._created_file, {"users": created})
        self._created = created
        self._fixed[name] = key
        self._keys = {**self._keys, name: key}
        if self._on_new_users is not None:
            self._on_new_users([name])
        return key

    def reload_if_changed(self) -> None:
        if self._watch is None or not self._watch.poll():
            return
        try:
            from_file = load_users_file(self._watch.path) if self._watch.exists else {}
        except (OSError, ValueError) as exc:
            log.warning("users file %s not reloaded, keeping the previous keys: %s", self._watch.path, exc)
            return
        self._watch.accept()
        keys = {**from_file, **self._fixed}
        added = sorted(set(keys) - set(self._keys))
        log.info("users file reloaded: %d users (%d new)", len(keys), len(added))
        self._keys = keys
        if added and self._on_new_users is not None:
            self._on_new_users(added)

    def authenticate(self, header: str | None) -> Identity | None:
        credential = parse_authorization(header)
        if credential is None:
            return None
        self.reload_if_changed()
        token_identity = self._algo_tokens.get(credential)
        if token_identity is not None:
            scope = token_identity.scope
            return None if scope is not None and scope.scratch.closed else token_identity
        found = None
        for name, key in self._keys.items():  # no early exit: timing must not reveal which key matched
            if hmac.compare_digest(key.encode(), credential.encode()):
                found = name
        return Identity(found) if found else None

    def issue_algorithm_token(self, caller: str, algo_owner: str, scope: CallScope) -> str:
        """A token acting as ``caller`` within ``scope``, for a call of an algorithm of ``algo_owner``;
        refused once revoked or once its call tree's top-level call ended (``scope.scratch.closed``)."""
        token = "algo-" + secrets.token_urlsafe(24)
        self._algo_tokens[token] = Identity(caller, algo_owner, scope)
        return token

    def revoke_algorithm_token(self, token: str) -> None:
        self._algo_tokens.pop(token, None)


def multi_user_server(users: dict[str, str], users_file: Path | None) -> bool:
    """Whether several people use the server: it has a users file (which may gain users while it runs;
    JupyterHub's starts empty) or several users. A bare ``--demo`` (the published demo keys, no users
    file) is one person's: anyone may act as any demo user there."""
    return users_file is not None or (len(users) > 1 and users != DEMO_USERS)
