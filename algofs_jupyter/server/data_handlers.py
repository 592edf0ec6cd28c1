"""The Data API: ``/v1/data/<path>``, ``/v1/data/<cid>://<path>`` and ``/v1/connector/<cid>/<path>``.

One handler serves files and directories on the same URL, as the hosted API did: HEAD (exists, type,
size), GET (download or listing), PUT (streamed upload), POST on the parent (mkdir), PATCH (collection
ACL) and DELETE (``?force=true`` for non-empty directories).
"""

from __future__ import annotations

import json
import os
import shutil
import stat as stat_module
from pathlib import Path

from tornado.ioloop import IOLoop
from tornado.iostream import StreamClosedError
from tornado.web import stream_request_body

from . import http_files, listing
from .acl import AclError, validate_acl
from .base import ApiHandler
from .errors import ApiError, bad_request, not_found
from .namespace import Namespace, Target
from .paths import BadPath, DataAddress, decode_segment, parse_connector_path, parse_data_path
from .uploads import AtomicUpload

READ_CHUNK = 1024 * 1024
MAX_JSON_BODY = 1024 * 1024
MAX_UPLOAD = 1 << 42  # 4 TiB: effectively unlimited, uploads stream to disk


@stream_request_body
class DataHandler(ApiHandler):
    namespace: Namespace
    address: DataAddress
    target: Target

    def initialize(self, prefix: str) -> None:
        self.prefix = prefix
        self.upload: AtomicUpload | None = None
        self.body_parts: list[bytes] = []
        self.body_size = 0

    # -- request set-up ---------------------------------------------------------------------------

    def prepare(self) -> None:
        # bodies are streamed to disk (PUT), capped (JSON) or drained (refused): never buffered whole
        self.request.connection.set_max_body_size(MAX_UPLOAD)
        try:
            self._prepare()
        except ApiError as error:
            self.defer_if_body_follows(error)

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

    def data_received(self, chunk: bytes) -> None:
        if self.deferred_error is not None:
            return  # the request is refused: drain the body without storing it
        if self.upload is not None:
            self.upload.write(chunk)
            return
        self.body_size += len(chunk)
        if self.body_size <= MAX_JSON_BODY:
            self.body_parts.append(chunk)

    def on_connection_close(self) -> None:
        self._abort_upload()

    def on_finish(self) -> None:
        self._abort_upload()

    def _abort_upload(self) -> None:
        if self.upload is not None:
            self.upload.abort()
            self.upload = None

    def json_body(self) -> dict:
        if self.body_size > MAX_JSON_BODY:
            raise bad_request("request body too large")
        try:
            body = json.loads(b"".join(self.body_parts) or b"null")
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise bad_request(f"malformed JSON body: {exc}") from exc
        if not isinstance(body, dict):
            raise bad_request("expected a JSON object")
        return body

    # -- HEAD / GET -------------------------------------------------------------------------------

    def _stat(self, target: Target) -> os.stat_result:
        try:
            return target.local.stat()
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise not_found() from exc

    async def head(self) -> None:
        await self.get(include_body=False)

    async def get(self, include_body: bool = True) -> None:
        target = self.target
        if target.level == "path":
            Namespace.require_read(target)
            st = self._stat(target)
            if stat_module.S_ISREG(st.st_mode):
                await self._send_file(target.local, st, include_body)
                return
        self.set_header("X-Data-Type", "directory")
        if not include_body:
            self.finish()
            return
        # A thread: the first page of a directory of 50,000 names scans and sorts them (~200 ms), which
        # would stall every other request (ranged reads of the mount) on the event loop meanwhile.
        self.write_json(await IOLoop.current().run_in_executor(None, self._listing, target))

    def _listing(self, target: Target) -> dict:
        marker = self.get_query_argument("marker", None) or None
        if target.level == "root":
            me = self.identity.username
            users = [u for u in self.namespace.known_users() if u != me]
            entries = [listing.Entry(True, name) for name in [me, *users]]
            return listing.page(entries, marker, sort=False)
        if target.level == "user":
            entries = [
                listing.Entry(True, name) for kind, name in listing.scan_keys(target.local)
                if kind == 0 and self.namespace.acl.may_read(
                    target.owner, name, self.identity.username, self.identity.algo_owner)
            ]
            body = listing.page(entries, marker)
        else:
            body = listing.list_directory(target.local, marker, self.application.settings["directories"])
        if self.get_query_argument("acl", "").lower() == "true" and target.collection is not None:
            body["acl"] = {"read": self.namespace.acl.read_list(target.owner, target.collection)}
        return body

    async def _send_file(self, path: Path, st: os.stat_result, include_body: bool) -> None:
        etag = http_files.etag_for(st)
        size = st.st_size
        self.set_header("X-Data-Type", "file")
        self.set_header("Content-Type", "application/octet-stream")
        self.set_header("Accept-Ranges", "bytes")
        self.set_header("ETag", etag)
        self.set_header("Last-Modified", http_files.last_modified_for(st))
        if http_files.etag_matches(self.request.headers.get("If-None-Match"), etag):
            self.set_status(304)
            self.finish()
            return
        span = None
        if http_files.if_range_allows(self.request.headers.get("If-Range"), etag, st):
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
        try:
            with open(path, "rb", buffering=0) as handle:
                handle.seek(start)
                remaining = length
                while remaining > 0:
                    chunk = handle.read(min(READ_CHUNK, remaining))
                    if not chunk:
                        break  # truncated under us; the client sees a short body
                    remaining -= len(chunk)
                    self.write(chunk)
                    await self.flush()
            self.finish()
        except StreamClosedError:
            pass  # client went away

    # -- PUT --------------------------------------------------------------------------------------

    def _start_upload(self) -> AtomicUpload:
        target = self.target
        if target.level != "path" or (target.connector is None and len(self.address.segments) < 3):
            raise bad_request("files can only be stored inside a collection")
        if not self.address.segments:
            raise bad_request("cannot write to the connector root")
        Namespace.require_write(target)
        parent = target.local.parent
        if not parent.is_dir():
            raise not_found("parent directory not found")
        if target.local.is_dir():
            raise ApiError(409, "a directory with that name exists")
        return AtomicUpload(target.local)

    def put(self) -> None:
        assert self.upload is not None
        self.upload.commit()
        self.upload = None
        try:  # the stored file's validators, as HEAD would report them: saves writers a HEAD
            st = self.target.local.stat()
            self.set_header("ETag", http_files.etag_for(st))
            self.set_header("Last-Modified", http_files.last_modified_for(st))
        except OSError:
            pass  # replaced or deleted meanwhile: the client asks with HEAD
        self.write_json({"result": self.address.uri()})

    # -- POST (mkdir on the parent) ---------------------------------------------------------------

    def post(self) -> None:
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
        if not parent.local.is_dir():
            raise not_found("parent directory not found")
        new_dir = parent.local / name
        if new_dir.exists():
            raise ApiError(409, f"{name!r} already exists")
        new_dir.mkdir()
        if parent.level == "user":
            self.namespace.acl.set_read_list(parent.owner, name, acl if acl is not None else ["algo://.my/*"])
        self.write_json({"result": self.address.child(name).uri()})

    # -- PATCH (collection ACL) -------------------------------------------------------------------

    def patch(self) -> None:
        body = self.json_body()
        try:
            read = validate_acl(body.get("acl"))
        except AclError as exc:
            raise bad_request(str(exc)) from exc
        target = self.target
        if not target.is_collection:
            raise bad_request("ACLs can only be set on collections (data://<user>/<collection>)")
        Namespace.require_write(target)
        if not target.local.is_dir():
            raise not_found()
        self.namespace.acl.set_read_list(target.owner, target.collection, read)
        self.write_json({"result": {"acl": {"read": read}}})

    # -- DELETE -----------------------------------------------------------------------------------

    def delete(self) -> None:
        target = self.target
        if target.level != "path" or not self.address.segments:
            raise ApiError(403, "this directory can't be deleted")
        Namespace.require_write(target)
        st = self._stat(target)
        if not stat_module.S_ISDIR(st.st_mode):
            target.local.unlink()
            self.write_json({"result": {"deleted": 1}})
            return
        force = self.get_query_argument("force", "").lower() == "true"
        if any(target.local.iterdir()) and not force:
            raise ApiError(400, "directory is not empty (use force=true)", deleted=0)
        deleted = sum(len(files) for _d, _s, files in os.walk(target.local))
        shutil.rmtree(target.local)
        if target.is_collection:
            self.namespace.acl.forget(target.owner, target.collection)
        self.write_json({"result": {"deleted": deleted}})
