"""Name resolution: the attributes of a layout path from the metadata cache, else from a listing of its
directory (while a reader goes through that directory), else from one HEAD; listings paged and single-flight;
the connectors of the mount root; the API user behind ``data/.my``.

Locks (names of docs/architecture.md's *mount lock order*; pairwise):

- ``Resolver._listing_locks[directory]`` - one listing of a directory at a time (single flight); held
  across the paged listing requests. Only ``MetadataCache._lock`` (a leaf, in the cache's methods) is taken
  under it.
- ``Resolver._lock`` guards ``_listing_locks`` (the dict, not the locks in it); a leaf, taken before (not
  while holding) a listing lock.

Unguarded on purpose: ``_connectors`` and ``_connectors_probed_at`` (a root listing may probe twice),
``known_username`` (learned once; any thread may set the same value).
"""

from __future__ import annotations

import errno
import logging
import threading
import time
from collections.abc import Callable

from mfusepy import FuseOSError

from ..fs.data_api import DataClient
from . import layout as rules
from .metadata_cache import DIRECTORY, RESTRICTED, Attr, MetadataCache, compact

log = logging.getLogger(__name__)
CONNECTOR_PROBE_TTL = 60.0


class Resolver:
    def __init__(self, client: DataClient, metadata: MetadataCache, prefetching: Callable[[str], bool],
                 extra_connectors: tuple[str, ...] = ()):
        """``prefetching(directory)``: a reader is going through that directory's small files."""
        self.client = client
        self.metadata = metadata
        self.prefetching = prefetching
        self._lock = threading.Lock()
        self._listing_locks: dict[str, threading.Lock] = {}
        self._connectors: set[str] = set(extra_connectors)
        self._connectors_probed_at = 0.0
        self.known_username: str | None = None

    def username(self) -> str:
        if self.known_username is None:
            self.known_username = self.client.username()
        return self.known_username

    def resolve(self, layout: str) -> Attr | None:
        """Attributes of a layout path (None = doesn't exist), from caches, else one HEAD."""
        rules.check_lengths(layout)
        if not rules.may_exist_remotely(layout):
            return None  # no request
        known, attr = self.metadata.lookup(layout)
        if known:
            return attr
        if self._relisted(layout):
            known, attr = self.metadata.lookup(layout)
            if known:
                return attr
        try:
            info = self.client.head(layout)
        except FileNotFoundError:
            self.metadata.put(layout, None, changed=False)
            return None
        except PermissionError:
            attr = Attr(RESTRICTED)
        else:
            attr = Attr.from_info(info)
            if attr.kind == DIRECTORY and attr.posix is None and self.client.supports("posix", layout):
                attr = self._from_parent_listing(layout) or attr  # a folder's HEAD may carry no mode
        if rules.is_connector_root(layout):
            self._connectors.add(layout)
        self.metadata.put(layout, attr, changed=False)
        return attr

    def _from_parent_listing(self, layout: str) -> Attr | None:
        """A folder's mode, owner and times from its entry in its parent's listing (posix extension),
        read up to that entry and not kept (a kept listing would hide the parent's newer entries for a
        TTL); None when the parent does not list it."""
        parent, _, name = layout.rpartition("/")
        if parent.count("/") < 1:
            return None
        try:
            for entry in self.client.iter_dir(parent):
                if entry["name"].rpartition("/")[2] == name:
                    attr = Attr.from_info(entry)
                    return attr if attr.kind == DIRECTORY else None
        except OSError:
            pass
        return None

    def _relisted(self, layout: str) -> bool:
        """A reader is going through the files of this name's directory (a prefetch run) but its listing
        expired: list it again (one request per 1000 names) rather than one HEAD per file until the
        pass ends. True if the directory was listed."""
        parent = rules.parent_of(layout)
        if not self.prefetching(parent):
            return False
        try:
            self.listing(parent)
        except OSError:
            return False
        return True

    def require(self, layout: str) -> Attr:
        attr = self.resolve(layout)
        if attr is None:
            raise FuseOSError(errno.ENOENT)
        return attr

    def listing(self, layout: str) -> dict[str, Attr]:
        """The children of a directory: a fresh cached listing, else one paged listing (single flight).
        The listing is cached only if the mount changed nothing in the directory while it ran (a rename
        overtaking it: metadata_cache.py)."""
        cached = self.metadata.listing(layout)
        if cached is not None:
            return dict(cached)
        with self._lock:
            lock = self._listing_locks.setdefault(layout, threading.Lock())
        try:
            with lock:
                cached = self.metadata.listing(layout)
                if cached is not None:
                    return dict(cached)
                children: dict[str, Attr] = {}
                started = self.metadata.listing_started(layout)  # before the first request
                try:
                    for entry in self.client.iter_dir(layout):  # compact: 1,000,000 of them (issue 26)
                        children[entry["name"].rpartition("/")[2]] = compact(Attr.from_info(entry))
                    self.metadata.put_listing(layout, children, started)
                finally:
                    self.metadata.listing_ended(layout)
        finally:  # also after a failed listing or a cached answer: no lock stays per directory listed
            with self._lock:
                if self._listing_locks.get(layout) is lock:
                    del self._listing_locks[layout]
        return dict(children)

    def known_connectors(self) -> set[str]:
        now = time.monotonic()
        if now - self._connectors_probed_at > CONNECTOR_PROBE_TTL:
            try:
                self._connectors.update(self.client.connectors())
                self._connectors_probed_at = now
            except OSError as exc:  # root listing must work with the backend down
                log.info("connector probe failed: %s", exc)
        return set(self._connectors)

    def fresh(self, layout: str) -> Attr | None:
        """TTL consistency: attributes from a fresh listing or lookup (no request), else one HEAD. The
        kernel keeps the file's page cache across opens while size and mtime stay the same (auto_cache)."""
        attr = self.resolve(layout)
        if attr is not None and attr.kind == RESTRICTED:
            raise FuseOSError(errno.EACCES)
        return attr

    def revalidate(self, layout: str) -> Attr | None:
        """Close-to-open consistency: HEAD at open so a remote change is seen and cached blocks dropped."""
        self.metadata.invalidate(layout)
        attr = self.resolve(layout)
        if attr is None:
            return None
        if attr.kind == RESTRICTED:
            raise FuseOSError(errno.EACCES)
        return attr
