"""What the mount knows about remote names: attributes with a TTL, negative entries and directory listings.

* ``Attr`` is what ``getattr`` needs (kind, size, mtime, etag). Listings give size and mtime for every
  child, so an ``ls -l`` costs one API page per 1000 entries and no request per entry.
* A complete, fresh listing of a directory answers lookups of its children, including "no such name"
  (no HEAD needed). Otherwise a name is looked up in the entry cache and then with a HEAD.
* Negative entries (a 404) live ``negative_ttl`` seconds; positive ones ``ttl`` seconds.
* The mount's own changes call ``put``/``remove`` at once, so they are visible immediately; changes made
  by other clients show up after the TTL.
* A listing is stored only if its directory did not change while it ran (``listing_started`` →
  ``put_listing(..., started)`` → ``listing_ended``): a listing the server answered before a rename, stored
  after the rename had patched the cache, would list the old name and not the new one until it expired
  (issue 25: "Rename and Save" made the notebook vanish from JupyterLab's file browser). Every change the
  mount makes (``put``, ``remove``, ``invalidate``, ``forget_tree``, ``forget_listing``, ``clear``) counts
  as a change of the directories it touches; what a lookup saw on the server (``put(..., changed=False)``)
  does not. The counters exist only for directories with a listing running.
* Memory is bounded: at most ``max_entries`` attributes in total (entries plus listed children, also when
  there are only listings; ~180 bytes each, ~305 with the posix extension after ``compact``, measured with
  tracemalloc: 250,000 are ~73 MiB, a share of issue 26's 300 MiB for a walk over 1,000,000 files).
  Listings are evicted least recently used first; a listing bigger than half the budget is not kept.

Locks (names of docs/architecture.md's *mount lock order*):
``MetadataCache._lock`` guards ``_entries``, ``_listings``, ``_listed_count``, ``_changes``,
``_listings_running`` and the counters; a leaf, taken inside this class's methods only (also under a listing
lock, resolver.py).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from ..fs.posix_meta import Posix

FILE, DIRECTORY, RESTRICTED = "file", "directory", "restricted"


@dataclass(frozen=True, slots=True)  # slots: a listing of 50,000 files holds 50,000 of these
class Attr:
    """Remote attributes. ``restricted`` = a directory we may traverse but not list (HTTP 403).
    ``posix``: mode, owner, times and a symlink's target, from a server with the posix extension (a
    symlink is a FILE whose ``posix.is_link``)."""

    kind: str
    size: int = 0
    mtime: float = 0.0
    etag: str = ""
    posix: Posix | None = None

    @classmethod
    def from_info(cls, info: dict[str, Any]) -> Attr:
        """From a ``DataClient`` info dict (``head``, a listing entry, ``put_file``'s answer)."""
        posix = info.get("posix")
        directory = posix.is_dir if posix is not None else info["type"] != "file"
        if directory:
            return cls(DIRECTORY, 0, info.get("mtime") or 0.0, "", posix)  # folder-mtime listings carry one
        return cls(FILE, info["size"], info["mtime"], info.get("etag") or "", posix)

    @property
    def is_link(self) -> bool:
        return self.posix is not None and self.posix.is_link

    @property
    def is_dir(self) -> bool:
        return self.kind != FILE


#: Values shared between attributes (modes, owners): distinct ones kept at most, the rest not shared.
INTERNED_VALUES = 4096
_interned: dict[int, int] = {}


def _shared(value: int) -> int:
    """One object for equal modes and owners (a listing's JSON parses a new int per entry: 28-32 bytes)."""
    if len(_interned) >= INTERNED_VALUES:
        return _interned.get(value, value)
    return _interned.setdefault(value, value)


def compact(attr: Attr) -> Attr:
    """``attr`` with the fewest objects a listing child can have (issue 26: a listed file with the posix
    extension cost ~460 bytes, ~305 like this, measured with tracemalloc): its mode and owner shared with
    equal ones, its access and change times the mtime's object when equal (a file's usually are)."""
    posix = attr.posix
    if posix is None:
        return attr
    mtime = posix.mtime_ns
    atime = mtime if posix.atime_ns == mtime else posix.atime_ns
    ctime = mtime if posix.ctime_ns == mtime else posix.ctime_ns
    uid = None if posix.uid is None else _shared(posix.uid)
    gid = None if posix.gid is None else _shared(posix.gid)
    shared = Posix(_shared(posix.mode), uid, gid, mtime, atime, ctime, posix.target)
    return Attr(attr.kind, attr.size, attr.mtime, attr.etag, shared)


@dataclass
class _Listing:
    children: dict[str, Attr]
    expires: float


class MetadataCache:
    def __init__(self, ttl: float = 60.0, negative_ttl: float = 5.0, max_entries: int = 250_000):
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[Attr | None, float]] = OrderedDict()
        self._listings: OrderedDict[str, _Listing] = OrderedDict()
        self._listed_count = 0
        #: directory → changes seen since its running listings started (only while one runs)
        self._changes: dict[str, int] = {}
        self._listings_running: dict[str, int] = {}
        self.hits = 0
        self.misses = 0

    # -- lookups ----------------------------------------------------------------------------------

    def lookup(self, path: str) -> tuple[bool, Attr | None]:
        """``(known, attr)``: known=False means "ask the server"; attr=None means "does not exist"."""
        now = time.monotonic()
        parent, _, name = path.rpartition("/")
        with self._lock:
            entry = self._entries.get(path)
            if entry is not None and entry[1] > now:
                self.hits += 1
                return True, entry[0]
            listing = self._listings.get(parent)
            if listing is not None and listing.expires > now:
                self.hits += 1
                return True, listing.children.get(name)
            self.misses += 1
            return False, None

    def listing(self, path: str) -> dict[str, Attr] | None:
        """A fresh complete listing of ``path`` (name → Attr), or None."""
        with self._lock:
            listing = self._listings.get(path)
            if listing is None or listing.expires <= time.monotonic():
                return None
            self._listings.move_to_end(path)
            self.hits += 1
            return listing.children

    # -- updates ----------------------------------------------------------------------------------

    def put(self, path: str, attr: Attr | None, changed: bool = True) -> None:
        """Record ``attr`` for ``path`` (None = known not to exist) and patch its parent's listing.
        ``changed=False``: what a lookup saw on the server, not a change made by the mount (a listing of the
        parent running meanwhile may still be stored)."""
        ttl = self.ttl if attr is not None else self.negative_ttl
        parent, _, name = path.rpartition("/")
        with self._lock:
            if changed:
                self._changed_locked(parent)
            self._entries[path] = (attr, time.monotonic() + ttl)
            self._entries.move_to_end(path)
            listing = self._listings.get(parent)
            if listing is not None:
                had = name in listing.children
                if attr is None:
                    if had:
                        del listing.children[name]
                        self._listed_count -= 1
                else:
                    listing.children[name] = attr
                    self._listed_count += 0 if had else 1
            self._trim_locked()

    def remove(self, path: str) -> None:
        """``path`` was deleted by us: negative entry, gone from the parent listing, own listing dropped."""
        self.put(path, None)
        self.forget_listing(path)

    def listing_started(self, path: str) -> int:
        """A listing of ``path`` is about to ask the server: the token for ``put_listing``. Every call is
        paired with one ``listing_ended`` (in a ``finally``)."""
        with self._lock:
            self._listings_running[path] = self._listings_running.get(path, 0) + 1
            return self._changes.setdefault(path, 0)

    def listing_ended(self, path: str) -> None:
        with self._lock:
            running = self._listings_running.pop(path) - 1
            if running:
                self._listings_running[path] = running
            else:
                del self._changes[path]

    def put_listing(self, path: str, children: dict[str, Attr], started: int | None = None) -> None:
        """Store a complete listing of ``path``. ``started``: ``listing_started``'s token, taken before
        the listing was asked for; the listing is dropped if ``path`` changed since (it may miss that
        change). None: a listing the caller knows to be current (a directory it just created)."""
        with self._lock:
            if started is not None and self._changes.get(path) != started:
                return  # raced a change: the next listing asks the server again
            self._changed_locked(path)  # a listing of it still running is older than this one
            old = self._listings.pop(path, None)
            if old is not None:
                self._listed_count -= len(old.children)
            if len(children) > self.max_entries // 2:
                return  # too big to keep: lookups fall back to HEAD
            self._listings[path] = _Listing(children, time.monotonic() + self.ttl)
            self._listed_count += len(children)
            prefix = path + "/"
            for name in children:  # listed attrs supersede older single entries
                self._entries.pop(prefix + name, None)
            self._trim_locked()

    def forget_listing(self, path: str) -> None:
        with self._lock:
            self._changed_locked(path)
            old = self._listings.pop(path, None)
            if old is not None:
                self._listed_count -= len(old.children)

    def invalidate(self, path: str) -> None:
        """Forget everything about ``path`` (the next access asks the server)."""
        parent, _, name = path.rpartition("/")
        with self._lock:
            self._changed_locked(parent)
            self._changed_locked(path)
            self._entries.pop(path, None)
            listing = self._listings.get(parent)
            if listing is not None:
                if name in listing.children:
                    del listing.children[name]
                    self._listed_count -= 1
                listing.expires = 0.0  # incomplete now: don't answer from it

    def forget_tree(self, path: str) -> None:
        """``path`` and everything below it moved away: forget their entries and listings."""
        prefix = path + "/"
        with self._lock:
            for key in [k for k in self._changes if k == path or k.startswith(prefix)]:
                self._changes[key] += 1
            for key in [k for k in self._entries if k == path or k.startswith(prefix)]:
                del self._entries[key]
            for key in [k for k in self._listings if k == path or k.startswith(prefix)]:
                self._listed_count -= len(self._listings.pop(key).children)
        self.remove(path)

    def clear(self) -> None:
        with self._lock:
            for key in self._changes:
                self._changes[key] += 1
            self._entries.clear()
            self._listings.clear()
            self._listed_count = 0

    def _changed_locked(self, directory: str) -> None:
        """``directory``'s children changed: a listing of it running now must not be stored."""
        if directory in self._changes:
            self._changes[directory] += 1

    def _trim_locked(self) -> None:
        # (listings alone count too: a walk that only lists kept every listing, issue 26)
        while len(self._entries) + self._listed_count > self.max_entries:
            if self._listings and self._listed_count >= len(self._entries):
                _path, old = self._listings.popitem(last=False)
                self._listed_count -= len(old.children)
            else:
                self._entries.popitem(last=False)

    def stats(self) -> dict:
        with self._lock:
            return {"entries": len(self._entries), "listings": len(self._listings),
                    "listed_entries": self._listed_count, "hits": self.hits, "misses": self.misses,
                    "ttl": self.ttl, "negative_ttl": self.negative_ttl}
