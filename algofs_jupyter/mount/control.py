"""The daemon's control socket: other processes (``algofs status``, the Jupyter layer) ask for status or
clear the cache. One JSON request per connection (``{"cmd": "status"}``), one JSON answer
(``{"ok": true, "result": {...}}`` or ``{"ok": false, "error": "..."}``). The socket lives in a private
per-user directory (mode 0700, owner checked without following links) and its name is derived from the
mountpoint; a client only talks to a daemon of its own uid (``SO_PEERCRED``). See docs/control.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import struct
import threading
from collections.abc import Callable
from pathlib import Path

from ..private_dirs import find_runtime_dirs, make_private_dirs, private_runtime_dir
from .options import default_cache_dir

COMMANDS = ("status", "clear_cache")
MAX_REQUEST = 64 * 1024
#: An explicit runtime directory (made if missing; it must be a directory of ours: no fallback).
RUNTIME_DIR_ENV = "ALGOFS_RUNTIME_DIR"
#: In the user's cache directory (``~/.cache/algofs``): where the runtime directory went when the stable
#: name was taken by another account, so clients find the socket there.
RUNTIME_RECORD = "runtime-dir"


def runtime_name() -> str:
    return f"algofs-{os.getuid()}"


def runtime_record() -> Path:
    return default_cache_dir() / RUNTIME_RECORD


def runtime_dir() -> Path:
    """Where this daemon puts its socket: ``$ALGOFS_RUNTIME_DIR``, else ``<runtime base>/algofs-<uid>``
    (``$XDG_RUNTIME_DIR`` when it is ours, else the temp directory), created 0700 or checked to be ours;
    if another account holds that name, a fresh private directory recorded in ``runtime_record()``."""
    explicit = os.environ.get(RUNTIME_DIR_ENV)
    if explicit:
        return make_private_dirs(explicit)
    return private_runtime_dir(runtime_name(), record=runtime_record())


def _socket_name(mountpoint: str | os.PathLike) -> str:
    absolute = os.path.abspath(os.fspath(mountpoint))  # resolve the parent only: never stat the mount
    real = os.path.join(os.path.realpath(os.path.dirname(absolute)), os.path.basename(absolute))
    digest = hashlib.sha256(real.encode("utf-8", "surrogateescape")).hexdigest()[:20]
    return f"mount-{digest}.sock"


def socket_path(mountpoint: str | os.PathLike) -> Path:
    """The socket a daemon of ``mountpoint`` serves on (creates the runtime directory)."""
    return runtime_dir() / _socket_name(mountpoint)


def socket_candidates(mountpoint: str | os.PathLike) -> list[Path]:
    """Where a daemon of ours for ``mountpoint`` may serve, creating nothing: existing sockets in the
    explicit runtime directory, or in the stable ones and the recorded fallback (``find_runtime_dirs``)."""
    explicit = os.environ.get(RUNTIME_DIR_ENV)
    directories = [Path(explicit)] if explicit else find_runtime_dirs(runtime_name(), runtime_record())
    name = _socket_name(mountpoint)
    return [directory / name for directory in directories if (directory / name).exists()]


def remove_sockets(mountpoint: str | os.PathLike) -> None:
    """Remove the sockets a dead daemon of ``mountpoint`` left (in our own directories only)."""
    for path in socket_candidates(mountpoint):
        path.unlink(missing_ok=True)


class ControlServer:
    """Serves ``handlers[cmd]() -> dict`` on the mount's socket from a daemon thread."""

    def __init__(self, mountpoint: str | os.PathLike, handlers: dict[str, Callable[[], dict]]):
        self.path = socket_path(mountpoint)
        self.handlers = handlers
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.path.unlink(missing_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(self.path))
        os.chmod(self.path, 0o600)
        sock.listen(16)
        self._sock = sock
        self._thread = threading.Thread(target=self._serve, args=(sock,), name="algofs-control",
                                        daemon=True)
        self._thread.start()

    def _serve(self, sock: socket.socket) -> None:
        """Accept until ``stop`` closes ``sock`` (passed in: ``stop`` clears ``_sock`` meanwhile)."""
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(10)
            try:
                data = b""
                while not data.endswith(b"\n") and len(data) < MAX_REQUEST:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                request = json.loads(data or b"{}")
                handler = self.handlers.get(request.get("cmd"))
                if handler is None:
                    answer = {"ok": False, "error": f"unknown command {request.get('cmd')!r}"}
                else:
                    answer = {"ok": True, "result": handler()}
            except Exception as exc:  # a bad request must not kill the daemon
                answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            try:
                conn.sendall(json.dumps(answer).encode() + b"\n")
            except OSError:
                pass

    def stop(self) -> None:
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._sock.close()
            self._sock = None
        self.path.unlink(missing_ok=True)


def _peer_uid(sock: socket.socket) -> int:
    _pid, uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                        struct.calcsize("3i")))
    return uid


def _ask(path: Path, cmd: str, timeout: float) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        if _peer_uid(sock) != os.geteuid():
            raise ConnectionRefusedError(f"{path} is served by another account")
        sock.sendall(json.dumps({"cmd": cmd}).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


def query(mountpoint: str | os.PathLike, cmd: str = "status", timeout: float = 10.0) -> dict:
    """Ask the daemon of ``mountpoint``; raises ConnectionError when no daemon answers."""
    candidates = socket_candidates(mountpoint)
    if not candidates:
        raise ConnectionError(f"no algofs daemon answers for {mountpoint} (no control socket)")
    errors = []
    for path in candidates:  # a stale socket of a dead daemon may come before the live one
        try:
            data = _ask(path, cmd, timeout)
            break
        except (TimeoutError, FileNotFoundError, ConnectionRefusedError) as exc:
            errors.append(f"{path}: {exc}")
    else:
        raise ConnectionError(f"no algofs daemon answers for {mountpoint} ({'; '.join(errors)})")
    answer = json.loads(data or b"{}")
    if not answer.get("ok"):
        raise RuntimeError(answer.get("error") or "control request failed")
    return answer["result"]
