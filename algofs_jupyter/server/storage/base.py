"""The storage interface every data backend of ``algofs serve`` implements (local directories, S3 …).

Handlers never touch a disk or a bucket: they address objects by a *key*, a tuple of validated name
segments relative to the backend's root (``()`` is the root itself), and talk only to a
:class:`StorageBackend`. One backend serves the hosted data (``data://``: keys start with the user and
the collection), and each connector has its own.

Contracts shared by every operation:

- Keys are tuples of names the API can carry (``algofs_jupyter.names``); the caller validates them.
  A backend still refuses a segment over :data:`NAME_MAX` bytes or a key over :data:`PATH_MAX` bytes
  with :class:`NameTooLong` *before* creating anything.
- A backend never follows a link, mount point or alias to a location outside its root: such a key
  raises :class:`OutsideRoot` (and a listing skips the entry).
- Every failure is one of the :class:`StorageError` subclasses (``errors.py``), never a bare ``OSError``;
  ``server/errors.py`` maps them to HTTP statuses in one table.
- Directories exist on their own (an empty directory is listed and can be stat'ed), and a directory's
  mtime moves whenever an entry is created, removed or renamed in it.
- Calls come from the server's event loop thread (listings and copies from worker threads), so a
  backend must be thread-safe, and every call blocks all other requests while it runs: keep each one
  short (``read`` yields chunks; ``Upload.write`` is called once per received chunk). A backend whose
  calls wait on the network sets ``blocking = True``: the handlers then make every call from storage
  worker threads (``ApiHandler.offload``), uploads in batches of about 1 MiB (``storage/s3.py``).
- Metadata (ACLs, connector state) is stored through :meth:`StorageBackend.read_meta` /
  :meth:`StorageBackend.write_meta`, in a namespace user keys can never reach, so it lives wherever the
  data lives (a sidecar tree on disk, a reserved prefix in a bucket).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Literal

from .errors import (  # noqa: F401 - the errors are part of this interface: re-exported
    AlreadyExists,
    CreateRefused,
    CrossBackend,
    DirectoryNotEmpty,
    InvalidOperation,
    IsADirectory,
    NameTooLong,
    NotADirectory,
    NotFound,
    OffsetBeyondEnd,
    OutsideRoot,
    PreconditionFailed,
    QuotaExceeded,
    StorageError,
    Unsatisfiable,
    Unsupported,
)
from .posix import AttrChange, Posix

#: Longest name segment in bytes (UTF-8), as on POSIX file systems.
NAME_MAX = 255
#: Longest key (segments joined with ``/``) in bytes: Linux's PATH_MAX minus the terminating NUL.
PATH_MAX = 4095

Key = tuple[str, ...]
#: Listing order key: ``(0, name)`` for folders, ``(1, name)`` for files; folders come first.
SortKey = tuple[int, str]

# -- capabilities (what the optional operations of a backend support) -------------------------------

#: ``write(key, offset=…)`` overwrites a range or appends without resending the file.
WRITE_AT_OFFSET = "write-at-offset"
#: ``move`` of files and whole directories inside one backend, atomic.
MOVE = "move"
#: ``copy`` of a file inside one backend.
COPY = "copy"
#: ``set_mtime`` on files.
SET_MTIME = "set-mtime"
#: Directory mtimes in ``info`` and listings that move with their entries.
FOLDER_MTIME = "folder-mtime"
#: Modes, owners, ns times and symlinks (``set_attributes``, ``symlink``, ``EntryInfo.posix``).
POSIX = "posix"
#: ``write(exclusive=True)``: create only if nothing is there, race-free (``If-None-Match: *``).
EXCLUSIVE_CREATE = "exclusive-create"
#: ``open_file``: an open descriptor of a file's bytes, for a caller on this machine (server/local_reads.py).
LOCAL_READS = "local-reads"


# -- values --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EntryInfo:
    """What ``stat`` of a file or directory tells. ``mtime`` is seconds since the epoch (float).

    ``etag`` is a strong validator of a file's content: it changes whenever the bytes may have
    changed (an upload, a write at an offset, a move onto it). Directories may have ``etag=None``.
    """

    name: str
    is_dir: bool
    size: int = 0
    mtime: float = 0.0
    etag: str | None = None
    #: mode, owner, ns times, link target (capability POSIX); None: the backend did not tell (defaults)
    posix: Posix | None = None

    @property
    def is_link(self) -> bool:
        return self.posix is not None and self.posix.is_link

    @property
    def sort_key(self) -> SortKey:
        return (0 if self.is_dir else 1, self.name)


@dataclass(frozen=True)
class ListingPage:
    """One page of a directory, in sort-key order (folders by name, then files by name).

    ``last_key`` is the key of the last name *looked at* when more names follow (even if that entry
    was skipped, e.g. a vanished file or an escaping link), None when the listing is complete. It is
    what the next page's ``after`` continues from, so a page may be short or even empty while more
    follow.
    """

    entries: list[EntryInfo] = field(default_factory=list)
    last_key: SortKey | None = None


class Lookup(Enum):
    NOT_DONE = "not looked up"  # ``write(current=...)``: the caller has not asked ``info`` for the key


NOT_LOOKED_UP: Literal[Lookup.NOT_DONE] = Lookup.NOT_DONE


@dataclass(frozen=True)
class Usage:
    """What a directory holds below it: ``bytes`` of its files and ``files``, its files and folders."""

    bytes: int = 0
    files: int = 0


@dataclass(frozen=True)
class WriteRequest:
    """What a :meth:`StorageBackend.write` asks for besides the bytes: where the body goes (``offset``,
    ``truncate``) and what the file must still be (``if_match``, ``expected_size``). Every backend's
    uploads keep one of these and check it twice, when the write starts and again at commit."""

    offset: int | None = None
    truncate: bool = False
    if_match: str | None = None
    expected_size: int | None = None
    #: create only if nothing exists at the name (``If-None-Match: *``), checked again at commit
    exclusive: bool = False
    #: permission bits of a file the write creates (capability POSIX); None: the default
    mode: int | None = None

    def __post_init__(self) -> None:
        if self.offset is not None and self.offset < 0:
            raise InvalidOperation("offset must not be negative")
        if self.exclusive and self.offset:
            raise InvalidOperation("an exclusive create writes the whole file (no offset)")
        if self.if_match is not None:
            object.__setattr__(self, "if_match", self.if_match.strip())

    @property
    def conditional(self) -> bool:
        return self.if_match is not None or self.expected_size is not None or self.exclusive

    def check(self, current: EntryInfo | None) -> None:
        """Whether the write can land on ``current`` (None: no file there): IsADirectory, PreconditionFailed
        (ETag or size changed; ``details`` has the current ones), CreateRefused (exclusive, something is
        there), NotFound (a write at an offset past 0 needs the file), OffsetBeyondEnd (no holes)."""
        if self.exclusive and current is not None:
            raise CreateRefused("something exists at that name (If-None-Match: *)")
        if current is not None and current.is_link and self.offset is not None:
            raise InvalidOperation("a symlink's content is its target: write the file it names")
        if current is not None and current.is_dir:
            raise IsADirectory("a directory with that name exists")
        etag = current.etag if current else None
        size = current.size if current else 0
        if self.if_match == "*" and current is None:
            raise PreconditionFailed("the file does not exist (If-Match: *)", etag=None, size=0)
        if self.if_match not in (None, "*") and self.if_match.removeprefix("W/") != etag:
            raise PreconditionFailed("the file changed (ETag does not match If-Match)", etag=etag, size=size)
        if self.expected_size is not None and self.expected_size != size:
            raise PreconditionFailed(f"the file is {size} bytes, not the expected {self.expected_size}",
                                     etag=etag, size=size)
        if self.offset:
            if current is None:
                raise NotFound("path not found")
            if self.offset > current.size:
                raise OffsetBeyondEnd(f"offset {self.offset} is past the end of the file "
                                      f"({current.size} bytes)", size=current.size)


class Upload(ABC):
    """A write in progress. Nothing is visible until :meth:`commit`; :meth:`abort` (also called after a
    commit, harmlessly) leaves the object exactly as it was before the upload started."""

    @abstractmethod
    def write(self, chunk: bytes) -> None:
        """Stage the next bytes of the body (streamed: never the whole body in memory)."""

    def expect(self, length: int) -> None:
        """The body will be ``length`` bytes (the request's Content-Length), told before the first
        :meth:`write`: a storage that can't take them raises now (QuotaExceeded), before any byte lands.
        Backends need not care (the default does nothing)."""
        return None

    @abstractmethod
    def commit(self) -> EntryInfo:
        """Make the staged bytes the object's content, atomically for readers, and return its new info.

        Re-checks the preconditions given to :meth:`StorageBackend.write` against the object as it is
        now and raises :class:`PreconditionFailed` (leaving it unchanged) when another writer got there
        first; raises :class:`NotFound` when the parent directory vanished meanwhile.
        """

    @abstractmethod
    def abort(self) -> None:
        """Discard the staged bytes. Idempotent; never raises."""


class StorageBackend(ABC):
    """One storage tree: the hosted data, or one connector.

    ``capabilities`` lists the optional operations (constants above) this backend implements; the
    others raise :class:`Unsupported`. The required ones are info, read, list_page, write (whole
    object), mkdir, delete_file, delete_dir and the metadata calls.
    """

    capabilities: frozenset[str] = frozenset()
    #: True when calls wait on the network (S3): handlers call them from worker threads, never the loop
    blocking: bool = False

    # -- reading -------------------------------------------------------------------------------------

    @abstractmethod
    def info(self, key: Key) -> EntryInfo:
        """Stat ``key`` (``()`` is the root directory). Raises NotFound, OutsideRoot, NameTooLong."""

    @abstractmethod
    def read(self, key: Key, start: int = 0, length: int | None = None) -> Iterator[bytes]:
        """Stream the bytes ``[start, start + length)`` of a file (to its end when ``length`` is None)
        in chunks of at most about 1 MiB; never the whole file in memory.

        Raises NotFound, IsADirectory, OutsideRoot when called (before the first chunk). A file
        truncated meanwhile yields fewer bytes; the caller must ``close()`` the iterator if it stops early.
        """

    def file_at(self, key: Key) -> EntryInfo | None:
        """The file at ``key``; None when there is none (nothing, or a folder). One request where ``info``
        may take two on object storage (a HEAD, then a listing to tell a folder from nothing)."""
        try:
            info = self.info(key)
        except NotFound:
            return None
        return None if info.is_dir else info

    #: ``read_file`` costs one request to the store, where ``info`` + ``read`` cost two (object storage):
    #: the data handler then answers a plain GET with it.
    reads_in_one_request = False

    def read_file(self, key: Key, first: int = 0, last: int | None = None
                  ) -> tuple[EntryInfo, int, Iterator[bytes]]:
        """A file's info and its bytes from ``first`` to ``last`` (inclusive, clamped to the end; None:
        to the end): ``(info, start, chunks)`` with ``start`` the first byte the chunks hold.

        Raises what ``info`` and ``read`` raise, and Unsatisfiable when ``first`` is at or past the end
        (also for an empty file): the caller then answers from ``info``.
        """
        info = self.info(key)
        if info.is_dir:
            raise IsADirectory("path is a directory")
        if first >= info.size:
            raise Unsatisfiable(f"byte {first} is past the end ({info.size} bytes)")
        end = info.size - 1 if last is None else min(last, info.size - 1)
        return info, first, self.read(key, first, end - first + 1)

    def open_file(self, key: Key) -> tuple[int, EntryInfo]:
        """An open read-only descriptor of file ``key`` and its info as of that descriptor (capability
        LOCAL_READS); the caller owns the descriptor. The bytes a version's info names stay what they are
        while the descriptor is open: a backend that has this never rewrites a file's bytes in place.
        Raises NotFound, IsADirectory, OutsideRoot, and Unsupported where files are not local."""
        raise Unsupported("this storage keeps no local files")

    @abstractmethod
    def list_page(self, key: Key, after: SortKey | None = None, limit: int = 1000) -> ListingPage:
        """Up to ``limit`` entries of directory ``key`` whose sort key is greater than ``after``.

        Entries are folders and regular files only; names the API can't carry, in-flight uploads and
        entries resolving outside the root are skipped. Raises NotFound, NotADirectory, OutsideRoot.
        Names added or removed between pages show on the next page (no snapshot is promised).
        """

    def usage(self, key: Key) -> Usage:
        """What directory ``key`` holds below it (the first count of a user's data for ``server/quota.py``):
        the sizes of its files and the number of its files and folders, at every depth; uploads in flight
        are not counted. Raises NotFound, NotADirectory, OutsideRoot. Backends that can count faster than
        by listing every folder override it."""
        total = count = 0
        folders = [key]
        while folders:
            folder, after = folders.pop(), None
            while True:
                page = self.list_page(folder, after)
                for entry in page.entries:
                    count += 1
                    if entry.is_dir:
                        folders.append((*folder, entry.name))
                    total += entry.size
                if page.last_key is None:
                    break
                after = page.last_key
        return Usage(total, count)

    # -- writing -------------------------------------------------------------------------------------

    @abstractmethod
    def write(self, key: Key, *, offset: int | None = None, truncate: bool = False,
              if_match: str | None = None, expected_size: int | None = None,
              current: EntryInfo | None | Literal[Lookup.NOT_DONE] = NOT_LOOKED_UP,
              exclusive: bool = False, mode: int | None = None) -> Upload:
        """Start a streamed write of file ``key``; bytes go to the returned :class:`Upload`.

        ``offset=None``: the body becomes the whole content (creates or replaces the file).
        ``offset=N`` (capability WRITE_AT_OFFSET): the body replaces the bytes from ``N`` on; ``N`` equal
        to the size appends, ``N`` past the end raises OffsetBeyondEnd, and ``truncate`` cuts the file
        at ``N + len(body)``. A missing file may only be written at offset 0 (it is created).
        ``if_match`` / ``expected_size``: the write only lands if the file's ETag / size are still
        these, checked now and again at commit (PreconditionFailed); a missing file has no ETag and size 0.
        ``current``: what ``info(key)`` answered the caller just before (None: NotFound), so a network
        backend need not ask the store again; preconditions are still checked against the store at commit.
        ``exclusive`` (capability EXCLUSIVE_CREATE): only create, and raise CreateRefused (now or at commit)
        when a file, folder or symlink is at the name, atomically with respect to every other write of this
        server. ``mode`` (capability POSIX): the permission bits of a file this write creates; replacing a
        file keeps its mode and owner (a symlink is replaced by a plain file), mtime and ctime move.

        Atomic: until ``commit`` runs, readers see the old content, and an aborted or interrupted
        write leaves it unchanged; a replace or an overwrite inside the file lands at once. An append's
        commit may let a concurrent reader see the tail grow (never any other byte change), and a
        failing one leaves the file at its old size. Raises now: NotFound (parent missing),
        NotADirectory (a parent is a file), IsADirectory, NameTooLong, OutsideRoot, PreconditionFailed,
        OffsetBeyondEnd, Unsupported.
        """

    @abstractmethod
    def mkdir(self, key: Key, mode: int | None = None) -> EntryInfo:
        """Create an empty directory (``mode``: its permission bits, capability POSIX); its parent must
        exist. Raises AlreadyExists (a file or directory is there), NotFound, NotADirectory, NameTooLong,
        OutsideRoot. Nothing is created on failure."""

    @abstractmethod
    def delete_file(self, key: Key) -> None:
        """Remove a file. Raises NotFound, IsADirectory, OutsideRoot."""

    @abstractmethod
    def delete_dir(self, key: Key, force: bool = False) -> int:
        """Remove a directory (and, with ``force``, everything below it); returns the number of files
        removed. Raises NotFound, NotADirectory, DirectoryNotEmpty (no ``force``), InvalidOperation
        for the root, OutsideRoot. A forced delete that fails midway may have removed part of the tree."""

    # -- optional extensions -------------------------------------------------------------------------

    def move(self, source: Key, destination: Key, overwrite: bool = False) -> EntryInfo:
        """Move a file or a whole directory (capability MOVE), atomically: readers see it at one place
        or the other, never both or neither, and a directory moves with all its contents at once.

        The destination's parent must exist. With ``overwrite`` a file replaces a file and a directory
        replaces an empty directory; otherwise an existing destination raises AlreadyExists. Raises
        NotFound, NotADirectory/IsADirectory (kind mismatch with the destination), DirectoryNotEmpty,
        InvalidOperation (a directory into itself, the root), NameTooLong, OutsideRoot, Unsupported.
        """
        raise Unsupported("this storage cannot move objects")

    def copy(self, source: Key, destination: Key, overwrite: bool = False) -> EntryInfo:
        """Copy a file (capability COPY); the copy lands atomically like a whole-file write. Raises
        NotFound, IsADirectory (source is a directory), AlreadyExists (no ``overwrite``), Unsupported."""
        raise Unsupported("this storage cannot copy objects")

    def set_mtime(self, key: Key, mtime: float) -> EntryInfo:
        """Set a file's (or directory's) modification time (capability SET_MTIME); the ETag changes.
        Raises NotFound, OutsideRoot, Unsupported."""
        raise Unsupported("this storage cannot set modification times")

    def set_attributes(self, key: Key, change: AttrChange) -> EntryInfo:
        """Change the mode bits, owner or times of a file, directory or symlink (never following it)
        (capability POSIX); ctime becomes now. Raises NotFound, OutsideRoot, Unsupported."""
        raise Unsupported("this storage keeps no POSIX metadata")

    def symlink(self, key: Key, target: str) -> EntryInfo:
        """Create a symlink holding ``target`` (capability POSIX); storage never follows it. Its parent
        must exist. Raises AlreadyExists, NotFound, NotADirectory, NameTooLong, InvalidOperation (a bad
        target), Unsupported."""
        raise Unsupported("this storage keeps no symlinks")

    def with_posix(self, key: Key, entries: list[EntryInfo]) -> list[EntryInfo]:
        """``entries`` of directory ``key`` with their ``posix`` filled in, for backends whose listings
        don't carry it (object storage: a HEAD each). Those without ``posix`` show the defaults."""
        return entries

    # -- server metadata (ACLs …), out of reach of user keys -----------------------------------------

    @abstractmethod
    def read_meta(self, name: Key) -> bytes | None:
        """The metadata blob ``name`` (segments as for keys), None when there is none."""

    @abstractmethod
    def write_meta(self, name: Key, data: bytes) -> None:
        """Store a metadata blob, replacing it atomically."""

    @abstractmethod
    def delete_meta(self, name: Key) -> None:
        """Remove a metadata blob; a missing one is not an error."""

    # -- housekeeping --------------------------------------------------------------------------------

    def sweep(self) -> int:
        """Remove leftovers of uploads a killed server left behind; returns how many. Called at start."""
        return 0


def check_key(key: Key) -> None:
    """Raise NameTooLong for a segment over NAME_MAX bytes or a key over PATH_MAX bytes."""
    total = 0
    for name in key:
        size = len(name.encode("utf-8", "surrogateescape"))
        if size > NAME_MAX:
            raise NameTooLong(f"name of {size} bytes is longer than {NAME_MAX} bytes", max=NAME_MAX)
        total += size + 1
    if total - 1 > PATH_MAX:
        raise NameTooLong(f"path of {total - 1} bytes is longer than {PATH_MAX} bytes", max=PATH_MAX)
