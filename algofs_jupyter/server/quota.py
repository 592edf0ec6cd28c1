"""Per-user storage quotas of the hosted data (``data://<user>/…``): bytes, and files and folders.

What counts: every file and folder below a user's folder in the hosted data (all their collections), on
whichever storage holds it (a local directory or a bucket); file sizes are the API's (a sparse file counts
its full length). Connectors are not counted (shared storage with rights of their own), nor are keys
that start with a dot (a called algorithm's ``data://.session`` scratch belongs to no user folder).

Limits (``QuotaTable``): a default for every user (``--quota-bytes``, ``--quota-files``; none unless given:
``DEFAULT_LIMITS``) and per-user overrides from an operator's JSON file (``--quotas-file``), re-read when it
changes (looked at at most once a second, when a limit is asked for).

Usage (``QuotaBook``): one ``Account`` per user, made by one count of their data (``StorageBackend.usage``):
at start, in a thread, for the users who have a limit; else the first time it is needed (a user's first
change once they have a limit, or ``GET /v1/algofs/quota``). It is then kept up to date by every change
that goes through ``QuotaBackend``: uploads, writes at an offset, mkdir, deletes, moves and copies.
A replaced file counts as what it replaced; a failed or aborted upload counts nothing.
An upload *reserves* what it may add before its bytes land (its whole Content-Length at once, else chunk
by chunk while it streams); reservations of uploads in flight count against the limit, so uploads in
parallel can't pass it together. A change that would pass a limit raises ``QuotaExceeded`` (HTTP 403,
errno ``EDQUOT``) and stores nothing. Changes that add nothing (deletes, shrinking writes) always work, also
for a user over a limit that was lowered.

Exactness: an upload's commit and a file delete read what they replace under a lock of their key, so
concurrent writers of one file count right. Changes made behind this server's back (another server on
the same bucket, files put into the root by hand) and changes racing a user's first count are seen at
the next start, when the count is made again.

Where the changes are counted: ``quota_backend.py`` (``QuotaBackend`` around the hosted data's backend).
Locks: a key's stripe lock there is held across an upload's commit and a file delete (storage calls) and
takes an ``Account.lock`` under it; ``Account.lock`` and ``QuotaBook._lock`` are leaves. A first count
runs under its user's ``QuotaBook._counting`` lock only.
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from ..sizes import human_bytes, parse_size
from .storage import QuotaExceeded, Usage
from .watched_file import WatchedFile

log = logging.getLogger("algofs.serve")

#: The extension's name in ``GET /v1/algofs/capabilities`` (docs/api-extensions.md §8).
QUOTA = "quota"
UNLIMITED = ("unlimited", "none")


@dataclass(frozen=True)
class QuotaLimits:
    """What one user's hosted data may hold: ``bytes``, and ``files`` (files and folders); None = no limit."""

    bytes: int | None = None
    files: int | None = None

    @property
    def unlimited(self) -> bool:
        return self.bytes is None and self.files is None

    def as_dict(self) -> dict[str, int | None]:
        return {"bytes": self.bytes, "files": self.files}


#: The one default of ``--quota-bytes`` and ``--quota-files``: no limit (docs/server.md, "Storage quotas").
DEFAULT_LIMITS = QuotaLimits()


def parse_byte_limit(text: str) -> int | None:
    """``--quota-bytes``: a size (``10G``, ``512M``, ``1073741824``) or ``unlimited``."""
    return None if text.strip().lower() in UNLIMITED else parse_size(text)


def parse_file_limit(text: str) -> int | None:
    """``--quota-files``: a number of files and folders, or ``unlimited``."""
    if text.strip().lower() in UNLIMITED:
        return None
    if not text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"not a number of files: {text!r}")
    return int(text)


def _limit(value: object, field: str) -> int | None:
    """A limit in the quotas file: null (none), a number >= 0, or for bytes a size such as "10G"."""
    if value is None:
        return None
    if field == "bytes" and isinstance(value, str):
        try:
            return parse_byte_limit(value)
        except argparse.ArgumentTypeError as exc:
            raise ValueError(str(exc)) from None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{field} must be null, a number >= 0" + (' or a size such as "10G"'
                                                                    if field == "bytes" else ""))
    return value


def _limits(base: QuotaLimits, spec: object, who: str) -> QuotaLimits:
    if not isinstance(spec, dict):
        raise ValueError(f"{who}: expected {{\"bytes\": …, \"files\": …}}")
    unknown = set(spec) - {"bytes", "files"}
    if unknown:
        raise ValueError(f"{who}: unknown {sorted(unknown)} (known: bytes, files)")
    try:
        return replace(base, **{field: _limit(value, field) for field, value in spec.items()})
    except ValueError as exc:
        raise ValueError(f"{who}: {exc}") from None


class QuotaTable:
    """The default limits plus per-user overrides from an operator's JSON file::

        {"default": {"bytes": "10G", "files": 100000},
         "users": {"alice": {"bytes": "50G"}, "bob": {"bytes": null, "files": null}}}

    A user's entry sets the fields it names (null: no limit) over the file's ``default``, which sets its
    fields over the command line's. The file may be missing (no overrides) or appear later. It is re-read
    when it changes; one that does not parse keeps the previous limits (logged), except at start, where
    ``ValueError`` says what is wrong.
    """

    def __init__(self, default: QuotaLimits = DEFAULT_LIMITS, path: Path | None = None):
        self.default = default
        self.path = path
        self._file_default = default
        self._users: dict[str, QuotaLimits] = {}
        self._watch = WatchedFile(path) if path is not None else None
        self._lock = threading.Lock()
        if self._watch is not None and self._watch.exists:
            self._file_default, self._users = self._load()

    @property
    def configured(self) -> bool:
        """Whether any user can have a limit (a default one, or a quotas file that may name some)."""
        return not self.default.unlimited or self.path is not None

    def for_user(self, user: str) -> QuotaLimits:
        self.reload_if_changed()
        return self._users.get(user, self._file_default)

    def _load(self) -> tuple[QuotaLimits, dict[str, QuotaLimits]]:
        assert self.path is not None
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{self.path}: not JSON: {exc}") from None
        if not isinstance(data, dict) or set(data) - {"default", "users"}:
            raise ValueError(f'{self.path}: expected {{"default": {{…}}, "users": {{"<name>": {{…}}}}}}')
        file_default = _limits(self.default, data.get("default", {}), f"{self.path}: default")
        users = data.get("users", {})
        if not isinstance(users, dict):
            raise ValueError(f"{self.path}: users must map user names to their limits")
        return file_default, {str(name): _limits(file_default, spec, f"{self.path}: {name}")
                              for name, spec in users.items()}

    def reload_if_changed(self) -> None:
        if self._watch is None or not self._lock.acquire(blocking=False):
            return
        try:
            if not self._watch.poll():
                return
            try:
                file_default, users = self._load() if self._watch.exists else (self.default, {})
            except (OSError, ValueError) as exc:
                log.warning("quotas file not reloaded, keeping the previous limits: %s", exc)
                return
            self._watch.accept()
            self._file_default, self._users = file_default, users
            log.info("quotas file %s reloaded: %d users with their own limits", self.path, len(users))
        finally:
            self._lock.release()


def quota_warning(table: QuotaTable, multi_user: bool) -> str | None:
    """What the operator of a multi-user server should hear when no user has a storage quota, or None."""
    if not multi_user or table.configured:
        return None
    return ("no storage quota on this multi-user server: any user can fill its disk. Set --quota-bytes and "
            "--quota-files, or per user in --quotas-file (docs/server.md, \"Storage quotas\")")


class Account:
    """One user's usage (``bytes``, ``files``) and what uploads in flight have reserved on top of it."""

    def __init__(self, user: str, used: Usage):
        self.user = user
        self.bytes, self.files = used.bytes, used.files
        self.reserved_bytes = self.reserved_files = 0
        self.lock = threading.Lock()

    def reserve(self, limits: QuotaLimits, more_bytes: int, more_files: int,
                change: int | None = None) -> None:
        """Count ``more_*`` against ``limits`` until settled; raises QuotaExceeded (nothing reserved).
        ``change``: all the bytes the change adds, when it reserved part of them before (a streamed upload
        reserves chunk by chunk)."""
        change = more_bytes if change is None else change
        with self.lock:
            if more_bytes > 0 and limits.bytes is not None and \
                    self.bytes + self.reserved_bytes + more_bytes > limits.bytes:
                raise self._exceeded(limits, "bytes", change, self.reserved_bytes - (change - more_bytes))
            if more_files > 0 and limits.files is not None and \
                    self.files + self.reserved_files + more_files > limits.files:
                raise self._exceeded(limits, "files", more_files, self.reserved_files)
            self.reserved_bytes += more_bytes
            self.reserved_files += more_files

    def settle(self, reserved_bytes: int, reserved_files: int, add_bytes: int = 0,
               add_files: int = 0) -> None:
        """Release a reservation and count what the change really did, at once."""
        with self.lock:
            self.reserved_bytes -= reserved_bytes
            self.reserved_files -= reserved_files
            self.bytes = max(0, self.bytes + add_bytes)
            self.files = max(0, self.files + add_files)

    def _exceeded(self, limits: QuotaLimits, kind: str, change: int, others: int) -> QuotaExceeded:
        """The error naming the quota, the usage, what other changes under way hold and what this adds."""
        if kind == "bytes":
            assert limits.bytes is not None
            show: Callable[[int], str] = human_bytes
            quota = "storage"
            held = f"{human_bytes(self.bytes)} of its {human_bytes(limits.bytes)} storage quota"
        else:
            show = str
            quota = "file"
            held = f"{self.files} files and folders, its quota is {limits.files}"
        under_way = f" (and {show(others)} more in changes under way)" if others > 0 else ""
        message = (f"{quota} quota exceeded: data://{self.user} holds {held}{under_way}; this change would "
                   f"add {show(change)}")
        return QuotaExceeded(message, error_type="QuotaExceeded", quota=limits.as_dict(),
                             usage={"bytes": self.bytes, "files": self.files})


class QuotaBook:
    """The users' accounts, each made by one count of the user's data when it is first needed."""

    def __init__(self, table: QuotaTable, count: Callable[[str], Usage]):
        self.table = table
        self._count = count
        self._accounts: dict[str, Account] = {}
        self._counting: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()

    def limits(self, user: str) -> QuotaLimits:
        return self.table.for_user(user)

    def account(self, user: str, needed: bool = False) -> Account | None:
        """The user's account; None when nothing asked for one yet and the user has no limit (then no change
        of theirs needs counting). ``needed``: make it anyway."""
        account = self._accounts.get(user)
        if account is not None:
            return account
        if not needed and self.limits(user).unlimited:
            return None
        with self._lock:
            counting = self._counting.setdefault(user, threading.Lock())
        with counting:
            account = self._accounts.get(user)
            if account is None:
                started = time.monotonic()
                account = Account(user, self._count(user))
                log.info("quota: data://%s holds %d bytes in %d files and folders (counted in %.3f s)",
                         user, account.bytes, account.files, time.monotonic() - started)
                with self._lock:
                    self._accounts[user] = account
        return account

    def count_in_background(self, users: list[str]) -> threading.Thread:
        """Make the accounts of ``users`` who have a limit now, in a thread (the server's start): their first
        writes then need no count (a write that comes earlier waits for its user's)."""

        def count() -> None:
            for user in users:
                try:
                    self.account(user)
                except Exception as exc:  # e.g. the storage is unreachable: counted at the user's first write
                    log.warning("quota: data://%s not counted at start: %s", user, exc)

        thread = threading.Thread(target=count, name="quota-count", daemon=True)
        thread.start()
        return thread

    def report(self, user: str) -> dict:
        """``GET /v1/algofs/quota``: the user's limits and usage (docs/api-extensions.md §8)."""
        account = self.account(user, needed=True)
        assert account is not None
        with account.lock:
            usage = {"bytes": account.bytes, "files": account.files}
            in_flight = {"bytes": account.reserved_bytes, "files": account.reserved_files}
        return {"user": user, "quota": self.limits(user).as_dict(), "usage": usage, "in_flight": in_flight}
