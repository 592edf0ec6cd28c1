"""Where the Algorithmia API lives: a configured remote server, or an embedded demo server started on demand.

Both the Jupyter server extension and the kernel side (magics, widget) need the same answer, so the rules live
here once: an explicit address (config or ``ALGORITHMIA_API``) wins; otherwise, when allowed, ``algofs serve
--demo`` is started under a per-user data directory so a fresh user sees data at once.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..private_dirs import make_private_dirs

if TYPE_CHECKING:  # imported when first started: a remote API needs none of the server's modules
    from ..server.embedded_server import EmbeddedServer

DEMO_USERS = ("demo", "anowell", "alice")


@dataclass(frozen=True)
class ApiEndpoint:
    """How to reach the API. ``api_key`` is excluded from ``repr`` so it never lands in logs."""

    api_address: str
    api_key: str = field(repr=False)
    username: str | None
    embedded: bool

    def public(self) -> dict:
        """The fields safe to show in status output (never the key)."""
        return {"api_address": self.api_address, "embedded_server": self.embedded, "username": self.username}


def default_data_dir() -> Path:
    """Per-user directory for the embedded server's content (shared by the server extension and kernels)."""
    from jupyter_core.paths import jupyter_data_dir

    return Path(jupyter_data_dir()) / "algofs"


def read_key_file(path: str | os.PathLike) -> str:
    return Path(path).expanduser().read_text().strip()


class ApiProvider:
    """Provides the :class:`ApiEndpoint` this Jupyter uses: the configured remote API, or the embedded demo
    server, started on first use."""

    def __init__(
        self,
        api_address: str | None = None,
        api_key: str | None = None,
        api_key_file: str | None = None,
        api_key_env: str = "ALGORITHMIA_API_KEY",
        username: str | None = None,
        embedded_root: str | os.PathLike | None = None,
        allow_embedded: bool = True,
        start_timeout: float = 60.0,
    ):
        self._api_address = (api_address or "").rstrip("/") or None
        self._api_key = api_key
        self._api_key_file = api_key_file
        self._api_key_env = api_key_env
        self._username = username
        self._embedded_root = Path(embedded_root) if embedded_root else default_data_dir() / "demo-server"
        self._allow_embedded = allow_embedded
        self._start_timeout = start_timeout
        self._server: EmbeddedServer | None = None
        self._lock = threading.Lock()

    @property
    def configured_remote(self) -> bool:
        return self._api_address is not None

    @property
    def embedded_running(self) -> bool:
        return self._server is not None

    def endpoint(self) -> ApiEndpoint:
        with self._lock:
            if self._api_address:
                return ApiEndpoint(self._api_address, self._remote_key(), self._username, embedded=False)
            if not self._allow_embedded:
                raise RuntimeError("no Algorithmia API configured and the embedded server is disabled")
            if self._server is None:
                self._server = self._start_embedded()
            server = self._server
            if server.url is None:  # set by a start() that returned; stop() doesn't clear it
                raise RuntimeError("the embedded API server has no address")
            return ApiEndpoint(server.url.rstrip("/"), server.api_key, server.username, embedded=True)

    def _remote_key(self) -> str:
        if self._api_key:
            return self._api_key
        if self._api_key_file:
            return read_key_file(self._api_key_file)
        return os.environ.get(self._api_key_env, "")

    def _start_embedded(self) -> EmbeddedServer:
        from algofs_jupyter.server.embedded_server import EmbeddedServer

        # its files are the demo users' data: not for other accounts (made 0700, or checked to be ours)
        make_private_dirs(self._embedded_root)
        server = EmbeddedServer(self._embedded_root, demo=True, one_person=True)  # its keys are only ours
        server.start(self._start_timeout)
        return server

    def close(self) -> None:
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            server.stop()
