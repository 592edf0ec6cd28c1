"""Exclusive creates on ``algo://``: ``open(p, "xb")``, ``pipe_file``/``put_file(mode="create")`` and
``mkdir`` raise FileExistsError when something is there; with the server's exclusive-create extension
(``If-None-Match: *``) many clients racing for one name leave exactly one winner; without it (the hosted
API, ``extensions=False``) a check first, documented as racy."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import fsspec
import pytest

from algofs_jupyter.fs import AlgoFileSystem
from algofs_jupyter.server.embedded_server import EmbeddedServer

RACERS = 12


def _fs(server: EmbeddedServer, extensions: bool = True) -> AlgoFileSystem:
    return fsspec.filesystem("algo", api_address=server.url, api_key=server.api_key, extensions=extensions,
                             skip_instance_cache=True)


@pytest.fixture(scope="module")
def fs(api_server: EmbeddedServer) -> AlgoFileSystem:
    return _fs(api_server)


@pytest.fixture
def collection(fs: AlgoFileSystem) -> Iterator[str]:
    name = f"data/demo/excl-{uuid.uuid4().hex[:8]}"
    fs.mkdir(name)
    try:
        yield name
    finally:
        fs.rm(name, recursive=True)


@pytest.mark.parametrize("extensions", [True, False], ids=["extension", "plain-api"])
def test_open_xb_raises_file_exists_for_a_file_or_a_folder(api_server: EmbeddedServer, collection: str,
                                                          extensions: bool) -> None:
    fs = _fs(api_server, extensions)
    path = f"{collection}/made.bin"
    with fs.open(path, "xb") as new:
        new.write(b"first")
    assert fs.cat_file(path) == b"first"
    with pytest.raises(FileExistsError):
        fs.open(path, "xb")
    fs.mkdir(f"{collection}/folder")
    with pytest.raises(FileExistsError):
        fs.open(f"{collection}/folder", "xb")
    with pytest.raises(FileExistsError):
        fs.pipe_file(path, b"second", mode="create")
    assert fs.cat_file(path) == b"first"
    fs.pipe_file(path, b"third", mode="overwrite")
    assert fs.cat_file(path) == b"third"


def test_put_file_mode_create(fs: AlgoFileSystem, collection: str, tmp_path) -> None:
    local = tmp_path / "local.txt"
    local.write_bytes(b"local bytes")
    fs.put_file(str(local), f"{collection}/up.txt", mode="create")
    assert fs.cat_file(f"{collection}/up.txt") == b"local bytes"
    with pytest.raises(FileExistsError):
        fs.put(str(local), f"{collection}/up.txt", mode="create")


@pytest.fixture
def backend_collection(backend_api_server: EmbeddedServer) -> Iterator[tuple[EmbeddedServer, str]]:
    """A fresh collection on the demo server of each storage (local, S3)."""
    fs = _fs(backend_api_server)
    name = f"data/demo/excl-{uuid.uuid4().hex[:8]}"
    fs.mkdir(name)
    try:
        yield backend_api_server, name
    finally:
        fs.rm(name, recursive=True)


def test_racing_exclusive_creates_leave_exactly_one_winner(
        backend_collection: tuple[EmbeddedServer, str]) -> None:
    """``RACERS`` clients (each its own session) open one new name with ``xb`` at the same moment."""
    server, collection = backend_collection
    clients = [_fs(server) for _ in range(RACERS)]
    assert clients[0].supports("exclusive-create", collection), "the server advertises exclusive-create"
    path = f"{collection}/contended.txt"
    start = threading.Barrier(RACERS)
    outcomes: list[str] = [""] * RACERS

    def race(index: int) -> None:
        start.wait()
        try:
            with clients[index].open(path, "xb") as handle:
                handle.write(f"racer {index}".encode())
            outcomes[index] = "won"
        except FileExistsError:
            outcomes[index] = "exists"
        except Exception as exc:  # noqa: BLE001 - reported below
            outcomes[index] = repr(exc)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(set(outcomes)) == ["exists", "won"], outcomes
    winner = outcomes.index("won")
    assert outcomes.count("won") == 1
    assert clients[0].cat_file(path) == f"racer {winner}".encode()


def test_racing_pipe_file_create_leaves_exactly_one_winner(
        backend_collection: tuple[EmbeddedServer, str]) -> None:
    server, collection = backend_collection
    clients = [_fs(server) for _ in range(RACERS)]
    path = f"{collection}/piped.txt"
    start = threading.Barrier(RACERS)
    won: list[int] = []

    def race(index: int) -> None:
        start.wait()
        try:
            clients[index].pipe_file(path, f"racer {index}".encode() * 1000, mode="create")
            won.append(index)
        except FileExistsError:
            pass

    threads = [threading.Thread(target=race, args=(i,)) for i in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1, won
    assert clients[0].cat_file(path) == f"racer {won[0]}".encode() * 1000


def test_mkdir_of_an_existing_path(fs: AlgoFileSystem, collection: str) -> None:
    folder, file = f"{collection}/sub", f"{collection}/file.txt"
    fs.mkdir(folder)
    fs.pipe_file(file, b"x")
    with pytest.raises(FileExistsError):
        fs.mkdir(folder)
    with pytest.raises(FileExistsError):
        fs.mkdir(folder, exist_ok=False)
    fs.mkdir(folder, exist_ok=True)
    for make in (lambda: fs.mkdir(file), lambda: fs.mkdir(file, exist_ok=True),
                 lambda: fs.makedirs(file, exist_ok=True)):
        with pytest.raises(FileExistsError):
            make()
    assert fs.isfile(file) and fs.isdir(folder)
