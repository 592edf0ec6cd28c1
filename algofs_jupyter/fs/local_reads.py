"""``LocalReads``: the client of a server's ``local-reads`` socket (docs/api-extensions.md §13).

A server on this machine hands out an open, read-only descriptor of a file the key may read, instead of
its bytes over HTTP; the caller reads it with ``pread`` or copies it. ``LocalOpener`` (what the mount's
``ServerFiles`` and ``AlgoFileSystem`` ask) uses it only when the server advertised the socket in its
capabilities and the API address is a loopback address: the socket path means something only on the
server's machine, and a key is sent to nothing else.

Before a connection carries a key, its peer's credentials (``SO_PEERCRED``) must show the uid the server
advertised over HTTP: after the server has gone, its socket's name can't be taken over by another account
and fed keys. Connections are kept (at most ``POOL`` idle) and used by one request at a time; every
request has the session's deadline.
"""

from __future__ import annotations

import array
import errno
import ipaddress
import json
import os
import socket
import struct
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit

from . import api_paths
from .api_capabilities import LOCAL_READS
from .api_errors import error_for_status
from .data_api import DataClient

#: Idle connections kept for the next request (a mount opens files from several FUSE threads).
POOL = 4
#: An answer is a few hundred bytes; more is not an answer of this protocol.
MAX_ANSWER = 64 << 10
_UCRED = struct.Struct("3i")  # pid, uid, gid


@dataclass(frozen=True)
class LocalFile:
    """An open descriptor of a server file (owned by whoever got it) and the version it holds."""

    fd: int
    size: int
    etag: str
    mtime: float

    def holds(self, size: int, etag: str) -> bool:
        """Whether this is the version of ``size`` bytes and ETag ``etag`` ("": unknown, size alone)."""
        return self.size == size and (not etag or self.etag == etag)

    def read(self, start: int, end: int) -> bytes | None:
        """Bytes ``start`` to ``end`` (clipped to the version's size); None when fewer are there, which the
        server's contract rules out (a version is never cut short) and the caller then reads over HTTP."""
        want, parts = max(min(end, self.size) - start, 0), []
        while want > 0:
            chunk = os.pread(self.fd, want, start)  # one call up to ~2 GiB, Linux's cap per read
            if not chunk:
                return None
            parts.append(chunk)
            start, want = start + len(chunk), want - len(chunk)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def copy_to(self, out_fd: int) -> int:
        """The whole version into ``out_fd`` at its position, copied by the kernel (``copy_file_range``,
        else ``sendfile``: another file system, or a kernel without it); the byte count. EIO when the
        version ends early."""
        done = 0
        while done < self.size:
            try:
                count = os.copy_file_range(self.fd, out_fd, self.size - done, done)
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                    raise
                count = os.sendfile(out_fd, self.fd, done, self.size - done)
            if count == 0:
                raise OSError(errno.EIO, f"the server's file ended after {done} of {self.size} bytes")
            done += count
        return done


def copy_and_close(found: LocalFile, destination: str | os.PathLike) -> int:
    """``found``'s whole version into ``destination`` (made or emptied); its descriptor closed either way.
    The byte count."""
    try:
        with open(destination, "wb") as out:
            return found.copy_to(out.fileno())
    finally:
        os.close(found.fd)


class LocalReads:
    def __init__(self, path: str, server_uid: int, authorization: str | None, timeout: float):
        self.path = path
        self.server_uid = server_uid
        self._authorization = authorization
        self.timeout = timeout
        self._lock = threading.Lock()
        self._idle: list[socket.socket] = []  # guarded by _lock

    def __repr__(self) -> str:  # never the key
        return f"LocalReads({self.path!r})"

    def open(self, uri: str) -> LocalFile:
        """An open descriptor of data URI ``uri`` (not percent-encoded). Raises the OSError a GET of it
        would raise (FileNotFoundError, PermissionError, ...), ConnectionError when the socket can't be
        reached or its peer is not the server, TimeoutError past the deadline."""
        request = json.dumps({"authorization": self._authorization, "path": uri}).encode()
        connection = self._connection()
        try:
            connection.sendall(request)
            message, fds = _receive(connection)
        except BaseException:
            connection.close()
            raise
        try:
            if not message:
                raise ConnectionError(f"{self.path}: the server closed the connection")
            answer = json.loads(message)
            error = answer.get("error") if isinstance(answer, dict) else None
            if isinstance(error, dict):
                raise error_for_status(int(error.get("status") or 500), str(error.get("message") or ""),
                                       uri, error)
            if len(fds) != 1 or not isinstance(answer, dict):
                raise ConnectionError(f"{self.path}: not an answer of the local-reads protocol")
            found = LocalFile(fds[0], int(answer["size"]), str(answer.get("etag") or ""),
                              float(answer.get("last_modified") or 0))
        except BaseException:
            for fd in fds:
                _close(fd)
            connection.close()
            raise
        self._give_back(connection)
        return found

    def _connection(self) -> socket.socket:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC)
        try:
            connection.settimeout(self.timeout)
            try:
                connection.connect(self.path)
            except (FileNotFoundError, PermissionError) as exc:  # gone (or restarted elsewhere); not ours
                raise ConnectionRefusedError(f"{self.path}: {exc.strerror}") from exc
            _pid, uid, _gid = _UCRED.unpack(connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                                  _UCRED.size))
            if uid != self.server_uid:
                raise ConnectionRefusedError(f"{self.path} is served by uid {uid}, not the server's "
                                             f"{self.server_uid}: not used")
        except BaseException:
            connection.close()
            raise
        return connection

    def _give_back(self, connection: socket.socket) -> None:
        with self._lock:
            if len(self._idle) < POOL:
                self._idle.append(connection)
                return
        connection.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()


def local_reads_of(client: DataClient) -> LocalReads | None:
    """The local-reads client for ``client``'s server, or None: the server did not advertise the socket
    (or capabilities are not known yet), or the API address is not a loopback address."""
    capabilities = client.known_capabilities
    if capabilities is None or capabilities.local_reads is None:  # set only with the extension
        return None
    if not is_loopback(client.session.api_address):
        return None
    path, uid = capabilities.local_reads
    return LocalReads(path, uid, client.session.authorization, client.session.timeout)


class LocalOpener:
    """``opener(path)``: the server's own file at layout path ``path`` through ``client``'s local-reads
    socket, for storage that offers it; None where it offers none. Raises ConnectionError when the socket
    can't be used (the server may have restarted with another one: the capabilities are asked again at
    the next open), another OSError for the path's own error (what its GET would raise)."""

    def __init__(self, client: DataClient):
        self.client = client
        self._lock = threading.Lock()
        self._reads: LocalReads | None = None  # guarded by _lock; made at the first use

    def __call__(self, path: str) -> LocalFile | None:
        capabilities = self.client.capabilities()
        if self.client.known_capabilities is None:
            raise ConnectionError("the server's capabilities could not be asked")
        parts = api_paths.split_path(path)
        if not parts or not capabilities.supports(LOCAL_READS, parts[0]):
            return None
        with self._lock:
            if self._reads is None:
                self._reads = local_reads_of(self.client)
            reads = self._reads
        if reads is None:
            return None
        try:
            return reads.open(api_paths.data_uri(parts))
        except ConnectionError:
            self.close()
            self.client.forget_capabilities()
            raise

    def close(self) -> None:
        with self._lock:
            reads, self._reads = self._reads, None
        if reads is not None:
            reads.close()


def is_loopback(address: str) -> bool:
    host = urlsplit(address).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _receive(connection: socket.socket) -> tuple[bytes, list[int]]:
    """One answer and the descriptors it carries, close-on-exec from the start (``socket.recv_fds`` does
    not ask for that: a child the daemon starts would inherit them)."""
    fds = array.array("i")
    message, ancillary, _flags, _address = connection.recvmsg(
        MAX_ANSWER, socket.CMSG_SPACE(4 * fds.itemsize), socket.MSG_CMSG_CLOEXEC)
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[:len(data) - len(data) % fds.itemsize])
    return message, list(fds)


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass
