"""Downloads of local files go out with ``sendfile(2)`` (server/send_file.py): same bytes, same framing,
the connection kept alive after a whole body and closed after a cut one.

The app runs in this process (``make_app`` on a tornado server in a thread) so that ``os.sendfile`` can
be counted and a file cut while it is sent; a real ``algofs serve`` answers the same GETs below."""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from tornado.httpserver import HTTPServer

from algofs_jupyter.server import send_file
from algofs_jupyter.server.app import make_app
from algofs_jupyter.testing.ports import free_ports

USER = "sf"
SIZE = 3 * send_file.SENDFILE_MIN * 4 + 12345  # several MiB, not a multiple of anything


class InProcessServer:
    def __init__(self, root: Path):
        self.key = "sf-" + secrets.token_urlsafe(16)
        self.port = free_ports(1)[0]
        self.url = f"http://127.0.0.1:{self.port}"
        self.loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(root,), daemon=True)
        self._thread.start()
        assert self._ready.wait(30)

    def _run(self, root: Path) -> None:
        asyncio.set_event_loop(self.loop)

        async def main() -> None:
            server = HTTPServer(make_app(root, {USER: self.key}))
            server.listen(self.port, "127.0.0.1")
            self._stop = asyncio.Event()
            self._ready.set()
            await self._stop.wait()
            server.stop()

        self.loop.run_until_complete(main())

    def stop(self) -> None:
        assert self._stop is not None
        self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def headers(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Simple {self.key}", **extra}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[InProcessServer, Path, bytes]]:
    root = tmp_path / "serve"
    collection = root / "data" / USER / "big"
    collection.mkdir(parents=True)
    data = os.urandom(SIZE)
    (collection / "large.bin").write_bytes(data)
    (collection / "small.bin").write_bytes(data[:1000])
    server = InProcessServer(root)
    try:
        yield server, collection / "large.bin", data
    finally:
        server.stop()


@pytest.fixture
def sendfile_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The byte counts of every ``os.sendfile`` call (asyncio's ``sock_sendfile`` makes them)."""
    calls: list[int] = []
    real = os.sendfile

    def counted(out_fd: int, in_fd: int, offset: int | None, count: int) -> int:
        sent = real(out_fd, in_fd, offset, count)
        calls.append(sent)
        return sent

    monkeypatch.setattr(os, "sendfile", counted)
    return calls


def test_a_large_download_is_sent_by_the_kernel_with_the_same_bytes(served, sendfile_calls) -> None:
    server, _, data = served
    url = f"{server.url}/v1/data/{USER}/big/large.bin"
    with requests.Session() as session:
        whole = session.get(url, headers=server.headers())
        assert whole.status_code == 200 and whole.content == data
        assert int(whole.headers["Content-Length"]) == SIZE
        assert sum(sendfile_calls) == SIZE  # every body byte went through sendfile
        start, end = 1_000_001, SIZE - 7
        part = session.get(url, headers=server.headers(Range=f"bytes={start}-{end}"))
        assert part.status_code == 206 and part.content == data[start:end + 1]
        assert part.headers["Content-Range"] == f"bytes {start}-{end}/{SIZE}"
        tail = session.get(url, headers=server.headers(Range="bytes=-100"))  # too small for sendfile
        assert tail.content == data[-100:]
        assert sum(sendfile_calls) == SIZE + (end - start + 1)
        small = session.get(f"{server.url}/v1/data/{USER}/big/small.bin", headers=server.headers())
        assert small.content == data[:1000]
        assert sum(sendfile_calls) == SIZE + (end - start + 1)
        head = session.head(url, headers=server.headers())
        assert head.status_code == 200 and head.content == b""


def test_the_connection_stays_open_after_a_sent_file_and_frames_the_next_answer(served) -> None:
    """Two GETs on one raw connection: the first body ends exactly at its Content-Length."""
    server, _, data = served
    request = (f"GET /v1/data/{USER}/big/large.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               f"Authorization: Simple {server.key}\r\n\r\n").encode()
    small = (f"GET /v1/data/{USER}/big/small.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n"
             f"Authorization: Simple {server.key}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(request + small)
        received = b""
        while received.count(b"HTTP/1.1 200") < 2 or not received.endswith(data[:1000]):
            chunk = sock.recv(1 << 20)
            assert chunk, f"connection closed after {len(received)} bytes"
            received += chunk
    first, _, rest = received.partition(b"\r\n\r\n")
    assert f"Content-Length: {SIZE}".encode() in first
    assert rest[:SIZE] == data
    assert rest[SIZE:].startswith(b"HTTP/1.1 200")


def test_a_file_cut_while_it_is_sent_closes_the_connection_short(served, monkeypatch) -> None:
    """The client must not take a short body for a whole one: the connection closes before
    Content-Length bytes, and the server goes on answering."""
    server, path, data = served
    real = os.sendfile
    cut = []

    def cutting(out_fd: int, in_fd: int, offset: int | None, count: int) -> int:
        if not cut:
            cut.append(offset)
            os.truncate(path, SIZE // 2)
        return real(out_fd, in_fd, offset, count)

    monkeypatch.setattr(os, "sendfile", cutting)
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(f"{server.url}/v1/data/{USER}/big/large.bin", headers=server.headers())
    assert cut
    again = requests.get(f"{server.url}/v1/data/{USER}/big/large.bin", headers=server.headers())
    assert again.status_code == 200 and again.content == data[:SIZE // 2]


def test_a_client_that_leaves_mid_file_does_not_stop_the_server(served) -> None:
    server, _, data = served
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall((f"GET /v1/data/{USER}/big/large.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          f"Authorization: Simple {server.key}\r\n\r\n").encode())
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    whole = requests.get(f"{server.url}/v1/data/{USER}/big/large.bin", headers=server.headers())
    assert hashlib.sha256(whole.content).digest() == hashlib.sha256(data).digest()


def test_the_real_server_serves_large_ranges_intact(api_server, http, scratch) -> None:
    """``algofs serve`` (local storage, and S3 where sendfile does not apply): ranges of a file of
    several MiB, the official framing."""
    data = os.urandom(SIZE)
    assert http("PUT", f"/v1/data/.my/{scratch}/large.bin", data=data).status_code == 200
    for start, end in ((0, SIZE - 1), (5, SIZE - 2), (SIZE - send_file.SENDFILE_MIN - 3, SIZE - 1)):
        got = http("GET", f"/v1/data/.my/{scratch}/large.bin", headers={"Range": f"bytes={start}-{end}"})
        assert got.status_code == 206 and got.content == data[start:end + 1]
