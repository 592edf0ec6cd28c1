"""Multipart work of ``S3Backend`` (storage/s3.py): streamed uploads, writes at an offset, server-side
copies in parts, and the sweep of a killed server's incomplete uploads.

- ``S3Upload``: bodies under one part go up with one PUT, larger ones as a multipart upload (``PART_SIZE``
  parts, ``MAX_PARTS_IN_FLIGHT`` at once, so memory per upload is bounded). The object appears only at
  ``CompleteMultipartUpload``; any failure aborts the upload and the old object stays.
- ``S3PatchUpload``: a write at an offset builds the new version in one ``S3Upload``: the unchanged prefix
  copied inside the store (``UploadPartCopy``) when it is at least ``MIN_PART_SIZE``, else read back and
  streamed, then the body and the old tail, conditional on the ETag of the version it was built from.

The uploads see their backend only through ``UploadTarget``: this module imports nothing of ``s3.py``.
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Executor, Future
from typing import Any, Protocol

from .base import (
    CreateRefused,
    EntryInfo,
    Key,
    NotFound,
    PreconditionFailed,
    StorageError,
    Upload,
    WriteRequest,
)
from .s3_client import READ_CHUNK, parse_time, storage_errors
from .s3_posix import new_file_metadata

#: Multipart part size and parts uploading at once: an upload holds at most (MAX_PARTS_IN_FLIGHT + 1) parts.
PART_SIZE = 8 * 1024 * 1024
MAX_PARTS_IN_FLIGHT = 4
#: S3's smallest part other than the last: a prefix shorter than this is streamed, not copied.
MIN_PART_SIZE = 5 * 1024 * 1024
#: CopyObject's limit; larger objects are copied in UploadPartCopy parts of COPY_PART_SIZE.
COPY_LIMIT = 5 * 1024**3
COPY_PART_SIZE = 512 * 1024**2
#: Multipart uploads older than this are a killed server's leftovers (younger ones may be another
#: server's uploads in flight, so they are left alone).
STALE_UPLOAD_SECONDS = 24 * 3600


class UploadTarget(Protocol):
    """What an upload needs of the backend it lands in (``S3Backend``)."""

    client: Any
    bucket: str

    @property
    def part_pool(self) -> Executor:
        """Where parts upload in the background, shared by every upload of the backend."""

    def current(self, key: Key) -> EntryInfo | None: ...

    def require_folder(self, key: Key) -> None: ...

    def info(self, key: Key) -> EntryInfo: ...

    def file_at(self, key: Key) -> EntryInfo | None: ...

    def read(self, key: Key, start: int = 0, length: int | None = None) -> Iterator[bytes]: ...

    def create_lock(self, name: str) -> threading.Lock:
        """Held around the check and the store of an exclusive create of the object ``name``."""


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


class S3Upload(Upload):
    """The body in ``PART_SIZE`` pieces: one PUT when it fits in one, else a multipart upload whose parts
    go up in the background (``MAX_PARTS_IN_FLIGHT`` at most; ``write`` waits beyond that)."""

    def __init__(self, backend: UploadTarget, name: str, key: Key, request: WriteRequest):
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
        #: the object's user metadata (s3fs-fuse's mode, owner, times: ``s3_posix.py``), set before any write
        self.metadata: dict[str, str] = {}

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
                    Bucket=self.backend.bucket, Key=self.name, Metadata=self.metadata)["UploadId"]
        failed = next((f for f in self.parts if f.done() and f.exception()), None)
        if failed is not None:
            raise StorageError("uploading a part failed") from failed.exception()
        self._slots.acquire()
        number = len(self.parts) + 1
        try:
            future = self.backend.part_pool.submit(self._upload_part, number, data)
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
                Bucket=self.backend.bucket, Key=self.name, Metadata=self.metadata)["UploadId"]
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
            self.request.check(self.backend.current(self.key))

    def commit(self) -> EntryInfo:
        if self._done:
            raise StorageError("the upload is finished")
        backend = self.backend
        try:
            backend.require_folder(self.key[:-1])  # the parent may have been deleted meanwhile
            if self.upload_id is not None and self.pending:
                self._send_part(self._take())
            parts = [future.result() for future in self.parts]
            if not self.request.exclusive:
                self._recheck()
                self._land(parts)
            else:  # this server's creates of the name wait for each other; the store's If-None-Match
                # guards against other writers where it has one (AWS, SeaweedFS 3.8x)
                with backend.create_lock(self.name):
                    self._recheck()
                    try:
                        self._land(parts, {"IfNoneMatch": "*"})
                    except PreconditionFailed as exc:
                        raise CreateRefused("something exists at that name (If-None-Match: *)") from exc
        except BaseException:
            self.abort()
            raise
        self._done = True
        stored = backend.file_at(self.key)  # what was just stored is a file: no folder listing needed
        return stored if stored is not None else backend.info(self.key)

    def _land(self, parts: list[dict], condition: dict[str, str] | None = None) -> None:
        """PutObject of the body, or CompleteMultipartUpload of ``parts``, under the write's conditions."""
        if_match = self.request.if_match
        conditional = dict(condition or {})
        if if_match and if_match != "*":
            conditional["IfMatch"] = if_match
        bucket = self.backend.bucket
        with storage_errors("storing the file failed"):
            if self.upload_id is None:
                self.client.put_object(Bucket=bucket, Key=self.name, Body=self._take(),
                                       Metadata=self.metadata, **conditional)
            else:
                self.client.complete_multipart_upload(Bucket=bucket, Key=self.name, UploadId=self.upload_id,
                                                      MultipartUpload={"Parts": parts}, **conditional)
                self.upload_id = None

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

    def __init__(self, backend: UploadTarget, name: str, key: Key, request: WriteRequest):
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
            current = backend.current(self.key)
            if current is None:
                raise NotFound("the file was removed meanwhile")
            self.request.check(current)
            # the new version is built from exactly this one: the upload lands only if it is still there
            same_version = WriteRequest(if_match=current.etag)
            upload = self._upload = S3Upload(backend, self.name, self.key, same_version)
            upload.metadata = new_file_metadata(None, current, whole=False)  # mode and owner stay
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


def copy_object(client: Any, bucket: str, source: str, destination: str, size: int,
                if_match: str | None = None, metadata: dict[str, str] | None = None) -> None:
    """Server-side copy of the object ``source`` (``size`` bytes, the version ``if_match`` when given):
one ``CopyObject`` up to ``COPY_LIMIT``, else a multipart upload of ``UploadPartCopy`` parts. ``metadata``:
the copy's user metadata (None: the source's)."""
    copy_source = {"Bucket": bucket, "Key": source}
    with storage_errors():
        if size <= COPY_LIMIT:
            extra: dict[str, Any] = {"CopySourceIfMatch": if_match} if if_match else {}
            if metadata is not None:
                extra.update(MetadataDirective="REPLACE", Metadata=metadata)
            client.copy_object(Bucket=bucket, Key=destination, CopySource=copy_source, **extra)
            return
        if metadata is None:
            metadata = client.head_object(Bucket=bucket, Key=source).get("Metadata") or {}
        upload_id = client.create_multipart_upload(Bucket=bucket, Key=destination,
                                                   Metadata=metadata)["UploadId"]
        try:
            parts = []
            for number, first in enumerate(range(0, size, COPY_PART_SIZE), start=1):
                last = min(first + COPY_PART_SIZE, size) - 1
                answer = client.upload_part_copy(
                    Bucket=bucket, Key=destination, UploadId=upload_id, PartNumber=number,
                    CopySource=copy_source, CopySourceRange=f"bytes={first}-{last}")
                parts.append({"PartNumber": number, "ETag": answer["CopyPartResult"]["ETag"]})
            client.complete_multipart_upload(Bucket=bucket, Key=destination, UploadId=upload_id,
                                                  MultipartUpload={"Parts": parts})
        except BaseException:
            with contextlib.suppress(Exception):
                client.abort_multipart_upload(Bucket=bucket, Key=destination,
                                                   UploadId=upload_id)
            raise


def abort_stale_uploads(client: Any, bucket: str, prefix: str) -> int:
    """Abort multipart uploads below ``prefix`` older than ``STALE_UPLOAD_SECONDS`` (a killed server's
    leftovers); how many were aborted."""
    removed = 0
    cutoff = time.time() - STALE_UPLOAD_SECONDS
    with storage_errors():
        found = client.list_multipart_uploads(Bucket=bucket, Prefix=prefix)
    for upload in found.get("Uploads") or []:
        if parse_time(upload["Initiated"]) < cutoff:
            with contextlib.suppress(Exception):
                client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
                removed += 1
    return removed
