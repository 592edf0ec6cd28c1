"""Fixtures for the server tests: official clients for the demo users, scratch collections, raw HTTP."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import Algorithmia
import pytest
import requests

from algofs_jupyter.server.embedded_server import EmbeddedServer
from algofs_jupyter.server.users import DEMO_USERS


def make_client(server: EmbeddedServer, user: str) -> Algorithmia.client.Client:
    return Algorithmia.client(api_key=DEMO_USERS[user], api_address=server.url)


@pytest.fixture(scope="session")
def api_server(backend_api_server: EmbeddedServer) -> EmbeddedServer:
    """The demo server, once on local storage and once on S3 (tests/s3_fixtures.py)."""
    return backend_api_server


@pytest.fixture(scope="session")
def client(api_server: EmbeddedServer) -> Algorithmia.client.Client:
    """The official client as user ``demo``."""
    return make_client(api_server, "demo")


@pytest.fixture(scope="session")
def alice(api_server: EmbeddedServer) -> Algorithmia.client.Client:
    return make_client(api_server, "alice")


@pytest.fixture
def scratch(client: Algorithmia.client.Client) -> Iterator[str]:
    """A fresh collection ``data://.my/<name>`` owned by demo, removed afterwards."""
    name = "t" + uuid.uuid4().hex[:10]
    client.dir(f"data://.my/{name}").create()
    try:
        yield name
    finally:
        client.dir(f"data://.my/{name}").delete(force=True)


@pytest.fixture(scope="session")
def http(api_server: EmbeddedServer) -> Callable[..., requests.Response]:
    """``http(method, path, key="demo", **kwargs)``: a raw request with the key of a demo user."""
    session = requests.Session()

    def call(method: str, path: str, user: str | None = "demo", **kwargs) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        if user is not None:
            headers.setdefault("Authorization", DEMO_USERS[user])
        return session.request(method, api_server.url + path, headers=headers, **kwargs)

    return call


def raw_request(server: EmbeddedServer, request: bytes) -> tuple[int, bytes]:
    """Send bytes as-is (no client-side path normalisation); returns (status, body)."""
    host, port = urlsplit(server.url).hostname, urlsplit(server.url).port
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    response = b"".join(chunks)
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


@pytest.fixture
def raw_get(api_server: EmbeddedServer) -> Callable[[str], tuple[int, bytes]]:
    """``raw_get("/v1/data/...")`` with demo's key and ``Connection: close``, path sent verbatim."""

    def call(path: str, method: str = "GET") -> tuple[int, bytes]:
        request = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {DEMO_USERS['demo']}\r\n"
                   "Connection: close\r\n\r\n").encode("latin-1")
        return raw_request(api_server, request)

    return call
