"""A real HTTP proxy on 127.0.0.1 between a client (mount, fsspec, Jupyter) and ``algofs serve``.

It counts what the client sends (requests and body bytes per method) and can inject faults: a share of
API requests answered 503 before they reach the server, a share dropped (the connection closed after the
request was read, with no answer: a transport error after sending), and ``hide_extensions`` answers 404
for ``/v1/algofs/*`` (a server without the extensions, like the hosted API). Used by the write tests and
bench/writes.py as an independent measure of the bytes sent.
"""

from __future__ import annotations

import http.client
import random
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import IO
from urllib.parse import urlsplit

HOP_HEADERS = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "upgrade"}
COPY_CHUNK = 1 << 20


class _LimitedReader:
    """``length`` bytes of the client's request body, read as the upstream request sends them."""

    def __init__(self, stream: IO[bytes], length: int):
        self.stream, self.left = stream, length

    def read(self, size: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        size = self.left if size is None or size < 0 else min(size, self.left)
        data = self.stream.read(size)
        self.left -= len(data)
        return data


class FaultProxy:
    def __init__(self, upstream: str, fail_ratio: float = 0.0, hide_extensions: bool = False,
                 seed: int = 12, drop_ratio: float = 0.0, port: int = 0):
        parts = urlsplit(upstream)
        self.upstream_host, self.upstream_port = parts.hostname or "127.0.0.1", parts.port or 80
        self.fail_ratio = fail_ratio
        self.hide_extensions = hide_extensions
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        self.requests: Counter[str] = Counter()  # method -> requests that reached the server
        self.body_bytes: Counter[str] = Counter()  # method -> request body bytes that reached it
        self.injected = 0
        self.drop_ratio = drop_ratio
        self.dropped = 0
        self.paths: list[tuple[str, str]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.body_bytes.clear()
            self.injected = 0
            self.dropped = 0
            self.paths.clear()

    def _should_fail(self, path: str) -> bool:
        if not self.fail_ratio or not path.startswith("/v1/"):
            return False
        with self.lock:
            failing = self.random.random() < self.fail_ratio
            self.injected += failing
            return failing

    def _should_drop(self, path: str) -> bool:
        if not self.drop_ratio or not path.startswith("/v1/"):
            return False
        with self.lock:
            dropping = self.random.random() < self.drop_ratio
            self.dropped += dropping
            return dropping

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            upstream: http.client.HTTPConnection | None = None

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if proxy.hide_extensions and self.path.startswith("/v1/algofs/"):
                    self.rfile.read(length)
                    return self._answer(404, b'{"error": {"message": "not found"}}')
                if proxy._should_drop(self.path):
                    self.rfile.read(length)
                    self.close_connection = True  # no answer at all
                    return None
                if proxy._should_fail(self.path):
                    self.rfile.read(length)
                    return self._answer(503, b'{"error": {"message": "injected"}}')
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
                body = _LimitedReader(self.rfile, length) if length else None
                with proxy.lock:
                    proxy.requests[self.command] += 1
                    proxy.body_bytes[self.command] += length
                    proxy.paths.append((self.command, self.path))
                if self.upstream is None:
                    self.upstream = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port,
                                                               timeout=120)
                try:
                    self.upstream.request(self.command, self.path, body=body, headers=headers)
                    response = self.upstream.getresponse()
                except (OSError, http.client.HTTPException):
                    self.upstream.close()
                    self.upstream = None
                    return self._answer(502, b'{"error": {"message": "upstream failed"}}')
                self.send_response(response.status, response.reason)
                for key, value in response.getheaders():
                    if key.lower() not in HOP_HEADERS and key.lower() != "content-length":
                        self.send_header(key, value)
                data_length = response.getheader("Content-Length")
                if self.command == "HEAD" or data_length is not None:
                    if data_length is not None:
                        self.send_header("Content-Length", data_length)
                    self.end_headers()
                    while self.command != "HEAD":
                        chunk = response.read(COPY_CHUNK)
                        if not chunk:
                            break
                        self.wfile.write(chunk)
                else:
                    data = response.read()
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                response.close()

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = do_PATCH = _relay

        return Handler
