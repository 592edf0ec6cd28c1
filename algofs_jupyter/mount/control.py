"""The daemon's control socket: other processes (``algofs status``, the Jupyter layer) ask for status or
clear the cache. One JSON request per connection (``{"cmd": "status"}``), one JSON answer
(``{"ok": true, "result": {...}}`` or ``{"ok": false, "error": "..."}``). The socket lives in a private
per-user directory (mode 0700) and its name is derived from the mountpoint; see docs/control.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

COMMANDS = ("status", "clear_cache")
MAX_REQUEST = 64 * 1024


def runtime_dir() -> Path:
    """``$ALGOFS_RUNTIME_DIR`` or ``<tmp>/algofs-<uid>``, created 0700 and checked to be ours."""
    default = os.path.join(tempfile.gettempdir(), f"algofs-{os.getuid()}")
    base = os.environ.get("ALGOFS_RUNTIME_DIR") or default
    path = Path(base)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = path.stat()
    if st.st_uid != os.getuid():
        raise PermissionError(f"{path} is not owned by the current user")
    if st.st_mode & 0o077:
        os.chmod(path, 0o700)
    return path


def socket_path(mountpoint: str | os.PathLike) -> Path:
    absolute = os.path.abspath(os.fspath(mountpoint))  # resolve the parent only: never stat the mount
    real = os.path.join(os.path.realpath(os.path.dirname(absolute)), os.path.basename(absolute))
    digest = hashlib.sha256(real.encode("utf-8", "surrogateescape")).hexdigest()[:20]
    return runtime_dir() / f"mount-{digest}.sock"


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


def query(mountpoint: str | os.PathLike, cmd: str = "status", timeout: float = 10.0) -> dict:
    """Ask the daemon of ``mountpoint``; raises ConnectionError when no daemon answers."""
    path = socket_path(mountpoint)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            sock.sendall(json.dumps({"cmd": cmd}).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
    except (TimeoutError, FileNotFoundError, ConnectionRefusedError) as exc:
        raise ConnectionError(f"no algofs daemon answers for {mountpoint} ({exc})") from exc
    answer = json.loads(data or b"{}")
    if not answer.get("ok"):
        raise RuntimeError(answer.get("error") or "control request failed")
    return answer["result"]
