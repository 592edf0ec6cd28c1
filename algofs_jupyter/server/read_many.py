"""``POST /v1/algofs/read-many {"paths": [...]}``: many small files in one answer (api-extensions.md §12).

A data loader's mount prefetches the small files of a directory that shuffled readers go through. One GET
per file costs this server ~0.8 ms of CPU and the mount ~0.9 ms (measured on loopback, issue 26), more than
reading a 16 KiB file does; one request for 32 files pays that once. Each path is resolved and checked
exactly as a GET of it would be (``Namespace.resolve`` + ``require_read``): a path the caller may not read
gets the error its GET would get, in its own entry, and the other files are still answered.

The answer (``Content-Type: application/vnd.algofs.files``) is an index, then the bytes::

    <decimal length of the index>\\n<index: JSON {"files": [entry, ...]}><bytes of each file, in order>

An entry is ``{"path", "size", "etag", "last_modified"}`` for a file whose ``size`` bytes follow, or
``{"path", "error": {"status", "message", "errno"?}}`` for one that is not answered (no bytes follow).
At most ``MAX_PATHS`` paths per request (more: 400); a file that would take the answer past ``MAX_BYTES``
gets a 413 entry and is left for a GET of its own.
"""

from __future__ import annotations

import json

from .errors import ApiError, api_error_for, bad_request
from .extension_handlers import ExtensionHandler
from .storage import IsADirectory, StorageError

CONTENT_TYPE = "application/vnd.algofs.files"
#: Paths per request, and bytes of file data per answer: an answer is held in memory until the socket
#: takes it, so a client that stops reading holds at most this much of the server's memory (twice a
#: GET's 1 MiB chunk). The mount asks for at most 2 MiB; any file can be read with a GET.
MAX_PATHS = 256
MAX_BYTES = 2 << 20

Entry = dict[str, object]


class ReadManyHandler(ExtensionHandler):
    async def post(self) -> None:  # answers bytes, not ExtensionHandler's result
        paths = self.body().get("paths")
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise bad_request('"paths" must be a list of data URIs')
        if len(paths) > MAX_PATHS:
            raise bad_request(f"at most {MAX_PATHS} paths per read-many")
        entries, blobs = await self.offload(self.read_all, paths)
        index = json.dumps({"files": entries}).encode("utf-8")
        self.set_header("Content-Type", CONTENT_TYPE)
        self.set_header("Content-Length", str(len(index) + len(str(len(index))) + 1 + sum(map(len, blobs))))
        self.write(b"%d\n" % len(index))
        self.write(index)
        for blob in blobs:
            self.write(blob)
        self.finish()

    def read_all(self, paths: list[str]) -> tuple[list[Entry], list[bytes]]:
        entries: list[Entry] = []
        blobs: list[bytes] = []
        room = MAX_BYTES
        for uri in paths:
            try:
                entry, data = self.read_one(uri, room)
            except (ApiError, StorageError) as exc:
                error = exc if isinstance(exc, ApiError) else api_error_for(exc)
                entry, data = {"path": uri, "error": {"status": error.status_code, "message": error.message,
                                                      **error.extra}}, b""
            entries.append(entry)
            if data:
                blobs.append(data)
                room -= len(data)
        return entries, blobs

    def read_one(self, uri: str, room: int) -> tuple[Entry, bytes]:
        """What a GET of ``uri`` would answer, as an entry and its bytes."""
        target = self.namespace.readable_file(uri, self.identity)
        info = target.backend.info(target.key)
        if info.is_dir:
            raise IsADirectory("path is a directory")
        if info.size > room:
            raise ApiError(413, f"{info.size} bytes do not fit in this answer: GET the file", errno="EFBIG")
        data = b"".join(target.backend.read(target.key, 0, info.size)) if info.size else b""
        if len(data) != info.size:
            raise ApiError(409, "the file changed while it was read: GET it", errno="ESTALE")
        return {"path": uri, "size": info.size, "etag": info.etag, "last_modified": info.mtime}, data
