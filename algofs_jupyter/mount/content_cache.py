"""The mount's file contents behind one front: ``ContentCache``.

Two caches hold what remote files contain, chosen by size here and nowhere else:

* a file up to ``small_file_size`` is read whole with one GET and kept in memory (``small_files``), and
  the directory prefetcher (``dir_prefetch``) fetches the next small files of a directory a reader goes
  through;
* a larger file is read through the on-disk block cache (``block_cache``) with ranged GETs and
  readahead.

Before either, a read asks ``kept`` (write staging, staging.py) for a local copy of exactly the version
read (same ETag and size): the clean copy of a file this mount uploaded (or downloaded to write) is kept
after its close, so a file written through the mount is read back from those bytes, not downloaded again,
and nothing is copied into the caches for it (the copies stay within staging's own bounds). A version
another writer made has another ETag: it is never answered from the copy. Attributes from a listing carry
no ETag: such a read goes to the caches.

Then a large file may be read from the server's own file (``server_files``: the local-reads extension of a
server on this machine, by descriptor): nothing is fetched or cached for it. A small file is not: it is
fetched whole and prefetched with its directory, which costs less than a descriptor per file.

The mount tells the front about its own changes with one step, ``invalidate(path)`` (after an upload, an
unlink, at both ends of a rename): it reaches every content cache (the block cache's blocks and parked
streams, the small file's bytes). ``clear``, ``stats`` and ``close`` likewise cover both. Whoever only
reports changes (the uploader) needs no more than ``ContentChanges``.

What the front fetches through is given to it: ``ranges(path, etag, size)`` makes the ``RangeSource`` of
one file version (the data client's range reader) and ``whole(path, etag)`` does a whole-file GET
(``(body, etag)``); ``many_of(directory)`` is one request for many small files of the directory's storage
(the ``read-many`` extension; None without it), used by the directory prefetcher.

Locks (names of docs/architecture.md's *mount lock order*): none of its own; each cache's are leaves
taken inside its methods (see ``block_cache``, ``small_files``, ``dir_prefetch``), and ``kept`` takes
``WriteStaging._lock`` inside ``read_kept`` (no lock of ours held).
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Hashable
from functools import partial
from typing import Any, Protocol

from ..fs.api_errors import StaleFile
from .block_cache import BlockCache
from .block_index import FileVersion
from .dir_prefetch import DirectoryPrefetcher
from .metadata_cache import Attr
from .range_source import RangeSource
from .server_files import ServerFiles
from .small_files import ManyFetch, SmallFiles, WholeFetch

#: ``ranges(path, etag, size)``: the range source of one file version (etag "" when unknown).
RangesOf = Callable[[str, str, int], RangeSource]
#: ``whole(path, etag)``: one GET of the whole file, its body and the server's ETag.
WholeGet = Callable[[str, str], tuple[bytes, str]]
#: ``many(paths)``: one request for many whole files, each path's body and ETag or its error.
ManyGet = Callable[[list[str]], "dict[str, tuple[bytes, str] | OSError]"]
#: ``many_of(directory)``: the ``ManyGet`` of the storage holding ``directory``, or None if it has none.
ManyOf = Callable[[str], "ManyGet | None"]
#: ``listing(directory)``: the directory's fresh cached listing, or None.
ListingOf = Callable[[str], "dict[str, Attr] | None"]


class KeptCopies(Protocol):
    """Local copies of server versions the mount holds itself (write staging's kept clean copies,
    staging.py): what it just uploaded is read from there, not downloaded again."""

    def read_kept(self, path: str, size: int, etag: str, offset: int, out: memoryview) -> int | None:
        """Bytes of version (``size``, ``etag``) from ``offset`` into ``out``, or None: no such copy."""
        ...

    def kept_copy_counts(self) -> dict[str, int]: ...


class ContentChanges(Protocol):
    def invalidate(self, path: str) -> None:
        """``path`` changed: no content cache may serve what it held of it."""
        ...


#: How a version made from a listing's size and mtime (no ETag known) starts.
LISTED_VERSION = "listed:"


def file_version(layout: str, attr: Attr) -> FileVersion:
    """The version of a file's bytes: its ETag when known, else size and mtime (what a listing gives)."""
    return FileVersion(layout, attr.size, attr.etag or f"{LISTED_VERSION}size{attr.size}-mtime{attr.mtime}")


class ContentCache:
    def __init__(self, blocks: BlockCache, ranges: RangesOf, whole: WholeGet, listing: ListingOf,
                 small_file_size: int = 1 << 20, small_files_memory: int = 64 << 20,
                 prefetch_files: int = 64, kept: KeptCopies | None = None, many_of: ManyOf | None = None,
                 list_directory: Callable[[str], object] | None = None,
                 server_files: ServerFiles | None = None):
        """``kept``: the local copies asked before either cache (write staging's). ``list_directory``:
        lists a directory into the metadata cache that ``listing`` reads (the prefetcher's ``list_of``).
        ``server_files``: a large file's bytes from the server's own file, asked after ``kept``."""
        self.blocks = blocks
        self.kept = kept
        self.server_files = server_files
        self.ranges = ranges
        self.whole = whole
        self.listing = listing
        self.small_file_size = small_file_size
        self.small_files = SmallFiles(small_files_memory)
        self.many_of = many_of
        self.dir_prefetch = DirectoryPrefetcher(self.small_files, file_version, self._whole_of,
                                                small_file_size, files_ahead=prefetch_files,
                                                many_of=self._many_fetch_of, list_of=list_directory)

    def is_small(self, size: int) -> bool:
        """Whether a file of ``size`` bytes is read whole and kept in memory."""
        return size <= self.small_file_size

    # ----------------------------------------------------------------------------------------- reading
    def read(self, version: FileVersion, etag: str, offset: int, size: int,
             stream_id: Hashable | None = None) -> bytes:
        """Bytes ``[offset, offset + size)`` of ``version`` (short only at EOF). ``etag`` is the server's
        ETag when known ("" for attributes from a listing); ``stream_id`` names the reader (its handle)."""
        if self.kept is not None and etag:
            out = bytearray(max(0, min(size, version.size - offset)))
            with memoryview(out) as view:
                got = self.kept.read_kept(version.path, version.size, etag, offset, view)
            if got is not None:
                return bytes(out[:got])
        if self.is_small(version.size):
            return self._small(version, etag)[offset:offset + size]
        if self.server_files is not None:
            out = bytearray(max(0, min(size, version.size - offset)))
            with memoryview(out) as view:
                got = self.server_files.read_into(version, etag, offset, view)
            if got is not None:
                return bytes(out[:got])
        return self.blocks.read(version, offset, size, self.ranges(version.path, etag, version.size),
                                stream_id=stream_id)

    def read_into(self, version: FileVersion, etag: str, offset: int, out: memoryview,
                  stream_id: Hashable | None = None) -> int:
        """``read`` straight into ``out`` (the kernel's reply buffer); returns the count."""
        if self.kept is not None and etag:
            got = self.kept.read_kept(version.path, version.size, etag, offset, out)
            if got is not None:
                return got
        if self.is_small(version.size):
            data = self._small(version, etag)
            count = max(0, min(len(out), len(data) - offset))
            out[:count] = data[offset:offset + count]
            return count
        if self.server_files is not None:
            got = self.server_files.read_into(version, etag, offset, out)
            if got is not None:
                return got
        return self.blocks.read_into(version, offset, out, self.ranges(version.path, etag, version.size),
                                     stream_id=stream_id)

    def _small(self, version: FileVersion, etag: str) -> bytes:
        """A small file's bytes: one whole-file GET per version, shared with the directory prefetcher."""
        return self.small_files.read(version, partial(self._miss, version, etag))

    def _miss(self, version: FileVersion, etag: str) -> tuple[bytes, str]:
        """A small file no cache holds: with the next files of its directory's prefetch run, if it has
        one, else alone."""
        along = self.dir_prefetch.fetch_along(version)
        return along if along is not None else self.whole(version.path, etag)

    def _whole_of(self, version: FileVersion, attr: Attr) -> WholeFetch:
        return partial(self.whole, version.path, attr.etag)

    def _many_fetch_of(self, directory: str) -> ManyFetch | None:
        many = self.many_of(directory) if self.many_of is not None else None
        return None if many is None else partial(_fetch_many, many)

    def opened(self, version: FileVersion) -> None:
        """A reader opened ``version``: a small file may start or feed a directory prefetch run."""
        if 0 < version.size <= self.small_file_size and self.dir_prefetch.enabled:
            parent, _, name = version.path.rpartition("/")
            self.dir_prefetch.opened(parent, name, self.listing(parent))

    def reading_directory(self, directory: str) -> bool:
        """Whether readers are going through the small files of ``directory`` (a prefetch run is active)."""
        return self.dir_prefetch.active(directory)

    # ---------------------------------------------------------------------------------------- changes
    def invalidate(self, path: str) -> None:
        """The mount changed ``path`` itself (uploaded, removed, renamed away or onto): no cache keeps
        bytes of it. Every content cache is told here, and only here."""
        self.blocks.invalidate(path)
        self.small_files.invalidate(path)
        if self.server_files is not None:
            self.server_files.invalidate(path)

    def clear(self) -> None:
        self.blocks.clear()
        self.small_files.clear()
        if self.server_files is not None:
            self.server_files.clear()
        self.dir_prefetch.end_all()

    # ----------------------------------------------------------------------------------------- status
    def stats(self) -> dict[str, Any]:
        """The status's ``cache``: the block cache's, with the small files' entries, whole-file hits,
        misses and fetched bytes added (one place to look), and the hit ratio of both."""
        cache = self.blocks.stats()
        small = self.small_files.stats()
        entries = [*cache["entries"], *self.small_files.entries()]
        cache["entries"] = sorted(entries, key=lambda e: str(e["path"]))
        for counter in ("hits", "misses", "bytes_fetched"):
            cache[counter] = cache.get(counter, 0) + small[counter]
        hits, misses = cache.get("hits", 0), cache.get("misses", 0)
        cache["hit_ratio"] = hits / (hits + misses) if hits + misses else None
        cache.update(self.kept.kept_copy_counts() if self.kept is not None
                     else {"kept_copy_reads": 0, "kept_copy_bytes": 0})
        cache["server_files"] = self.server_files.stats() if self.server_files is not None else None
        return cache

    def small_files_stats(self) -> dict[str, Any]:
        """The status's ``small_files``: the store's counters and the directory prefetcher's."""
        return {**self.small_files.stats(), "prefetch": self.dir_prefetch.stats()}

    def close(self) -> None:
        self.dir_prefetch.close()
        self.blocks.close()
        if self.server_files is not None:
            self.server_files.close()


def _fetch_many(many: ManyGet, versions: list[FileVersion]
                ) -> dict[FileVersion, tuple[bytes, str] | BaseException]:
    """One request for ``versions``; a version whose ETag is known and differs from the answer's is stale
    (as ``whole(path, etag)`` raises), one the server left out gets EIO."""
    answers = many([version.path for version in versions])
    result: dict[FileVersion, tuple[bytes, str] | BaseException] = {}
    for version in versions:
        answer = answers.get(version.path) or OSError(errno.EIO, f"{version.path}: not answered")
        if isinstance(answer, tuple) and answer[1] and not version.etag.startswith(LISTED_VERSION) \
                and answer[1] != version.etag:
            answer = StaleFile(f"{version.path} changed on the server")
        result[version] = answer
    return result
