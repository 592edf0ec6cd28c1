"""``QuotaBackend``: the hosted data's storage backend with every change counted against its user's quota
(the rules, the limits and the accounts: ``quota.py``).

Every change of a user with an account goes through here: an upload reserves what it may add before its
bytes reach the inner backend (``QuotaUpload.expect`` with the declared length, ``write`` chunk by chunk)
and counts what its commit did, from what the commit replaced; mkdir, deletes, moves and copies count
what they add or remove (a forced directory delete counts the tree first, and recounts what is left when
it fails midway). Everything else, and every change of a user without an account, goes straight through.

Locks: ``QuotaBackend._key_locks`` (stripes by key) are held across an upload's commit and a file delete,
so what they replace is read exactly; an ``Account.lock`` is taken under one, never the other way round.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Literal

from .call_scope import SCRATCH_ROOT, scratch_owner
from .quota import QUOTA, Account, QuotaBook, QuotaTable
from .storage import (
    NOT_LOOKED_UP,
    AttrChange,
    EntryInfo,
    Key,
    ListingPage,
    Lookup,
    NotFound,
    SortKey,
    StorageBackend,
    StorageError,
    Upload,
    Usage,
)

log = logging.getLogger("algofs.serve")

#: Key locks: commits of different keys rarely share one.
STRIPES = 64


def _held(info: EntryInfo | None) -> Usage:
    """What one entry adds by itself: a file its size and one file; a folder one (its content aside)."""
    if info is None:
        return Usage()
    return Usage(0 if info.is_dir else info.size, 1)


class QuotaBackend(StorageBackend):
    """The hosted data's backend (keys start with the user) with every change counted in its user's
    account. Reads and metadata pass straight through, and so does every change of a user without one."""

    def __init__(self, inner: StorageBackend, table: QuotaTable):
        self.inner = inner
        self.book = QuotaBook(table, self._count)
        self.capabilities = inner.capabilities | {QUOTA}
        self.blocking = inner.blocking
        self.reads_in_one_request = inner.reads_in_one_request
        self._key_locks = [threading.Lock() for _ in range(STRIPES)]

    def __getattr__(self, name: str) -> object:  # what only the inner backend has (a local root, …)
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __repr__(self) -> str:
        return f"QuotaBackend({self.inner!r})"

    def _count(self, user: str) -> Usage:
        try:
            return self.inner.usage((user,))
        except NotFound:
            return Usage()

    def _account(self, key: Key) -> Account | None:
        """Whose quota a key counts against: the user folder's owner, or for what a called algorithm puts
        in ``data://.session``, the caller (``call_scope.scratch_owner``)."""
        if key and key[0] == SCRATCH_ROOT:
            owner = scratch_owner(key)
            return self.book.account(owner) if owner is not None else None
        if len(key) < 2 or key[0].startswith("."):
            return None  # the data root or a user folder itself
        return self.book.account(key[0])

    def key_lock(self, key: Key) -> threading.Lock:
        return self._key_locks[hash(key) % STRIPES]

    def reserve(self, account: Account, more_bytes: int, more_files: int, change: int | None = None) -> None:
        account.reserve(self.book.limits(account.user), more_bytes, more_files, change)

    def current(self, key: Key) -> EntryInfo | None:
        try:
            return self.inner.info(key)
        except NotFound:
            return None

    def _subtree(self, key: Key, info: EntryInfo) -> Usage:
        if not info.is_dir:
            return _held(info)
        below = self.inner.usage(key)
        return Usage(below.bytes, below.files + 1)

    # -- reading and metadata: straight through -------------------------------------------------------

    def info(self, key: Key) -> EntryInfo:
        return self.inner.info(key)

    def open_file(self, key: Key) -> tuple[int, EntryInfo]:
        return self.inner.open_file(key)

    def file_at(self, key: Key) -> EntryInfo | None:
        return self.inner.file_at(key)

    def read(self, key: Key, start: int = 0, length: int | None = None) -> Iterator[bytes]:
        return self.inner.read(key, start, length)

    def read_file(self, key: Key, first: int = 0, last: int | None = None
                  ) -> tuple[EntryInfo, int, Iterator[bytes]]:
        return self.inner.read_file(key, first, last)

    def list_page(self, key: Key, after: SortKey | None = None, limit: int = 1000) -> ListingPage:
        return self.inner.list_page(key, after, limit)

    def usage(self, key: Key) -> Usage:
        return self.inner.usage(key)

    def set_mtime(self, key: Key, mtime: float) -> EntryInfo:
        return self.inner.set_mtime(key, mtime)

    def set_attributes(self, key: Key, change: AttrChange) -> EntryInfo:
        return self.inner.set_attributes(key, change)

    def with_posix(self, key: Key, entries: list[EntryInfo]) -> list[EntryInfo]:
        return self.inner.with_posix(key, entries)

    def read_meta(self, name: Key) -> bytes | None:
        return self.inner.read_meta(name)

    def write_meta(self, name: Key, data: bytes) -> None:
        self.inner.write_meta(name, data)

    def delete_meta(self, name: Key) -> None:
        self.inner.delete_meta(name)

    def sweep(self) -> int:
        return self.inner.sweep()

    # -- changes: counted ------------------------------------------------------------------------------

    def write(self, key: Key, *, offset: int | None = None, truncate: bool = False,
              if_match: str | None = None, expected_size: int | None = None,
              current: EntryInfo | None | Literal[Lookup.NOT_DONE] = NOT_LOOKED_UP,
              exclusive: bool = False, mode: int | None = None) -> Upload:
        account = self._account(key)
        if account is None:
            return self.inner.write(key, offset=offset, truncate=truncate, if_match=if_match,
                                    expected_size=expected_size, current=current, exclusive=exclusive,
                                    mode=mode)
        if current is NOT_LOOKED_UP:
            current = self.current(key)
        new_file = int(current is None)
        self.reserve(account, 0, new_file)  # a new file past the files quota: refused before anything
        try:
            upload = self.inner.write(key, offset=offset, truncate=truncate, if_match=if_match,
                                      expected_size=expected_size, current=current, exclusive=exclusive,
                                      mode=mode)
        except BaseException:
            account.settle(0, new_file)
            raise
        return QuotaUpload(self, account, key, upload, offset, truncate, current, new_file)

    def mkdir(self, key: Key, mode: int | None = None) -> EntryInfo:
        account = self._account(key)
        if account is None:
            return self.inner.mkdir(key, mode)
        self.reserve(account, 0, 1)
        try:
            info = self.inner.mkdir(key, mode)
        except BaseException:
            account.settle(0, 1)
            raise
        account.settle(0, 1, 0, 1)
        return info

    def symlink(self, key: Key, target: str) -> EntryInfo:
        """A link is a small file: its target's bytes and one file."""
        account = self._account(key)
        if account is None:
            return self.inner.symlink(key, target)
        size = len(target.encode("utf-8", "surrogateescape"))
        self.reserve(account, size, 1)
        try:
            info = self.inner.symlink(key, target)
        except BaseException:
            account.settle(size, 1)
            raise
        account.settle(size, 1, size, 1)
        return info

    def delete_file(self, key: Key) -> None:
        account = self._account(key)
        if account is None:
            self.inner.delete_file(key)
            return
        with self.key_lock(key):
            gone = _held(self.inner.file_at(key))
            self.inner.delete_file(key)
            account.settle(0, 0, -gone.bytes, -gone.files)

    def delete_dir(self, key: Key, force: bool = False) -> int:
        account = self._account(key)
        if account is None:
            return self.inner.delete_dir(key, force)
        below = self.inner.usage(key) if force else Usage()  # without force only an empty one goes
        try:
            deleted = self.inner.delete_dir(key, force)
        except BaseException:
            if force:  # part of the tree may be gone: count what is left
                self._recount_after_failed_delete(account, key, below)
            raise
        account.settle(0, 0, -below.bytes, -(below.files + 1))
        return deleted

    def _recount_after_failed_delete(self, account: Account, key: Key, below: Usage) -> None:
        try:
            left, gone_dir = self.inner.usage(key), 0
        except NotFound:
            left, gone_dir = Usage(), 1
        except StorageError as exc:
            log.warning("quota: data://%s not recounted after a failed delete: %s", "/".join(key), exc)
            return
        account.settle(0, 0, -(below.bytes - left.bytes), -(below.files - left.files) - gone_dir)

    def move(self, source: Key, destination: Key, overwrite: bool = False) -> EntryInfo:
        giver, taker = self._account(source), self._account(destination)
        if giver is None and taker is None:
            return self.inner.move(source, destination, overwrite)
        replaced = _held(self.current(destination) if overwrite and source != destination else None)
        moved = Usage()
        if source[:1] != destination[:1]:  # into another folder's account: its content counts there
            moved = self._subtree(source, self.inner.info(source))
        grow = (max(0, moved.bytes - replaced.bytes), max(0, moved.files - replaced.files))
        if taker is not None and moved.files:
            self.reserve(taker, *grow, change=moved.bytes)
        try:
            result = self.inner.move(source, destination, overwrite)
        except BaseException:
            if taker is not None and moved.files:
                taker.settle(*grow)
            raise
        if moved.files:  # between two accounts (or from / to no account)
            if giver is not None:
                giver.settle(0, 0, -moved.bytes, -moved.files)
            if taker is not None:
                taker.settle(*grow, moved.bytes - replaced.bytes, moved.files - replaced.files)
        elif taker is not None:  # inside one account: only what the move replaced is gone
            taker.settle(0, 0, -replaced.bytes, -replaced.files)
        return result

    def copy(self, source: Key, destination: Key, overwrite: bool = False) -> EntryInfo:
        account = self._account(destination)
        if account is None:
            return self.inner.copy(source, destination, overwrite)
        size = self.inner.info(source).size
        before = _held(self.inner.file_at(destination))
        grow = (max(0, size - before.bytes), 1 - before.files)
        self.reserve(account, *grow, change=size)
        try:
            result = self.inner.copy(source, destination, overwrite)
        except BaseException:
            account.settle(*grow)
            raise
        account.settle(*grow, result.size - before.bytes, 1 - before.files)
        return result


class QuotaUpload(Upload):
    """An upload of a user with an account: reserves what it may add before its bytes go to the storage
    (``expect``: the declared length at once; ``write``: each chunk), and counts what it did at commit."""

    def __init__(self, backend: QuotaBackend, account: Account, key: Key, inner: Upload,
                 offset: int | None, truncate: bool, current: EntryInfo | None, reserved_files: int):
        self.backend = backend
        self.account = account
        self.key = key
        self.inner = inner
        self.offset = offset
        self.truncate = truncate
        self.old_size = current.size if current is not None and not current.is_dir else 0
        self.written = 0
        self.reserved_bytes = 0
        self.reserved_files = reserved_files
        self._settled = False

    def _size_after(self, written: int, base: int) -> int:
        """The file's size once ``written`` body bytes landed on a file of ``base`` bytes."""
        if self.offset is None:
            return written
        end = self.offset + written
        return end if self.truncate else max(base, end)

    def _reserve_for(self, written: int) -> None:
        growth = self._size_after(written, self.old_size) - self.old_size
        if growth > self.reserved_bytes:
            self.backend.reserve(self.account, growth - self.reserved_bytes, 0, change=growth)
            self.reserved_bytes = growth

    def expect(self, length: int) -> None:
        self._reserve_for(length)

    def write(self, chunk: bytes) -> None:
        self._reserve_for(self.written + len(chunk))  # past the quota: raises before the chunk lands
        self.inner.write(chunk)
        self.written += len(chunk)

    def commit(self) -> EntryInfo:
        try:
            with self.backend.key_lock(self.key):
                before = _held(self.backend.inner.file_at(self.key))  # what it replaces now, exactly
                more_bytes = self._size_after(self.written, before.bytes) - before.bytes - self.reserved_bytes
                more_files = 1 - before.files - self.reserved_files
                if more_bytes > 0 or more_files > 0:  # the file shrank or went away since the upload began
                    more_bytes, more_files = max(0, more_bytes), max(0, more_files)
                    self.backend.reserve(self.account, more_bytes, more_files)
                    self.reserved_bytes += more_bytes
                    self.reserved_files += more_files
                info = self.inner.commit()
                self._settle(info.size - before.bytes, 1 - before.files)
            return info
        except BaseException:
            self.abort()
            raise

    def _settle(self, add_bytes: int = 0, add_files: int = 0) -> None:
        if not self._settled:
            self._settled = True
            self.account.settle(self.reserved_bytes, self.reserved_files, add_bytes, add_files)

    def abort(self) -> None:
        self.inner.abort()
        self._settle()
