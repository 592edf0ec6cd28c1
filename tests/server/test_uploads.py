"""Uploads stream to disk and land atomically; big transfers keep the server's memory bounded."""

from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from waiting import wait_until

from algofs_jupyter.server.embedded_server import EmbeddedServer
from algofs_jupyter.server.users import DEMO_USERS
from algofs_jupyter.testing.rss import RssSampler

MiB = 1024 * 1024


def partial_files(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.startswith(".algofs-partial-")]


def test_interrupted_upload_keeps_previous_version(api_server, http, scratch):
    path = f"/v1/data/.my/{scratch}/doc.bin"
    directory = api_server.root / "data" / "demo" / scratch
    http("PUT", path, data=b"version one")
    url = urlsplit(api_server.url)
    with socket.create_connection((url.hostname, url.port)) as sock:
        sock.sendall((f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {DEMO_USERS['demo']}\r\n"
                      f"Content-Length: {64 * MiB}\r\n\r\n").encode())
        sock.sendall(b"\x00" * (4 * MiB))
        # the body is being streamed to a hidden temp file next to the destination ...
        assert wait_until(lambda: partial_files(directory), 15.0)
        # ... that no listing shows, while readers still get the previous version
        listing = http("GET", f"/v1/data/.my/{scratch}").json()
        assert [f["filename"] for f in listing["files"]] == ["doc.bin"]
        assert http("GET", path).content == b"version one"
    # connection dropped mid-body: previous version intact, temp file gone
    assert wait_until(lambda: not partial_files(directory), 15.0)
    assert http("GET", path).content == b"version one"
    assert sorted(p.name for p in directory.iterdir()) == ["doc.bin"]


def test_completed_upload_replaces_atomically(api_server, http, scratch):
    path = f"/v1/data/.my/{scratch}/doc.bin"
    http("PUT", path, data=b"old")
    assert http("PUT", path, data=b"new" * 1000).status_code == 200
    assert http("GET", path).content == b"new" * 1000
    assert partial_files(api_server.root / "data" / "demo" / scratch) == []


def test_leftover_temp_files_are_swept_at_start(tmp_path):
    with EmbeddedServer(tmp_path, demo=True, large_file_mb=0) as server:
        collection = server.root / "data" / "demo" / "datasets"
    leftover = collection / ".algofs-partial-deadbeef"
    leftover.write_bytes(b"partial")
    with EmbeddedServer(tmp_path, demo=True, large_file_mb=0):
        assert not leftover.exists()
        assert (collection / "cities.csv").exists()


def write_test_file(path: Path, size: int) -> str:
    """Non-repeating content (a counter in every MiB of a random block); returns its sha256."""
    block = bytearray(os.urandom(MiB))
    digest = hashlib.sha256()
    with open(path, "wb") as handle:
        for index in range(size // MiB):
            block[:8] = index.to_bytes(8, "little")
            digest.update(block)
            handle.write(block)
    return digest.hexdigest()


@pytest.mark.slow
def test_1gib_upload_and_download_round_trip_with_bounded_memory(api_server, scratch, tmp_path):
    size = 1024 * MiB
    source = tmp_path / "big.bin"
    expected = write_test_file(source, size)
    url = f"{api_server.url}/v1/data/.my/{scratch}/big.bin"
    headers = {"Authorization": api_server.api_key}

    sampler = RssSampler(api_server.pid)
    sampler.start()
    try:
        with open(source, "rb") as body:
            response = requests.put(url, data=body, headers=headers, timeout=600)
        assert response.status_code == 200, response.text
        stored = api_server.root / "data" / "demo" / scratch / "big.bin"
        assert stored.stat().st_size == size
        source.unlink()  # free the disk space before downloading

        digest, received = hashlib.sha256(), 0
        with requests.get(url, headers=headers, stream=True, timeout=600) as download:
            assert download.status_code == 200
            assert int(download.headers["Content-Length"]) == size
            for chunk in download.iter_content(MiB):
                digest.update(chunk)
                received += len(chunk)
    finally:
        growth = sampler.stop()
        print(f"server RSS growth during 1 GiB up+down: {growth / MiB:.1f} MiB")
    assert received == size
    assert digest.hexdigest() == expected
    assert growth < 200 * MiB, f"server RSS grew by {growth / MiB:.0f} MiB during the 1 GiB transfers"
