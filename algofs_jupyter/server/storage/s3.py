"""``S3Backend``: a storage tree in an S3-compatible bucket (AWS S3, SeaweedFS, MinIO …) via boto3.

Layout: a key ``(a, b, c)`` is the object ``<root>a/b/c``; a directory is the prefix ``<root>a/b/``,
kept alive by a zero-byte *marker* object with that name (``mkdir`` writes it; a delete that would leave
a parent without objects writes the parent's first), so empty directories exist as on a disk. Metadata
blobs (ACLs) are objects under ``<meta>``, a prefix user keys never reach. Nothing else is kept per
process: several servers on one bucket see the same tree.

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

import contextlib
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from ...names import invalid_name_reason
from .base import (
    COPY,
    MOVE,
    NOT_LOOKED_UP,
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
    PreconditionFailed,
    SortKey,
    StorageBackend,
    StorageError,
    Unsatisfiable,
    Upload,
    Usage,
    WriteRequest,
    check_key,
)

#: Download chunks: below the 1 MiB mmap threshold that ``return_part_buffers_to_the_os`` pins, so they
#: are reused heap memory. A 4 MiB chunk was a fresh mmap each time: 262,000 page faults and 1.1 s of
#: system time per GiB, which made a GET 69 % slower than boto3's (the server batches chunks per thread
#: hop instead, ``data_handlers.DOWNLOAD_BATCH``).
READ_CHUNK = 512 * 1024
#: Multipart part size and parts uploading at once: an upload holds at most (MAX_PARTS_IN_FLIGHT + 1) parts.
PART_SIZE = 8 * 1024 * 1024
MAX_PARTS_IN_FLIGHT = 4
#: Longest object key S3 (AWS, SeaweedFS) accepts, in UTF-8 bytes: with the root prefix and a folder
#: marker's "/", below the API's PATH_MAX of 4095.
S3_KEY_MAX = 1024
#: S3's smallest part other than the last: a prefix shorter than this is streamed, not copied.
MIN_PART_SIZE = 5 * 1024 * 1024
#: CopyObject's limit; larger objects are copied in UploadPartCopy parts of COPY_PART_SIZE.
COPY_LIMIT = 5 * 1024**3
COPY_PART_SIZE = 512 * 1024**2
#: Multipart uploads older than this are a killed server's leftovers (younger ones may be another
#: server's uploads in flight, so they are left alone).
STALE_UPLOAD_SECONDS = 24 * 3600
#: Upper bound of every key below a folder: StartAfter=<folder>/ + this skips the folder's subtree.
PAST_FOLDER = "/\U0010ffff"


@dataclass(frozen=True)
class S3Location:
    """``s3://BUCKET/PREFIX``; ``prefix`` is empty or ends with ``/``."""

    bucket: str
    prefix: str = ""

    @classmethod
    def parse(cls, url: str) -> S3Location:
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ValueError(f"not an s3://BUCKET/PREFIX URL: {url!r}")
        prefix = parts.path.strip("/")
        return cls(parts.netloc, prefix + "/" if prefix else "")

    def join(self, *names: str) -> S3Location:
        extra = "/".join(n.strip("/") for n in names if n.strip("/"))
        return S3Location(self.bucket, self.prefix + extra + "/" if extra else self.prefix)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def make_client(endpoint: str | None = None, region: str | None = None, profile: str | None = None) -> Any:
    """A boto3 S3 client; credentials the standard AWS ways (env, shared files, ``profile``), never args.

    Its botocore session keeps timestamps as strings: dateutil parsing of ``LastModified`` is ~85 % of a
    1000-key listing page (0.40 s -> 0.07 s; bench/results/s3_library.md).
    """
    import boto3
    import botocore.session
    from botocore.config import Config

    session = botocore.session.Session(profile=profile)
    session.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=str)
    # checksums only where the API requires them: TLS or the store's MD5/ETag already guard the bytes,
    # and a CRC over every part costs CPU the 2-core machines here don't have
    config = Config(max_pool_connections=32, retries={"mode": "standard", "max_attempts": 4},
                    connect_timeout=10, read_timeout=60, s3={"addressing_style": "path"},
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required")
    return boto3.Session(botocore_session=session).client("s3", endpoint_url=endpoint, region_name=region,
                                                          config=config)


def parse_time(value: Any) -> float:
    """LastModified as epoch seconds: an ISO string (listings), an HTTP date (HEAD) or a datetime."""
    if isinstance(value, datetime):
        moment = value
    elif "," in str(value):
        moment = parsedate_to_datetime(str(value))
    else:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def quoted(etag: str | None) -> str | None:
    """ETags as HTTP wants them; SeaweedFS returns some without quotes."""
    if not etag:
        return None
    return etag if etag.startswith('"') or etag.startswith("W/") else f'"{etag}"'


def error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", "")) or str(
        response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))


def is_missing(exc: Exception) -> bool:
    return error_code(exc) in ("404", "NoSuchKey", "NotFound")


@contextlib.contextmanager
def storage_errors(what: str = "object storage request failed") -> Iterator[None]:
    """botocore errors as StorageErrors (never a bare ClientError upwards); 412 -> PreconditionFailed."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except StorageError:
        raise
    except ClientError as exc:
        code = error_code(exc)
        if code in ("404", "NoSuchKey", "NotFound"):
            raise NotFound("path not found") from exc
        if code in ("412", "PreconditionFailed"):
            raise PreconditionFailed("the object changed meanwhile", etag=None) from exc
        if code == "KeyTooLongError":
            raise NameTooLong(f"the object store refuses a key this long ({code})") from exc
        raise StorageError(f"{what}: {code}") from exc
    except BotoCoreError as exc:
        raise StorageError(f"{what}: {type(exc).__name__}") from exc


def return_part_buffers_to_the_os() -> None:
    """Make glibc serve every allocation of 1 MiB or more with its own mmap, returned to the OS on free.

    By default glibc raises that threshold (up to 32 MiB) after the first large buffers are freed, and the
    8 MiB part buffers of later uploads then stay in per-thread heaps: measured +116 MiB of RSS during the
    first 1 GiB upload instead of ~40 (bench/results/s3_backend.md). Setting it explicitly pins it.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name:
        return
    try:
        ctypes.CDLL(name).mallopt(-3, 1024 * 1024)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass  # not glibc: nothing to pin


class S3Backend(StorageBackend):
    """Objects under ``root`` (an S3Location), metadata under ``meta``; ``client`` is a boto3 S3 client."""

    capabilities = frozenset({MOVE, COPY, WRITE_AT_OFFSET})
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
        self._parts = ThreadPoolExecutor(8, thread_name_prefix="s3-parts")
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

    def _file_info(self, name: str, head: dict) -> EntryInfo:
        return EntryInfo(name, False, int(head["ContentLength"]), parse_time(head["LastModified"]),
                         quoted(head.get("ETag")))

    def _current(self, key: Key) -> EntryInfo | None:
        try:
            return self.info(key)
        except NotFound:
            return None

    def _require_folder(self, key: Key) -> None:
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
            return self._file_info(key[-1], head)
        first = self._first_below(name + "/")
        if first is None:
            raise NotFound("path not found")
        mtime = parse_time(first["LastModified"]) if first["Key"] == name + "/" else 0.0
        return EntryInfo(key[-1], True, 0, mtime, None)

    def file_at(self, key: Key) -> EntryInfo | None:
        head = self._head(self.object_name(key)) if key else None
        return self._file_info(key[-1], head) if head is not None else None

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
        info = EntryInfo(key[-1], False, size, parse_time(response["LastModified"]),
                         quoted(response.get("ETag")))
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
            self._require_folder(key)  # an empty result: a missing folder or a file, or truly empty
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
        self._require_folder(key)
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
              current: EntryInfo | None | Literal[Lookup.NOT_DONE] = NOT_LOOKED_UP) -> Upload:
        if not key:
            raise InvalidOperation("the root is a directory")
        name = self.object_name(key)
        self._require_folder(key[:-1])
        request = WriteRequest(offset, truncate, if_match, expected_size)
        if current is NOT_LOOKED_UP:
            current = self._current(key)
        request.check(current)
        if offset is not None and current is not None and not (offset == 0 and truncate):
            return S3PatchUpload(self, name, key, request)
        return S3Upload(self, name, key, request)

    def mkdir(self, key: Key) -> EntryInfo:
        if not key:
            raise AlreadyExists("the root exists")
        self._require_folder(key[:-1])
        if self._current(key) is not None:
            raise AlreadyExists("a file or directory with that name exists")
        marker = self.folder_prefix(key)
        with storage_errors():
            self.client.put_object(Bucket=self.bucket, Key=marker, Body=b"")
        return self.info(key)

    def _keep_parent(self, key: Key) -> None:
        """(Re)write the parent's marker, so removing ``key`` can't make the parent vanish. Always: a HEAD
        can't tell, since SeaweedFS answers 200 for a folder that only exists through its objects (and
        removes it once they are gone). Rewriting also moves the folder's mtime, as a disk would."""
        if len(key) < 2:
            return
        with storage_errors():
            self.client.put_object(Bucket=self.bucket, Key=self.folder_prefix(key[:-1]), Body=b"")

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
        return sum(1 for n in content if not n.endswith("/"))

    # -- extensions ----------------------------------------------------------------------------------

    def _copy_object(self, source: str, destination: str, size: int, if_match: str | None = None) -> None:
        copy_source = {"Bucket": self.bucket, "Key": source}
        with storage_errors():
            if size <= COPY_LIMIT:
                extra = {"CopySourceIfMatch": if_match} if if_match else {}
                self.client.copy_object(Bucket=self.bucket, Key=destination, CopySource=copy_source, **extra)
                return
            upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=destination)["UploadId"]
            try:
                parts = []
                for number, first in enumerate(range(0, size, COPY_PART_SIZE), start=1):
                    last = min(first + COPY_PART_SIZE, size) - 1
                    answer = self.client.upload_part_copy(
                        Bucket=self.bucket, Key=destination, UploadId=upload_id, PartNumber=number,
                        CopySource=copy_source, CopySourceRange=f"bytes={first}-{last}")
                    parts.append({"PartNumber": number, "ETag": answer["CopyPartResult"]["ETag"]})
                self.client.complete_multipart_upload(Bucket=self.bucket, Key=destination, UploadId=upload_id,
                                                      MultipartUpload={"Parts": parts})
            except BaseException:
                with contextlib.suppress(Exception):
                    self.client.abort_multipart_upload(Bucket=self.bucket, Key=destination,
                                                       UploadId=upload_id)
                raise

    def _check_destination(self, source: EntryInfo, destination: Key, overwrite: bool) -> EntryInfo | None:
        self._require_folder(destination[:-1])
        existing = self._current(destination)
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
        self._copy_object(self.object_name(source), self.object_name(destination), info.size, info.etag)
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
            self._copy_object(self.object_name(source), self.object_name(destination), info.size, info.etag)
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
        for name in names:
            if name.endswith("/"):
                continue
            head = self._head(name)
            sizes[name] = int(head["ContentLength"]) if head else 0
        with storage_errors():  # the new tree first (marker first: it is listed at once), then the old goes
            self.client.put_object(Bucket=self.bucket, Key=new, Body=b"")
            for name in names:
                if name == old:
                    continue
                if name.endswith("/"):
                    self.client.put_object(Bucket=self.bucket, Key=new + name[len(old):], Body=b"")
                else:
                    self._copy_object(name, new + name[len(old):], sizes[name])
        self._keep_parent(source)
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
        removed = 0
        cutoff = time.time() - STALE_UPLOAD_SECONDS
        with storage_errors():
            found = self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=self.root)
        for upload in found.get("Uploads") or []:
            if parse_time(upload["Initiated"]) < cutoff:
                with contextlib.suppress(Exception):
                    self.client.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"],
                                                       UploadId=upload["UploadId"])
                    removed += 1
        return removed


class S3Upload(Upload):
    """The body in ``PART_SIZE`` pieces: one PUT when it fits in one, else a multipart upload whose parts
    go up in the background (``MAX_PARTS_IN_FLIGHT`` at most; ``write`` waits beyond that)."""

    def __init__(self, backend: S3Backend, name: str, key: Key, request: WriteRequest):
        """``request``: only its preconditions matter here (the body is the whole new content)."""
        self.backend = backend
        self.name = name
        self.key = key
        self.request = request
        self.pending: list[bytes] = []  # received, not yet in a part: joined once per part (one copy)
        self.pending_size = 0
        self.upload_id: str | None = None
        self.parts: list[Future] = []
        self.bytes_written = 0
        self._slots = threading.BoundedSemaphore(MAX_PARTS_IN_FLIGHT)
        self._done = False

    @property
    def client(self) -> Any:
        return self.backend.client

    def write(self, chunk: bytes) -> None:
        if self._done:
            raise StorageError("the upload is finished")
        self.pending.append(chunk)
        self.pending_size += len(chunk)
        self.bytes_written += len(chunk)
        if self.pending_size < PART_SIZE:
            return
        data = self._take()
        if len(data) == PART_SIZE:  # the usual case: chunks much smaller than a part
            self._send_part(data)
            return
        full = len(data) - len(data) % PART_SIZE
        for start in range(0, full, PART_SIZE):
            self._send_part(data[start:start + PART_SIZE])
        if full < len(data):
            self.pending, self.pending_size = [data[full:]], len(data) - full

    def _take(self) -> bytes:
        data = b"".join(self.pending)
        self.pending, self.pending_size = [], 0
        return data

    def _send_part(self, data: bytes) -> None:
        if self.upload_id is None:
            with storage_errors("starting the upload failed"):
                self.upload_id = self.client.create_multipart_upload(
                    Bucket=self.backend.bucket, Key=self.name)["UploadId"]
        failed = next((f for f in self.parts if f.done() and f.exception()), None)
        if failed is not None:
            raise StorageError("uploading a part failed") from failed.exception()
        self._slots.acquire()
        number = len(self.parts) + 1
        try:
            future = self.backend._parts.submit(self._upload_part, number, data)
        except BaseException:
            self._slots.release()
            raise
        self.parts.append(future)

    def copy_first_part(self, source: str, length: int, source_etag: str | None) -> None:
        """Part 1 is bytes [0, length) of the object ``source`` (this very version), copied inside the
        store; ``length`` must be at least ``MIN_PART_SIZE`` and nothing written yet."""
        assert self.upload_id is None and not self.parts and not self.pending
        with storage_errors("starting the upload failed"):
            self.upload_id = self.client.create_multipart_upload(
                Bucket=self.backend.bucket, Key=self.name)["UploadId"]
        condition = {"CopySourceIfMatch": source_etag} if source_etag else {}
        with storage_errors("copying the unchanged part failed"):
            answer = self.client.upload_part_copy(
                Bucket=self.backend.bucket, Key=self.name, UploadId=self.upload_id, PartNumber=1,
                CopySource={"Bucket": self.backend.bucket, "Key": source},
                CopySourceRange=f"bytes=0-{length - 1}", **condition)
        done: Future = Future()
        done.set_result({"PartNumber": 1, "ETag": answer["CopyPartResult"]["ETag"]})
        self.parts.append(done)
        self.bytes_written += length

    def _upload_part(self, number: int, data: bytes) -> dict:
        try:
            with storage_errors("uploading a part failed"):
                answer = self.client.upload_part(Bucket=self.backend.bucket, Key=self.name,
                                                 UploadId=self.upload_id, PartNumber=number, Body=data)
            return {"PartNumber": number, "ETag": answer["ETag"]}
        finally:
            self._slots.release()

    def _recheck(self) -> None:
        """Preconditions against the object as it is now (another server may have written meanwhile)."""
        if self.request.conditional:
            self.request.check(self.backend._current(self.key))

    def commit(self) -> EntryInfo:
        if self._done:
            raise StorageError("the upload is finished")
        backend, bucket = self.backend, self.backend.bucket
        if_match = self.request.if_match
        conditional = {"IfMatch": if_match} if if_match and if_match != "*" else {}
        try:
            backend._require_folder(self.key[:-1])  # the parent may have been deleted meanwhile
            if self.upload_id is None:
                self._recheck()
                with storage_errors("storing the file failed"):
                    self.client.put_object(Bucket=bucket, Key=self.name, Body=self._take(),
                                           **conditional)
            else:
                if self.pending:
                    self._send_part(self._take())
                parts = [future.result() for future in self.parts]
                self._recheck()
                with storage_errors("storing the file failed"):
                    self.client.complete_multipart_upload(
                        Bucket=bucket, Key=self.name, UploadId=self.upload_id,
                        MultipartUpload={"Parts": parts}, **conditional)
                self.upload_id = None
        except BaseException:
            self.abort()
            raise
        self._done = True
        head = backend._head(self.name)  # what was just stored is a file: no folder listing needed
        return backend._file_info(self.key[-1], head) if head is not None else backend.info(self.key)

    def abort(self) -> None:
        self._done = True
        self.pending, self.pending_size = [], 0
        upload_id, self.upload_id = self.upload_id, None
        if upload_id is None:
            return
        for future in self.parts:  # let parts in flight finish, so the abort removes them all
            with contextlib.suppress(BaseException):
                future.result(timeout=120)
        with contextlib.suppress(Exception):
            self.client.abort_multipart_upload(Bucket=self.backend.bucket, Key=self.name, UploadId=upload_id)


class S3PatchUpload(Upload):
    """A write at ``offset`` of an existing object: the body is spooled (memory up to one part, then a
    temp file), and ``commit`` builds the new version in one ``S3Upload`` from the current version's
    prefix, the body and (without ``truncate``) the old tail, conditional on that version's ETag."""

    def __init__(self, backend: S3Backend, name: str, key: Key, request: WriteRequest):
        self.backend = backend
        self.name = name
        self.key = key
        assert request.offset is not None
        self.offset: int = request.offset
        self.request = request
        self.body = tempfile.SpooledTemporaryFile(max_size=PART_SIZE)
        self.bytes_written = 0
        self._upload: S3Upload | None = None

    def write(self, chunk: bytes) -> None:
        self.body.write(chunk)
        self.bytes_written += len(chunk)

    def commit(self) -> EntryInfo:
        backend = self.backend
        try:
            current = backend._current(self.key)
            if current is None:
                raise NotFound("the file was removed meanwhile")
            self.request.check(current)
            # the new version is built from exactly this one: the upload lands only if it is still there
            same_version = WriteRequest(if_match=current.etag)
            upload = self._upload = S3Upload(backend, self.name, self.key, same_version)
            if self.offset >= MIN_PART_SIZE:
                upload.copy_first_part(self.name, self.offset, current.etag)
            else:
                self._stream_old(upload, 0, self.offset)
            self.body.seek(0)
            while chunk := self.body.read(READ_CHUNK):
                upload.write(chunk)
            end = self.offset + self.bytes_written
            if not self.request.truncate and end < current.size:
                self._stream_old(upload, end, current.size - end)
            return upload.commit()
        except BaseException:
            self.abort()
            raise
        finally:
            self.body.close()

    def _stream_old(self, upload: S3Upload, start: int, length: int) -> None:
        if length <= 0:
            return
        copied = 0
        for chunk in self.backend.read(self.key, start, length):
            upload.write(chunk)
            copied += len(chunk)
        if copied != length:
            raise PreconditionFailed("the file changed while it was being patched", etag=None, size=copied)

    def abort(self) -> None:
        self.body.close()
        if self._upload is not None:
            self._upload.abort()


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
