"""POSIX metadata of ``S3Backend`` objects, in s3fs-fuse's convention, so a bucket mounted with s3fs
shows the same modes, owners, times and links as the API (checked against Debian's s3fs 1.90 in
tests/server/test_s3fs_compat.py).

User metadata of the object (``x-amz-meta-*``; boto3 drops the prefix): ``mode`` the full st_mode in
decimal, ``uid`` and ``gid`` in decimal, ``mtime``, ``atime``, ``ctime`` as s3fs writes a timespec:
``SECONDS`` or ``SECONDS.NNNNNNNNN`` (seconds may be negative; the nanoseconds are always the positive
remainder). A folder's metadata is on its ``name/`` marker; a symlink is an object whose mode has
``S_IFLNK`` and whose body is the target. Objects without metadata (other tools) show the defaults,
their times the object's Last-Modified.

S3 can't change metadata in place: ``setattr`` copies the object onto itself with new metadata
(``CopyObject``, ``MetadataDirective=REPLACE``), which keeps the bytes and the ETag of single-part objects.
"""

from __future__ import annotations

import json
import stat
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Executor
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ...names import RESERVED_PREFIX
from .base import (
    AlreadyExists,
    AttrChange,
    EntryInfo,
    InvalidOperation,
    Key,
    Posix,
    PreconditionFailed,
    StorageError,
)
from .posix import DEFAULT_DIR_MODE, DEFAULT_FILE_MODE, LINK_MODE, check_target, default_posix, now_ns
from .s3_client import is_missing, parse_time, storage_errors

NS = 1_000_000_000
#: Content type s3fs gives folder markers (it reads any ``name/`` object as a folder).
DIRECTORY_TYPE = "application/x-directory"


def format_time(ns: int) -> str:
    """A timespec as s3fs writes it: ``sec`` or ``sec.nnnnnnnnn`` (floor seconds, positive remainder)."""
    seconds, nanos = divmod(ns, NS)
    return f"{seconds}.{nanos:09d}" if nanos else str(seconds)


def parse_meta_time(value: str | None) -> int | None:
    """s3fs's ``sec[.nsec]`` as nanoseconds (as s3fs reads it: the part after the dot is a count of
    nanoseconds, which s3fs writes with 9 digits); None when absent or not a time."""
    if not value:
        return None
    whole, _, frac = value.strip().partition(".")
    try:
        seconds = int(whole)
        nanos = int(frac) if frac else 0
    except ValueError:
        return None
    if not 0 <= nanos < NS:
        return None
    return seconds * NS + nanos


def _meta_int(meta: Mapping[str, str], name: str) -> int | None:
    try:
        return int(meta[name])
    except (KeyError, ValueError):
        return None


def posix_from(meta: Mapping[str, str], last_modified: Any, is_dir: bool, target: str | None = None) -> Posix:
    """The metadata of an object (or folder marker) from its user metadata and Last-Modified."""
    fallback = int(round(parse_time(last_modified) * NS)) if last_modified else 0
    base = default_posix(is_dir, fallback)
    mode = _meta_int(meta, "mode")
    if mode is None:
        mode = base.mode
    elif is_dir:
        mode = stat.S_IFDIR | stat.S_IMODE(mode)
    elif not stat.S_ISLNK(mode):
        mode = stat.S_IFREG | stat.S_IMODE(mode)
    mtime = parse_meta_time(meta.get("mtime"))
    mtime = fallback if mtime is None else mtime
    atime, ctime = parse_meta_time(meta.get("atime")), parse_meta_time(meta.get("ctime"))
    return Posix(mode, _meta_int(meta, "uid"), _meta_int(meta, "gid"), mtime,
                 mtime if atime is None else atime, mtime if ctime is None else ctime,
                 target if stat.S_ISLNK(mode) else None)


def is_link_meta(meta: Mapping[str, str]) -> bool:
    mode = _meta_int(meta, "mode")
    return mode is not None and stat.S_ISLNK(mode)


def metadata_of(posix: Posix) -> dict[str, str]:
    """The user metadata that stores ``posix`` (s3fs's names and formats)."""
    meta = {"mode": str(posix.mode), "mtime": format_time(posix.mtime_ns),
            "atime": format_time(posix.atime_ns), "ctime": format_time(posix.ctime_ns)}
    if posix.uid is not None:
        meta["uid"] = str(posix.uid)
    if posix.gid is not None:
        meta["gid"] = str(posix.gid)
    return meta


def new_file_metadata(mode: int | None, current: EntryInfo | None, whole: bool) -> dict[str, str]:
    """The metadata an upload stores: a new file's requested mode (none asked: none stored, the defaults
    show), or a changed file's mode and owner kept with mtime and ctime now (a replaced link becomes a
    plain file)."""
    now = now_ns()
    old = current.posix if current is not None else None
    if old is None or (whole and old.is_link):
        if mode is None:
            return {}
        return metadata_of(Posix(DEFAULT_FILE_MODE & ~0o7777 | mode, None, None, now, now, now))
    return metadata_of(Posix(old.mode, old.uid, old.gid, now, old.atime_ns, now))


def folder_metadata(mode: int | None) -> dict[str, str]:
    now = now_ns()
    chosen = DEFAULT_DIR_MODE if mode is None else stat.S_IFDIR | mode
    return metadata_of(Posix(chosen, None, None, now, now, now))


#: The last name of a folder's metadata blob (a reserved name: no user folder can be called that).
FOLDER_BLOB = RESERVED_PREFIX + "folder"


class FolderMetadata:
    """Folder metadata where the store drops a marker's user metadata (SeaweedFS keeps ``name/`` as a
    filer directory, without ``x-amz-meta-*``): also kept as a blob in the backend's metadata space,
    ``posix/<key>/.algofs-partial-folder``, with the marker's Last-Modified when it was written. A marker
    rewritten since (an entry created or removed inside) means the folder's mtime moved: the marker's
    then. On stores that keep marker metadata (AWS, MinIO) the marker alone is read, as s3fs reads it."""

    def __init__(self, client: Any, bucket: str, meta_prefix: str):
        self.client = client
        self.bucket = bucket
        self.prefix = meta_prefix + "posix/"
        #: whether the store keeps a marker's metadata, once a write here found out (None: not yet known;
        #: both places are read). Saves a request per folder stat: the marker's HEAD or the blob's GET.
        self.marker_keeps_meta: bool | None = None

    def blob_name(self, folder: str) -> str:
        """``folder``: the key's path (``a/b``)."""
        return f"{self.prefix}{folder}/{FOLDER_BLOB}"

    def read(self, folder: str, marker_head: dict | None) -> dict[str, str]:
        """The folder's s3fs metadata (``{}``: none stored), from the marker or else the blob."""
        meta = dict(marker_head.get("Metadata") or {}) if marker_head else {}
        if meta or self.marker_keeps_meta:
            return meta
        try:
            raw = self.client.get_object(Bucket=self.bucket, Key=self.blob_name(folder))["Body"].read()
            blob = json.loads(raw)
        except Exception as exc:
            if is_missing(exc) or isinstance(exc, ValueError):
                return {}
            with storage_errors():
                raise
        meta = {str(k): str(v) for k, v in (blob.get("meta") or {}).items()}
        marker_at = blob.get("marker_at")
        if marker_head is not None and isinstance(marker_at, (int, float)) and \
                parse_time(marker_head["LastModified"]) > marker_at:
            meta.pop("mtime", None)  # changed inside since: the marker's time
        return meta

    def write(self, folder: str, marker: str, meta: dict[str, str]) -> None:
        """Store on the marker (rewritten) and, where the store dropped it there, in the blob."""
        with storage_errors():
            self.client.put_object(Bucket=self.bucket, Key=marker, Body=b"", ContentType=DIRECTORY_TYPE,
                                   Metadata=meta)
            head = self.client.head_object(Bucket=self.bucket, Key=marker)
            self.marker_keeps_meta = bool(head.get("Metadata"))
            if self.marker_keeps_meta:
                return
            blob = {"meta": meta, "marker_at": parse_time(head["LastModified"])}
            self.client.put_object(Bucket=self.bucket, Key=self.blob_name(folder),
                                   Body=json.dumps(blob).encode())

    def blobs_below(self, folder: str) -> list[str]:
        """The blobs of ``folder`` and every folder below it."""
        names: list[str] = []
        with storage_errors():
            for page in self.client.get_paginator("list_objects_v2").paginate(
                    Bucket=self.bucket, Prefix=f"{self.prefix}{folder}/"):
                names += [item["Key"] for item in page.get("Contents") or []]
        return names

    def forget(self, folder: str) -> None:
        names = self.blobs_below(folder)
        with storage_errors():
            for first in range(0, len(names), 1000):
                self.client.delete_objects(Bucket=self.bucket, Delete={
                    "Objects": [{"Key": n} for n in names[first:first + 1000]], "Quiet": True})

    def move(self, old: str, new: str) -> None:
        names = self.blobs_below(old)
        with storage_errors():
            for name in names:
                target = f"{self.prefix}{new}/" + name[len(f"{self.prefix}{old}/"):]
                self.client.copy_object(Bucket=self.bucket, Key=target,
                                        CopySource={"Bucket": self.bucket, "Key": name})
        self.forget(old)


class PosixCache:
    """Files' metadata as the last HEAD found it, by object name and the version a listing shows (ETag and
    Last-Modified): S3 changes metadata only by rewriting the object, which moves Last-Modified, so a
    listing entry whose version matches needs no HEAD. Last-Modified has whole seconds: a version is cached
    only once its second is over, so a later rewrite, by any writer, never looks the same. Bounded: the
    oldest half goes when ``limit`` entries are held."""

    def __init__(self, limit: int = 200_000):
        self.limit = limit
        self.lock = threading.Lock()
        self.entries: dict[str, tuple[str | None, float, Posix]] = {}

    def get(self, name: str, etag: str | None, mtime: float) -> Posix | None:
        with self.lock:
            found = self.entries.get(name)
        return found[2] if found is not None and found[:2] == (etag, mtime) else None

    def put(self, name: str, info: EntryInfo) -> None:
        if info.posix is None:
            return
        with self.lock:
            if len(self.entries) >= self.limit:
                for old in list(self.entries)[:self.limit // 2]:
                    del self.entries[old]
            self.entries[name] = (info.etag, info.mtime, info.posix)

    def forget(self, name: str) -> None:
        with self.lock:
            self.entries.pop(name, None)


class S3PosixOperations:
    """``S3Backend``'s ``posix`` operations (a base class of it: s3.py stays one file's worth)."""

    client: Any
    bucket: str
    folder_meta: FolderMetadata
    head_pool: Executor
    posix_cache: PosixCache

    if TYPE_CHECKING:  # what they use of S3Backend
        def info(self, key: Key) -> EntryInfo: ...
        def file_at(self, key: Key) -> EntryInfo | None: ...
        def current(self, key: Key) -> EntryInfo | None: ...
        def object_name(self, key: Key) -> str: ...
        def folder_prefix(self, key: Key) -> str: ...
        def require_folder(self, key: Key) -> None: ...
        def create_lock(self, name: str) -> threading.Lock: ...
        def _folder_info(self, key: Key, first: dict | None) -> EntryInfo: ...
        def _copy_object(self, source: str, destination: str, size: int, if_match: str | None = None,
                         metadata: dict[str, str] | None = None) -> None: ...

    def set_attributes(self, key: Key, change: AttrChange) -> EntryInfo:
        """The object (a folder: its marker, made if missing) copied onto itself with new metadata."""
        if not key:
            raise InvalidOperation("the root's metadata is not the API's")
        info = self.info(key)
        new = change.apply(info.posix or default_posix(info.is_dir, 0), now_ns())
        if info.is_dir:
            self.folder_meta.write("/".join(key), self.folder_prefix(key), metadata_of(new))
        else:
            name = self.object_name(key)
            self.posix_cache.forget(name)
            self._copy_object(name, name, info.size, info.etag, metadata_of(new))
        return self.info(key)

    def symlink(self, key: Key, target: str) -> EntryInfo:
        """An object holding the target, its mode S_IFLNK (s3fs's links); created like an exclusive PUT."""
        check_target(target)
        if not key:
            raise AlreadyExists("the root exists")
        name = self.object_name(key)
        self.require_folder(key[:-1])
        now = now_ns()
        meta = metadata_of(Posix(LINK_MODE, None, None, now, now, now))
        with self.create_lock(name):
            if self.current(key) is not None:
                raise AlreadyExists("something exists at that name")
            try:
                with storage_errors():
                    self.client.put_object(Bucket=self.bucket, Key=name, IfNoneMatch="*", Metadata=meta,
                                           Body=target.encode("utf-8", "surrogateescape"))
            except PreconditionFailed as exc:
                raise AlreadyExists("something exists at that name") from exc
        return self.info(key)

    def with_posix(self, key: Key, entries: list[EntryInfo]) -> list[EntryInfo]:
        """Listings carry no metadata: one HEAD per entry not in ``posix_cache`` (16 at once; s3fs too HEADs
        every entry of a readdir). A first listing of 1,000 files on SeaweedFS here: 0.27 s without them,
        4-8 s with; listed again unchanged: about the listing's own time."""
        prefix = self.folder_prefix(key)

        def described(entry: EntryInfo) -> EntryInfo:
            if entry.posix is not None:
                return entry
            name = prefix + entry.name
            if not entry.is_dir:
                posix = self.posix_cache.get(name, entry.etag, entry.mtime)
                if posix is not None:
                    return replace(entry, posix=posix)
            try:
                if entry.is_dir:
                    return self._folder_info((*key, entry.name), None)
                found = self.file_at((*key, entry.name))
            except StorageError:
                found = None
            if found is None:
                return entry
            if (found.etag, found.mtime) == (entry.etag, entry.mtime) and time.time() > entry.mtime + 1:
                # the version listed, and any rewrite from now on gets a later Last-Modified second
                self.posix_cache.put(name, found)
            return replace(entry, posix=found.posix)

        return list(self.head_pool.map(described, entries))
