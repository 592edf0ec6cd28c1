"""``S3Backend``: a storage tree in an S3-compatible bucket (AWS S3, SeaweedFS, MinIO …) via boto3.

Layout: a key ``(a, b, c)`` is the object ``<root>a/b/c``; a directory is the prefix ``<root>a/b/``,
kept alive by a zero-byte *marker* object with that name (``mkdir`` writes it; a delete that would leave
a parent without objects writes the parent's first), so empty directories exist as on a disk. Metadata
blobs (ACLs) are objects under ``<meta>``, a prefix user keys never reach. Nothing else is kept per
process: several servers on one bucket see the same tree. The client, its errors and ``S3Location`` are in
``s3_client.py``; multipart uploads, patches, copies in parts and the sweep in ``s3_uploads.py``.

Where S3 differs from the local backend (docs/server.md, "S3 storage"):

- Uploads stream: bodies under one part go up with one PUT, larger ones as a multipart upload
  (``PART_SIZE`` parts, ``MAX_PARTS_IN_FLIGHT`` at once, so memory per upload is bounded). The object
  appears only at ``CompleteMultipartUpload``; any failure aborts the upload and the old object stays.
- Listings are in S3 key order (folders and files interleaved by name), paged with the same markers:
  a page continues after the last name looked at. Folder entries carry no mtime.
- ETags are the store's (an MD5 for single PUTs, ``md5-N`` for multipart); Last-Modified has whole seconds
  and is the upload time. ``set_mtime`` is unsupported.
- Writes at an offset (appends, patches) are a new version of the object built next to the store: the
  unchanged prefix is copied inside the store (``UploadPartCopy``) when it is at least one part, else
  read back and streamed into the new upload with the body and the old tail; the client sends only the
  new bytes. It lands like any upload (whole, atomically, at ``CompleteMultipartUpload``/``PutObject``),
  built from the version whose ETag the commit checked again; a reader never sees the tail grow.
- Copy is server-side (``CopyObject``, ``UploadPartCopy`` above 5 GiB). A file move is copy + delete;
  a directory move copies every object, then deletes the source: not atomic for readers (they may see
  both trees for a moment) and a failure midway leaves the source whole.
- A file and a folder of one name can coexist in a foreign bucket (``a`` and ``a/x``): both are listed,
  ``info`` reports the file. This backend never creates such pairs, but two servers racing could.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

from ...names import invalid_name_reason
from .base import (
    COPY,
    EXCLUSIVE_CREATE,
    MOVE,
    NOT_LOOKED_UP,
    POSIX,
    WRITE_AT_OFFSET,
    AlreadyExists,
    DirectoryNotEmpty,
    EntryInfo,
    InvalidOperation,
    IsADirectory,
    Key,
    ListingPage,
    Lookup,
    NameTooLong,
    NotADirectory,
    NotFound,
    Posix,
    SortKey,
    StorageBackend,
    StorageError,
    Unsatisfiable,
    Upload,
    Usage,
    WriteRequest,
    check_key,
)
from .posix import default_posix, now_ns
from .s3_client import (
    READ_CHUNK,
    S3Location,
    error_code,
    is_missing,
    make_client,
    parse_time,
    quoted,
    storage_errors,
)
from .s3_posix import (
    DIRECTORY_TYPE,
    FolderMetadata,
    PosixCache,
    S3PosixOperations,
    folder_metadata,
    format_time,
    is_link_meta,
    metadata_of,
    new_file_metadata,
    posix_from,
)
from .s3_uploads import (
    PART_SIZE,
    S3PatchUpload,
    S3Upload,
    abort_stale_uploads,
    copy_object,
    return_part_buffers_to_the_os,
)

#: Longest object key S3 (AWS, SeaweedFS) accepts, in UTF-8 bytes: with the root prefix and a folder
#: marker's "/", below the API's PATH_MAX of 4095.
S3_KEY_MAX = 1024
#: Upper bound of every key below a folder: StartAfter=<folder>/ + this skips the folder's subtree.
PAST_FOLDER = "/\U0010ffff"


class S3Backend(S3PosixOperations, StorageBackend):
    """Objects under ``root`` (an S3Location), metadata under ``meta``; ``client`` is a boto3 S3 client."""

    capabilities = frozenset({MOVE, COPY, WRITE_AT_OFFSET, EXCLUSIVE_CREATE, POSIX})
    #: Calls block on the network: handlers run them off the event loop.
    blocking = True
    reads_in_one_request = True  # read_file: one ranged GetObject

    def __init__(self, client: Any, root: S3Location, meta: S3Location):
        if root.bucket != meta.bucket:
            raise ValueError("data and metadata must be in one bucket")
        self.client = client
        self.bucket = root.bucket
        self.root = root.prefix
        self.meta = meta.prefix
        self.part_pool = ThreadPoolExecutor(8, thread_name_prefix="s3-parts")
        self._create_locks = [threading.Lock() for _ in range(64)]
        self.head_pool = ThreadPoolExecutor(16, thread_name_prefix="s3-heads")  # listings' metadata
        self.folder_meta = FolderMetadata(client, self.bucket, self.meta)
        self.posix_cache = PosixCache()
        return_part_buffers_to_the_os()

    def __repr__(self) -> str:
        return f"S3Backend('s3://{self.bucket}/{self.root}')"

    # -- names ---------------------------------------------------------------------------------------

    def object_name(self, key: Key) -> str:
        check_key(key)
        name = self.root + "/".join(key)
        room = S3_KEY_MAX - len(self.root.encode()) - 1  # a folder's marker adds "/"
        if len(name.encode("utf-8", "surrogateescape")) + 1 > S3_KEY_MAX:
            raise NameTooLong(f"object storage holds paths of up to {room} bytes here "
                              f"(S3 keys are at most {S3_KEY_MAX} bytes, with the prefix "
                              f"{self.root!r})", max=room)
        return name

    def create_lock(self, name: str) -> threading.Lock:
        return self._create_locks[hash(name) % len(self._create_locks)]

    def folder_prefix(self, key: Key) -> str:
        return self.object_name(key) + "/" if key else self.root

    def _head(self, name: str) -> dict | None:
        try:
            return self.client.head_object(Bucket=self.bucket, Key=name)
        except Exception as exc:
            if is_missing(exc):
                return None
            with storage_errors():
                raise

    def _first_below(self, prefix: str) -> dict | None:
        """The first object whose name starts with ``prefix`` (the folder marker when there is one)."""
        with storage_errors():
            found = self.client.list_objects_v2(Bucket=self.bucket, Prefix=prefix, MaxKeys=1)
        contents = found.get("Contents") or []
        return contents[0] if contents else None

    def _file_info(self, name: str, head: dict, object_name: str | None = None) -> EntryInfo:
        """``head``: a HeadObject (or GetObject) answer; a link's target is read when ``object_name`` is
        given (one GET of a few bytes, links only)."""
        meta = head.get("Metadata") or {}
        target = None
        if object_name is not None and is_link_meta(meta):
            target = self._read_small(object_name)
        return EntryInfo(name, False, int(head["ContentLength"]), parse_time(head["LastModified"]),
                         quoted(head.get("ETag")), posix_from(meta, head["LastModified"], False, target))

    def _read_small(self, object_name: str) -> str:
        with storage_errors():
            body = self.client.get_object(Bucket=self.bucket, Key=object_name)["Body"]
            try:
                return body.read(8192).decode("utf-8", "surrogateescape")
            finally:
                body.close()

    def current(self, key: Key) -> EntryInfo | None:
        try:
            return self.info(key)
        except NotFound:
            return None

    def require_folder(self, key: Key) -> None:
        """NotFound / NotADirectory unless ``key`` is a directory. Its marker answers in one HEAD (every
        folder the API made has one; SeaweedFS answers for any folder); else the full ``info``."""
        if not key:
            return
        if self._head(self.folder_prefix(key)) is not None:
            return
        if not self.info(key).is_dir:
            raise NotADirectory("a parent is not a directory")

    # -- reading -------------------------------------------------------------------------------------

    def info(self, key: Key) -> EntryInfo:
        if not key:
            return EntryInfo("", True)
        name = self.object_name(key)
        head = self._head(name)
        if head is not None:
            return self._file_info(key[-1], head, name)
        first = self._first_below(name + "/")
        if first is None:
            raise NotFound("path not found")
        return self._folder_info(key, first)

    def _folder_info(self, key: Key, first: dict | None) -> EntryInfo:
        """A folder's info with its metadata (``first``: the first object below it, None: not looked up):
        a folder without a marker has only what a blob may hold, and no time."""
        marker = self.folder_prefix(key)
        has_marker = first is None or first["Key"] == marker
        if has_marker and first is not None and self.folder_meta.marker_keeps_meta is False:
            head: dict | None = {"LastModified": first["LastModified"]}  # its metadata is in the blob
        else:
            head = self._head(marker) if has_marker else None
        meta = self.folder_meta.read("/".join(key), head)
        last_modified = head["LastModified"] if head is not None else None
        return EntryInfo(key[-1], True, 0, parse_time(last_modified) if last_modified else 0.0, None,
                         posix_from(meta, last_modified, True))

    def file_at(self, key: Key) -> EntryInfo | None:
        name = self.object_name(key) if key else ""
        head = self._head(name) if key else None
        return self._file_info(key[-1], head, name) if head is not None else None

    def read(self, key: Key, start: int = 0, length: int | None = None) -> Iterator[bytes]:
        name = self.object_name(key)
        if length == 0:
            return iter(())
        try:
            response = self._get_object(name, start, start + length - 1 if length is not None else None)
        except Unsatisfiable:
            return iter(())
        return self._chunks(response["Body"])

    def _get_object(self, name: str, first: int, last: int | None) -> dict:
        """GetObject of bytes ``first``-``last`` (None: to the end). Raises NotFound, IsADirectory (a
        folder of that name), Unsatisfiable (``first`` at or past the end, an empty object)."""
        span = f"bytes={first}-" + (str(last) if last is not None else "")
        try:
            return self.client.get_object(Bucket=self.bucket, Key=name, Range=span)
        except Exception as exc:
            if is_missing(exc):
                if self._first_below(name + "/") is not None:
                    raise IsADirectory("path is a directory") from exc
                raise NotFound("path not found") from exc
            if error_code(exc) in ("416", "InvalidRange"):
                raise Unsatisfiable(f"byte {first} is past the end") from exc
            with storage_errors():
                raise

    def read_file(self, key: Key, first: int = 0, last: int | None = None
                  ) -> tuple[EntryInfo, int, Iterator[bytes]]:
        """One ranged GetObject: its answer carries the size, ETag and Last-Modified a HEAD would."""
        if not key:
            raise IsADirectory("the root is a directory")
        response = self._get_object(self.object_name(key), first, last)
        start, size = first, int(response["ContentLength"])
        content_range = response.get("ContentRange") or ""  # "bytes START-END/SIZE"
        if "/" in content_range:
            start = int(content_range.split()[-1].split("-")[0])
            size = int(content_range.rsplit("/", 1)[1])
        elif first:  # the store ignored the range: not a store this backend supports
            response["Body"].close()
            raise StorageError("the object store ignored a Range request")
        meta = response.get("Metadata") or {}
        target = self._read_small(self.object_name(key)) if is_link_meta(meta) else None
        info = EntryInfo(key[-1], False, size, parse_time(response["LastModified"]),
                         quoted(response.get("ETag")),
                         posix_from(meta, response["LastModified"], False, target))
        return info, start, self._chunks(response["Body"])

    @staticmethod
    def _chunks(body: Any) -> Iterator[bytes]:
        try:
            with storage_errors("reading from object storage failed"):
                while chunk := body.read(READ_CHUNK):
                    yield chunk
        finally:
            body.close()

    def list_page(self, key: Key, after: SortKey | None = None, limit: int = 1000) -> ListingPage:
        prefix = self.folder_prefix(key)
        request = {"Bucket": self.bucket, "Prefix": prefix, "Delimiter": "/", "MaxKeys": limit}
        if after is not None:
            kind, name = after
            request["StartAfter"] = prefix + name + (PAST_FOLDER if kind == 0 else "")
        with storage_errors():
            found = self.client.list_objects_v2(**request)
            if after is None and found.get("IsTruncated") and found.get("KeyCount") == 1 and \
                    [item["Key"] for item in found.get("Contents") or []] == [prefix]:
                # a page holding only the folder's own marker: continuing after it confuses SeaweedFS
                found = self.client.list_objects_v2(**{**request, "MaxKeys": limit + 1})
        folders = [item["Prefix"][len(prefix):-1] for item in found.get("CommonPrefixes") or []]
        files = found.get("Contents") or []
        if not folders and not files and after is None:
            self.require_folder(key)  # an empty result: a missing folder or a file, or truly empty
        entries = [EntryInfo(name, True) for name in folders if self._listable(name)]
        for item in files:
            name = item["Key"][len(prefix):]
            if self._listable(name):
                entries.append(EntryInfo(name, False, int(item["Size"]), parse_time(item["LastModified"]),
                                         quoted(item.get("ETag"))))
        last: SortKey | None = None
        if found.get("IsTruncated"):
            last = self._last_looked_at(prefix, folders[-1] if folders else None,
                                        files[-1]["Key"][len(prefix):] if files else None)
        return ListingPage(entries, last)

    def _last_looked_at(self, prefix: str, folder: str | None, file: str | None) -> SortKey:
        """The last entry of a truncated page in the store's own order, where the next page starts.

        The response keeps folders and files apart. AWS orders by whole key (``a.txt`` < ``a/``), SeaweedFS
        by entry name (``a`` < ``a.txt``); where the two disagree, one more request tells which came last.
        """
        if folder is None or file is None:
            return (0, folder) if folder is not None else (1, file or "")
        by_key = file < folder + "/"
        by_name = file < folder
        if by_key == by_name:
            return (0, folder) if by_key else (1, file)
        with storage_errors():
            later = self.client.list_objects_v2(Bucket=self.bucket, Prefix=prefix, Delimiter="/", MaxKeys=1,
                                                StartAfter=prefix + file)
        after_file = [item["Prefix"] for item in later.get("CommonPrefixes") or []]
        return (0, folder) if prefix + folder + "/" in after_file else (1, file)

    def usage(self, key: Key) -> Usage:
        """One flat listing of the prefix (1000 objects a request): objects and folder markers below it."""
        prefix = self.folder_prefix(key)
        self.require_folder(key)
        total = count = 0
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        with storage_errors():
            for page in pages:
                for item in page.get("Contents") or []:
                    if item["Key"] != prefix:
                        total, count = total + int(item["Size"]), count + 1
        return Usage(total, count)

    @staticmethod
    def _listable(name: str) -> bool:
        """Not the folder's own marker, not a name the API can't carry (hides reserved names too)."""
        return bool(name) and invalid_name_reason(name) is None

    # -- writing -------------------------------------------------------------------------------------

    def write(self, key: Key, *, offset: int | None = None, truncate: bool = False,
              if_match: str | None = None, expected_size: int | None = None,
              current: EntryInfo | None | Literal[Lookup.NOT_DONE] = NOT_LOOKED_UP,
              exclusive: bool = False, mode: int | None = None) -> Upload:
        if not key:
            raise InvalidOperation("the root is a directory")
        name = self.object_name(key)
        self.require_folder(key[:-1])
        request = WriteRequest(offset, truncate, if_match, expected_size, exclusive, mode)
        if current is NOT_LOOKED_UP:
            current = self.current(key)
        request.check(current)
        if offset is not None and current is not None and not (offset == 0 and truncate):
            return S3PatchUpload(self, name, key, request)
        upload = S3Upload(self, name, key, request)
        upload.metadata = new_file_metadata(mode, current, whole=True)
        return upload

    def mkdir(self, key: Key, mode: int | None = None) -> EntryInfo:
        if not key:
            raise AlreadyExists("the root exists")
        self.require_folder(key[:-1])
        if self.current(key) is not None:
            raise AlreadyExists("a file or directory with that name exists")
        if mode is None:  # the defaults: on the marker for s3fs, no blob needed where the store drops them
            with storage_errors():
                self.client.put_object(Bucket=self.bucket, Key=self.folder_prefix(key), Body=b"",
                                       ContentType=DIRECTORY_TYPE, Metadata=folder_metadata(None))
            if self.folder_meta.marker_keeps_meta is None:  # the first folder made tells
                head = self._head(self.folder_prefix(key))
                self.folder_meta.marker_keeps_meta = bool(head and head.get("Metadata"))
        else:
            self.folder_meta.write("/".join(key), self.folder_prefix(key), folder_metadata(mode))
        return self.info(key)

    def _keep_parent(self, key: Key) -> None:
        """(Re)write the parent's marker, so removing ``key`` can't make the parent vanish. Always: a HEAD
        can't tell, since SeaweedFS answers 200 for a folder that only exists through its objects (and
        removes it once they are gone). Rewriting also moves the folder's mtime, as a disk would."""
        if len(key) < 2:
            return
        marker = self.folder_prefix(key[:-1])
        # a store that drops marker metadata has none to keep (its folders' metadata is in blobs)
        head = self._head(marker) if self.folder_meta.marker_keeps_meta is not False else None
        meta = dict(head.get("Metadata") or {}) if head is not None else {}
        if meta:  # its mode and owner stay; its mtime moves, as a disk's would
            meta["mtime"] = meta["ctime"] = format_time(now_ns())
        with storage_errors():
            self.client.put_object(Bucket=self.bucket, Key=marker, Body=b"", ContentType=DIRECTORY_TYPE,
                                   Metadata=meta)

    def delete_file(self, key: Key) -> None:
        if not key or self.info(key).is_dir:
            raise IsADirectory("path is a directory")
        self._keep_parent(key)
        with storage_errors():
            self.client.delete_object(Bucket=self.bucket, Key=self.object_name(key))

    def _names_below(self, prefix: str) -> Iterator[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        with storage_errors():
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents") or []:
                    yield item["Key"]

    def _delete_names(self, names: list[str]) -> None:
        for first in range(0, len(names), 1000):
            batch = [{"Key": n} for n in names[first:first + 1000]]
            with storage_errors():
                answer = self.client.delete_objects(Bucket=self.bucket,
                                                    Delete={"Objects": batch, "Quiet": True})
            if answer.get("Errors"):
                raise StorageError(f"could not delete {len(answer['Errors'])} objects")

    def _delete_tree(self, top: str, names: list[str]) -> None:
        """Delete ``names`` (all below the folder prefix ``top``) and the folder's marker, deepest level
        first, naming every intermediate folder too: SeaweedFS keeps a folder listed while it has
        sub-folders, even ones without objects, until it is deleted by name. On AWS those are no-ops."""
        every = set(names) | {top}
        for name in names:
            parts = name[len(top):].split("/")[:-1]
            every.update(top + "/".join(parts[:depth]) + "/" for depth in range(1, len(parts) + 1))
        def depth(name: str) -> int:
            return name.rstrip("/").count("/")

        for level in sorted({depth(n) for n in every}, reverse=True):
            self._delete_names(sorted(n for n in every if depth(n) == level))

    def delete_dir(self, key: Key, force: bool = False) -> int:
        if not key:
            raise InvalidOperation("the root can't be deleted")
        if not self.info(key).is_dir:
            raise NotADirectory("not a directory")
        marker = self.folder_prefix(key)
        names = list(self._names_below(marker))
        content = [n for n in names if n != marker]
        if content and not force:
            raise DirectoryNotEmpty("directory is not empty")
        self._keep_parent(key)
        # deepest first and the marker last: a failure midway leaves the folder (and what is left) listed
        self._delete_tree(marker, content)
        self.folder_meta.forget("/".join(key))
        return sum(1 for n in content if not n.endswith("/"))

    # -- extensions ----------------------------------------------------------------------------------

    def _copy_object(self, source: str, destination: str, size: int, if_match: str | None = None,
                     metadata: dict[str, str] | None = None) -> None:
        copy_object(self.client, self.bucket, source, destination, size, if_match, metadata)

    def _check_destination(self, source: EntryInfo, destination: Key, overwrite: bool) -> EntryInfo | None:
        self.require_folder(destination[:-1])
        existing = self.current(destination)
        if existing is None:
            return None
        if not overwrite:
            raise AlreadyExists("the destination exists")
        if existing.is_dir != source.is_dir:
            kind = IsADirectory if not source.is_dir else NotADirectory
            raise kind("the destination is of the other kind (file / directory)")
        return existing

    def copy(self, source: Key, destination: Key, overwrite: bool = False) -> EntryInfo:
        info = self.info(source)
        if info.is_dir:
            raise IsADirectory("only files can be copied")
        if not destination:
            raise InvalidOperation("the root is a directory")
        self._check_destination(info, destination, overwrite)
        was, now = info.posix or default_posix(False, 0), now_ns()  # a copy keeps mode, owner, kind
        copied = metadata_of(Posix(was.mode, was.uid, was.gid, now, now, now))
        self._copy_object(self.object_name(source), self.object_name(destination), info.size, info.etag,
                          copied)
        return self.info(destination)

    def move(self, source: Key, destination: Key, overwrite: bool = False) -> EntryInfo:
        if not source or not destination:
            raise InvalidOperation("the root can't be moved")
        if destination[:len(source)] == source and destination != source:
            raise InvalidOperation("a directory can't be moved into itself")
        info = self.info(source)
        if source == destination:
            return info
        existing = self._check_destination(info, destination, overwrite)
        if not info.is_dir:
            was = info.posix or default_posix(False, 0)  # the metadata moves with it; ctime is now
            moved = metadata_of(Posix(was.mode, was.uid, was.gid, was.mtime_ns, was.atime_ns, now_ns()))
            self._copy_object(self.object_name(source), self.object_name(destination), info.size, info.etag,
                              moved)
            self._keep_parent(source)
            with storage_errors():
                self.client.delete_object(Bucket=self.bucket, Key=self.object_name(source))
            return self.info(destination)
        if existing is not None and any(n != self.folder_prefix(destination)
                                        for n in self._names_below(self.folder_prefix(destination))):
            raise DirectoryNotEmpty("the destination directory is not empty")
        old, new = self.folder_prefix(source), self.folder_prefix(destination)
        names = list(self._names_below(old))
        sizes: dict[str, int] = {}
        markers: dict[str, dict] = {old: {}}
        for name in names:
            head = self._head(name)
            if name.endswith("/"):  # folders keep their metadata too
                markers[name] = dict(head.get("Metadata") or {}) if head else {}
            else:
                sizes[name] = int(head["ContentLength"]) if head else 0
        with storage_errors():  # the new tree first (marker first: it is listed at once), then the old goes
            self.client.put_object(Bucket=self.bucket, Key=new, Body=b"", ContentType=DIRECTORY_TYPE,
                                   Metadata=markers[old])
            for name in names:
                if name == old:
                    continue
                if name.endswith("/"):
                    self.client.put_object(Bucket=self.bucket, Key=new + name[len(old):], Body=b"",
                                           ContentType=DIRECTORY_TYPE, Metadata=markers[name])
                else:
                    self._copy_object(name, new + name[len(old):], sizes[name])
        self._keep_parent(source)
        self.folder_meta.move("/".join(source), "/".join(destination))
        self._delete_tree(old, [n for n in names if n != old])
        return self.info(destination)

    # -- bulk import (demo seeding) -----------------------------------------------------------------

    def import_files(self, files: list[tuple[Key, Path]], threads: int = 16) -> int:
        """Upload local files whose keys don't exist yet, one PUT each (no per-file checks: the caller
        made the folders). Seeding 5,000 demo files this way takes seconds, not minutes."""
        existing = set(self._names_below(self.root))
        todo = [(key, path) for key, path in files if self.object_name(key) not in existing]

        def put(item: tuple[Key, Path]) -> None:
            key, path = item
            if path.stat().st_size > PART_SIZE:
                with open(path, "rb") as handle, storage_errors():
                    self.client.upload_fileobj(handle, self.bucket, self.object_name(key))
                return
            with storage_errors():
                self.client.put_object(Bucket=self.bucket, Key=self.object_name(key), Body=path.read_bytes())

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(put, todo))
        return len(todo)

    # -- metadata ------------------------------------------------------------------------------------

    def _meta_name(self, name: Key) -> str:
        check_key(name)
        return self.meta + "/".join(name)

    def read_meta(self, name: Key) -> bytes | None:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._meta_name(name))
        except Exception as exc:
            if is_missing(exc):
                return None
            with storage_errors():
                raise
        with storage_errors():
            return response["Body"].read()

    def write_meta(self, name: Key, data: bytes) -> None:
        with storage_errors():
            self.client.put_object(Bucket=self.bucket, Key=self._meta_name(name), Body=data)

    def delete_meta(self, name: Key) -> None:
        with storage_errors():
            self.client.delete_object(Bucket=self.bucket, Key=self._meta_name(name))

    def sweep(self) -> int:
        """Abort multipart uploads under the root older than a day (a killed server's leftovers)."""
        return abort_stale_uploads(self.client, self.bucket, self.root)


def s3_backend(url: str, endpoint: str | None = None, region: str | None = None,
               profile: str | None = None, meta_url: str | None = None) -> S3Backend:
    """The backend for ``s3://BUCKET/PREFIX``: data under ``PREFIX/data/``, metadata under ``PREFIX/meta/``
    (or data right under ``url`` and metadata under ``meta_url`` when given)."""
    location = S3Location.parse(url)
    if meta_url is None:
        root, meta = location.join("data"), location.join("meta")
    else:
        root, meta = location, S3Location.parse(meta_url)
    return S3Backend(make_client(endpoint, region, profile), root, meta)
