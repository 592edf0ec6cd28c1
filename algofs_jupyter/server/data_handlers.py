"""The Data API: ``/v1/data/<path>``, ``/v1/data/<cid>://<path>`` and ``/v1/connector/<cid>/<path>``.

One handler serves files and directories on the same URL, as the hosted API did: HEAD (exists, type,
size), GET (download or listing), PUT (streamed upload; ``?offset=N`` writes at an offset, an extension),
POST on the parent (mkdir), PATCH (collection ACL) and DELETE (``?force=true`` for non-empty
directories). Everything below the address goes through the target's storage backend.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from tornado.ioloop import IOLoop
from tornado.iostream import StreamClosedError
from tornado.web import stream_request_body

from . import http_files, listing, posix_wire, send_file
from .acl import DEFAULT_READ, AclError, validate_acl
from .errors import ApiError, api_error_for, bad_request
from .handler_base import ApiHandler, parse_json_object
from .namespace import Namespace, Target
from .paths import BadPath, DataAddress, decode_segment, parse_connector_path, parse_data_path
from .storage import (
    CreateRefused,
    EntryInfo,
    IsADirectory,
    ListingPage,
    NotFound,
    StorageError,
    Unsatisfiable,
    Upload,
    check_key,
)
from .storage.local_files import FileSpan

MAX_JSON_BODY = 1024 * 1024
MAX_UPLOAD = 1 << 42  # 4 TiB: effectively unlimited, uploads stream to storage
#: Network storage: body chunks (64 KiB from tornado) are handed to a storage thread in 1 MiB batches.
PENDING_FLUSH = 1024 * 1024
#: Network storage: a download thread hop gathers chunks up to this many bytes (each hop is one pass of
#: the event loop; the chunks themselves stay small, see ``storage.s3.READ_CHUNK``).
DOWNLOAD_BATCH = 4 * 1024 * 1024


def next_batch(chunks: Iterator[bytes], limit: int = DOWNLOAD_BATCH) -> list[bytes]:
    """The next chunks of ``chunks`` up to ``limit`` bytes (at least one chunk); [] at the end."""
    batch: list[bytes] = []
    size = 0
    for chunk in chunks:
        batch.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return batch


def int_argument(handler: ApiHandler, name: str) -> int | None:
    raw = handler.get_query_argument(name, None)
    if raw is None:
        return None
    if not raw.isdigit() or len(raw) > 19:
        raise bad_request(f"{name} must be a non-negative integer")
    return int(raw)


def bool_argument(handler: ApiHandler, name: str) -> bool:
    return handler.get_query_argument(name, "").lower() == "true"


@stream_request_body
class DataHandler(ApiHandler):
    namespace: Namespace
    address: DataAddress
    target: Target

    def initialize(self, prefix: str) -> None:
        self.prefix = prefix
        self.upload: Upload | None = None
        self.body_parts: list[bytes] = []
        self.body_size = 0
        # upload chunks gathered for one hop to a storage thread (network storage only)
        self.pending: list[bytes] = []
        self.pending_size = 0

    # -- request set-up ---------------------------------------------------------------------------

    async def prepare(self) -> None:  # type: ignore[override]  # tornado awaits a coroutine prepare
        # bodies are streamed to storage (PUT), capped (JSON) or drained (refused): never buffered whole
        self.request.connection.set_max_body_size(MAX_UPLOAD)  # type: ignore[union-attr]
        try:
            await self.offload(self._prepare)
        except StorageError as error:
            self.defer_if_body_follows(api_error_for(error), always=True)
        except ApiError as error:
            self.defer_if_body_follows(error, always=True)

    def _prepare(self) -> None:
        self.authenticate()
        self.namespace = self.application.settings["namespace"]
        raw = self.request.path[len(self.prefix) :]
        try:
            if self.prefix.endswith("/connector/"):
                cid, _, rest = raw.partition("/")
                self.address = parse_connector_path(cid, rest)
            else:
                self.address = parse_data_path(raw)
        except BadPath as exc:
            raise bad_request(str(exc)) from exc
        self.target = self.namespace.resolve(self.address, self.identity)
        if self.request.method == "PUT":
            self.upload = self._start_upload()

    async def data_received(self, chunk: bytes) -> None:
        if self.deferred_error is not None:
            return  # the request is refused: drain the body without storing it
        if self.upload is not None:
            try:
                await self._store(chunk)
            except StorageError as error:  # e.g. past the user's quota: nothing of the body remains
                self._abort_upload()
                self.defer_if_body_follows(api_error_for(error), always=True)
            return
        self.body_size += len(chunk)
        if self.body_size <= MAX_JSON_BODY:
            self.body_parts.append(chunk)

    async def _store(self, chunk: bytes) -> None:
        if self.application.settings.get("storage_threads") is None:
            assert self.upload is not None
            self.upload.write(chunk)
            return
        self.pending.append(chunk)
        self.pending_size += len(chunk)
        if self.pending_size >= PENDING_FLUSH:
            await self._flush_pending()

    async def _flush_pending(self) -> None:
        """Hand the gathered chunks to the upload on a storage thread; tornado reads no more body
        meanwhile (flow control), so memory stays bounded by PENDING_FLUSH plus the upload's parts."""
        data, self.pending, self.pending_size = b"".join(self.pending), [], 0
        upload = self.upload
        if data and upload is not None:
            await self.offload(upload.write, data)

    def on_connection_close(self) -> None:
        self._abort_upload()

    def on_finish(self) -> None:
        self._abort_upload()

    def _abort_upload(self) -> None:
        if self.upload is not None:
            upload, self.upload = self.upload, None
            self.pending, self.pending_size = [], 0
            threads = self.application.settings.get("storage_threads")
            if threads is None:
                upload.abort()
            else:
                threads.submit(upload.abort)  # waits for parts in flight: not on the event loop

    def json_body(self) -> dict:
        if self.body_size > MAX_JSON_BODY:
            raise bad_request("request body too large")
        return parse_json_object(b"".join(self.body_parts))

    def _existing(self, target: Target) -> EntryInfo | None:
        try:
            return target.backend.info(target.key)
        except NotFound:
            return None

    # -- HEAD / GET -------------------------------------------------------------------------------

    async def head(self) -> None:
        await self.get(include_body=False)

    async def get(self, include_body: bool = True) -> None:
        target = self.target
        if target.level == "path":
            Namespace.require_read(target)
            if include_body and target.backend.reads_in_one_request and await self._send_in_one_request():
                return
            info = await self.offload(target.backend.info, target.key)
            if not info.is_dir:
                await self._send_file(target, info, include_body)
                return
            for name, value in posix_wire.headers(info).items():  # a folder's mode and times: one HEAD
                self.set_header(name, value)
        self.set_header("X-Data-Type", "directory")
        if not include_body:
            self.finish()
            return
        after = listing.decode_marker(self.get_query_argument("marker", None))
        # A thread: the first page of a directory of 50,000 names scans and sorts them (~200 ms), which
        # would stall every other request (ranged reads of the mount) on the event loop meanwhile.
        threads = self.application.settings.get("storage_threads")
        page = await IOLoop.current().run_in_executor(threads, self._listing, target, after)
        result = listing.body(page, posix=target.level != "root")
        if bool_argument(self, "acl") and target.collection is not None:
            result["acl"] = {"read": await self.offload(self.namespace.acl.read_list,
                                                        *target.collection_id)}
        self.write_json(result)

    def _listing(self, target: Target, after: tuple[int, str] | None) -> ListingPage:
        if target.level == "root":  # the caller, their organizations, the other users
            names = self.namespace.root_names(self.identity)
            return listing.virtual_page([EntryInfo(name, True) for name in names], after, sort=False)
        page = target.backend.list_page(target.key, after, listing.PAGE_SIZE)
        if any(entry.posix is None for entry in page.entries):
            page = ListingPage(target.backend.with_posix(target.key, page.entries), page.last_key)
        if target.level == "user":  # collections only, and only those the caller may read
            namespace, who = self.namespace, self.identity
            readable = [e for e in page.entries if e.is_dir and namespace.lists_collection(
                target.owner, e.name, who)]
            page = ListingPage(readable, page.last_key)
        return page

    async def _send_in_one_request(self) -> bool:
        """A plain GET (no conditions, at most one ``bytes=A-[B]`` range) of a file on object storage:
        one store request answers it, where ``info`` and ``read`` are two (a small file's read took
        twice the store's round trip). False: not such a request, or not a file; ``get`` goes on."""
        headers = self.request.headers
        if headers.get("If-None-Match") or headers.get("If-Range"):
            return False
        span = http_files.simple_range(headers.get("Range"))
        if span is None:
            return False
        target = self.target
        try:
            info, start, chunks = await self.offload(target.backend.read_file, target.key, *span)
        except (IsADirectory, Unsatisfiable):
            return False  # a listing, or a 416 / an empty file: the general path answers
        self._file_headers(info)
        end = info.size - 1 if span[1] is None else min(span[1], info.size - 1)
        if headers.get("Range"):
            self.set_status(206)
            self.set_header("Content-Range", f"bytes {start}-{end}/{info.size}")
        self.set_header("Content-Length", str(end - start + 1))
        await self._stream(chunks)
        return True

    def _file_headers(self, info: EntryInfo) -> None:
        self.set_header("X-Data-Type", "file")
        self.set_header("Content-Type", "application/octet-stream")
        self.set_header("Accept-Ranges", "bytes")
        if info.etag:
            self.set_header("ETag", info.etag)
        self.set_header("Last-Modified", http_files.last_modified_for(info))
        for name, value in posix_wire.headers(info).items():
            self.set_header(name, value)

    async def _send_file(self, target: Target, info: EntryInfo, include_body: bool) -> None:
        size = info.size
        self._file_headers(info)
        if http_files.etag_matches(self.request.headers.get("If-None-Match"), info.etag):
            self.set_status(304)
            self.finish()
            return
        span = None
        if http_files.if_range_allows(self.request.headers.get("If-Range"), info):
            span = http_files.parse_range(self.request.headers.get("Range"), size)
        start, end = span if span else (0, size - 1)
        if span:
            self.set_status(206)
            self.set_header("Content-Range", f"bytes {start}-{end}/{size}")
        length = end - start + 1 if size else 0
        self.set_header("Content-Length", str(length))
        if not include_body or length == 0:
            self.finish()
            return
        await self._stream(await self.offload(target.backend.read, target.key, start, length))

    async def _stream(self, chunks: Iterator[bytes]) -> None:
        """Send ``chunks`` as the body and finish; closes them however it ends."""
        threads = self.application.settings.get("storage_threads")
        ahead: asyncio.Future | None = None
        try:
            if threads is None and isinstance(chunks, FileSpan) and await send_file.send(self, chunks):
                pass  # the kernel sent the file's bytes
            elif threads is None:
                for chunk in chunks:
                    self.write(chunk)
                    await self.flush()
            else:  # network storage: fetch the next batch while this one goes out
                loop = asyncio.get_running_loop()
                ahead = loop.run_in_executor(threads, next_batch, chunks)
                while batch := await ahead:
                    ahead = loop.run_in_executor(threads, next_batch, chunks)
                    for chunk in batch:  # one flush per chunk: a joined batch would be a fresh mmap
                        self.write(chunk)
                        await self.flush()
                    del batch
            self.finish()
        except StreamClosedError:
            pass  # client went away
        finally:
            if ahead is not None and not ahead.done():
                with contextlib.suppress(Exception):
                    await ahead  # the generator can't be closed while a thread runs it
            with contextlib.suppress(Exception):
                chunks.close()  # type: ignore[attr-defined]

    # -- PUT --------------------------------------------------------------------------------------

    def _start_upload(self) -> Upload:
        target = self.target
        if target.level != "path" or (target.connector is None and len(target.key) < 3):
            raise bad_request("files can only be stored inside a collection")
        if not target.key:
            raise bad_request("cannot write to the connector root")
        check_key(target.key)
        offset = int_argument(self, "offset")
        expected_size = int_argument(self, "expected_size")
        exclusive = (self.request.headers.get("If-None-Match") or "").strip() == "*"
        mode = posix_wire.mode_header(self.request.headers.get(posix_wire.MODE_HEADER), target.backend)
        existing = self._existing(target)
        # creating needs "write"; replacing or changing what exists destroys the old bytes: "delete" too
        Namespace.require_write(target)
        if exclusive and existing is not None:
            raise CreateRefused("something exists at that name (If-None-Match: *)")
        if existing is not None and not existing.is_dir:
            Namespace.require_replace(target)
        upload = target.backend.write(target.key, offset=offset, truncate=bool_argument(self, "truncate"),
                                      if_match=self.request.headers.get("If-Match"),
                                      expected_size=expected_size, current=existing, exclusive=exclusive,
                                      mode=mode)
        declared = self.request.headers.get("Content-Length", "")
        if declared.isdigit() and "Transfer-Encoding" not in self.request.headers:
            try:
                upload.expect(int(declared))  # a body past the user's quota: refused before a byte lands
            except BaseException:
                upload.abort()
                raise
        return upload

    async def put(self) -> None:
        if self.upload is None:
            raise ApiError(400, "the upload was interrupted")  # the connection closed mid-body
        await self._flush_pending()
        upload, self.upload = self.upload, None  # the body is complete: a close now must not abort it
        if upload is None:
            raise ApiError(400, "the upload was interrupted")
        try:
            info = await self.offload(upload.commit)
        except BaseException:
            await self.offload(upload.abort)
            raise
        # the stored file's validators, as HEAD would report them: saves writers a HEAD
        if info.etag:
            self.set_header("ETag", info.etag)
        self.set_header("Last-Modified", http_files.last_modified_for(info))
        self.set_header("X-Algofs-Size", str(info.size))
        for name, value in posix_wire.headers(info).items():  # and its metadata: no HEAD to learn them
            self.set_header(name, value)
        self.write_json({"result": self.address.uri()})

    # -- POST (mkdir on the parent) ---------------------------------------------------------------

    async def post(self) -> None:
        self.write_json(await self.offload(self._mkdir))

    def _mkdir(self) -> dict:
        body = self.json_body()
        raw_name = body.get("name")
        if not isinstance(raw_name, str):
            raise bad_request('body must be {"name": "<new directory>"}')
        try:
            name = decode_segment(raw_name.replace("%", "%25"))
        except BadPath as exc:
            raise bad_request(str(exc)) from exc
        acl = None
        if "acl" in body:
            try:
                acl = validate_acl(body["acl"])
            except AclError as exc:
                raise bad_request(str(exc)) from exc
        parent = self.target
        if parent.level == "root":
            raise ApiError(403, "users can't be created through the Data API")
        Namespace.require_write(parent)
        key = (*parent.key, name)
        check_key(key)  # before anything is created
        parent.backend.mkdir(key, posix_wire.mode_field(body, parent.backend))
        if parent.level == "user":
            try:
                self.namespace.acl.set_read_list(parent.owner, name, acl if acl is not None else DEFAULT_READ)
            except BaseException:
                parent.backend.delete_dir(key)  # no half-created collection
                raise
        return {"result": self.address.child(name).uri()}

    # -- PATCH (collection ACL) -------------------------------------------------------------------

    async def patch(self) -> None:
        self.write_json(await self.offload(self._set_acl))

    def _set_acl(self) -> dict:
        body = self.json_body()
        try:
            read = validate_acl(body.get("acl"))
        except AclError as exc:
            raise bad_request(str(exc)) from exc
        target = self.target
        if not target.is_collection:
            raise bad_request("ACLs can only be set on collections (data://<user>/<collection>)")
        Namespace.require_acl_change(target)
        if not target.backend.info(target.key).is_dir:
            raise NotFound("path not found")
        self.namespace.acl.set_read_list(*target.collection_id, read)
        return {"result": {"acl": {"read": read}}}

    # -- DELETE -----------------------------------------------------------------------------------

    async def delete(self) -> None:
        self.write_json(await self.offload(self._delete))

    def _delete(self) -> dict:
        target = self.target
        if target.level != "path" or not target.key:
            raise ApiError(403, "this directory can't be deleted")
        Namespace.require_delete(target)
        info = target.backend.info(target.key)
        if not info.is_dir:
            target.backend.delete_file(target.key)
            return {"result": {"deleted": 1}}
        deleted = target.backend.delete_dir(target.key, force=bool_argument(self, "force"))
        if target.is_collection:
            self.namespace.acl.forget(*target.collection_id)
        return {"result": {"deleted": deleted}}
