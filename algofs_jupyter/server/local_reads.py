"""The ``local-reads`` extension (docs/api-extensions.md §13): a file's open descriptor, not its bytes.

Why: a mount on the machine this server runs on read a cold file over HTTP: the server sent it (sendfile),
the mount received it, wrote it into its block cache and copied it again into the kernel's reply. On 2
cores that used ~1.4 core-s per GiB against ~0.5 for a FUSE passthrough of the same local file (issue 26).
HDFS's short-circuit local reads answer the same problem the same way: the server checks the request as it
checks a GET, opens the file and passes the descriptor over a Unix socket (``SCM_RIGHTS``); the client
reads the bytes with ``pread``.

The socket (``SOCK_SEQPACKET``, one message per request and per answer) is ``reads.sock``, mode 0666, alone
in a fresh directory of the server's (``algofs-serve-<pid>-*``, 0711: other accounts may reach the socket,
not list or add names; a killed server's is swept at the next start with the other runtime directories).
Reaching it gives nothing without a key, as reaching the TCP port gives nothing. A request is JSON
``{"authorization": "Simple <key>", "path": "data://…"}``; the answer is JSON ``{"size", "etag",
"last_modified"}`` with the descriptor attached, or ``{"error": {"status", "message", "errno"?}}`` with none,
the status and errno a GET of the path would have.
The descriptor is read-only and names one file the key may read; it keeps the bytes of the version
the answer names (``StorageBackend.open_file``). Storage whose files are not local (S3) answers 501.

What is capped: ``MAX_CONNECTIONS`` connections (more are closed at once), a request of ``MAX_REQUEST``
bytes. Every request is logged as the access log logs a GET (never the key).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

from ..private_dirs import fresh_private_dir
from .access_log import access_log, bounded_uri
from .algo_cgroups import SERVER_PREFIX
from .errors import ApiError, api_error_for, bad_request
from .namespace import Namespace
from .storage import LOCAL_READS, StorageError
from .users import UserRegistry

log = logging.getLogger("algofs.serve")

SOCKET_NAME = "reads.sock"
#: A request is a path and a key: a few KiB at most.
MAX_REQUEST = 16 << 10
#: Connections served at once (a mount keeps a few open); more are closed when accepted.
MAX_CONNECTIONS = 256

Answer = tuple[dict[str, Any], int]


class LocalReads:
    """The local-reads socket of one server, served on its event loop; storage is opened on ``threads``
    (None: the loop's default executor), as a GET's ``offload`` does."""

    def __init__(self, users: UserRegistry, namespace: Namespace, threads: Executor | None = None,
                 directory: Path | None = None):
        """``directory``: where the socket goes (default: a fresh 0711 directory of its own, removed at
        ``close``)."""
        self._own_directory = directory is None
        directory = directory or fresh_private_dir(f"{SERVER_PREFIX}{os.getpid()}-", mode=0o711)
        self.path = directory / SOCKET_NAME
        self.users = users
        self.namespace = namespace
        self.threads = threads
        self._listener: socket.socket | None = None
        self._accepting: asyncio.Task[None] | None = None
        self._connections: dict[socket.socket, asyncio.Task[None]] = {}

    def start(self) -> None:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            listener.bind(str(self.path))
            os.chmod(self.path, 0o666)
            listener.listen(64)
            listener.setblocking(False)
        except BaseException:
            listener.close()
            raise
        self._listener = listener
        self._accepting = asyncio.get_running_loop().create_task(self._accept())

    def advertised(self) -> dict[str, Any]:
        """What ``GET /v1/algofs/capabilities`` tells about the socket: its path, and the uid that serves
        it (a client checks the peer's credentials against it before it sends a key)."""
        return {"socket": str(self.path), "uid": os.geteuid()}

    async def close(self) -> None:
        tasks = [task for task in (self._accepting, *self._connections.values()) if task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with contextlib.suppress(OSError):
            self.path.unlink()
        if self._own_directory:
            with contextlib.suppress(OSError):
                self.path.parent.rmdir()

    async def _accept(self) -> None:
        assert self._listener is not None
        loop = asyncio.get_running_loop()
        while True:
            connection, _ = await loop.sock_accept(self._listener)
            if len(self._connections) >= MAX_CONNECTIONS:
                connection.close()
                continue
            connection.setblocking(False)
            self._connections[connection] = loop.create_task(self._serve(connection))

    async def _serve(self, connection: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                message = await loop.sock_recv(connection, MAX_REQUEST + 1)
                if not message:
                    return
                answer, fd = await self._answer(message)
                try:
                    # a reply of a few hundred bytes: a full buffer means a client that stops reading
                    socket.send_fds(connection, [json.dumps(answer).encode()], [fd] if fd >= 0 else [])
                finally:
                    if fd >= 0:
                        os.close(fd)
        except OSError:
            return  # the client went, or stopped reading: its connection ends
        finally:
            connection.close()
            self._connections.pop(connection, None)

    async def _answer(self, message: bytes) -> Answer:
        started, path, user = time.monotonic(), "-", "-"
        try:
            if len(message) > MAX_REQUEST:
                raise bad_request(f"a request is at most {MAX_REQUEST} bytes")
            try:
                request = json.loads(message)
            except ValueError as exc:
                raise bad_request("a request is a JSON object") from exc
            if not isinstance(request, dict) or not isinstance(request.get("path"), str):
                raise bad_request('a request is {"authorization": "Simple <key>", "path": "data://..."}')
            path = request["path"]
            authorization = request.get("authorization")
            identity = self.users.authenticate(authorization if isinstance(authorization, str) else None)
            if identity is None:
                if authorization:
                    raise ApiError(401, "Unknown or invalid API key", code=2002)
                raise ApiError(401, "authorization required", code=2001)
            user = identity.username
            target = self.namespace.readable_file(path, identity)
            if LOCAL_READS not in target.backend.capabilities:
                raise ApiError(501, f"{target.backend_name}:// keeps no local files: read it over HTTP",
                               errno="EOPNOTSUPP")
            loop = asyncio.get_running_loop()
            fd, info = await loop.run_in_executor(self.threads, target.backend.open_file, target.key)
            found: dict[str, Any] = {"size": info.size, "etag": info.etag, "last_modified": info.mtime}
            status, answer = 200, (found, fd)
        except (ApiError, StorageError) as exc:
            error = exc if isinstance(exc, ApiError) else api_error_for(exc)
            status = error.status_code
            answer = {"error": {"status": status, "message": error.message, **error.extra}}, -1
        access_log.info("%d LOCAL-READ %s %s %.1fms", status, bounded_uri(path), user,
                        1000.0 * (time.monotonic() - started))
        return answer
