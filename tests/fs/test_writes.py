"""AlgoFileSystem writes as fsspec users expect (issue 12), against a real ``algofs serve``.

A counting proxy (tests/fault_proxy.py) measures the bytes sent and injects 503s; a second proxy hides
the extensions, as a server without them would.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from fault_proxy import FaultProxy

from algofs_jupyter.fs import AlgoFileSystem
from algofs_jupyter.server.embedded_server import EmbeddedServer


@pytest.fixture(scope="module")
def proxy(api_server: EmbeddedServer) -> Iterator[FaultProxy]:
    with FaultProxy(api_server.url) as running:
        yield running


@pytest.fixture(scope="module")
def fs(proxy: FaultProxy, api_server: EmbeddedServer) -> AlgoFileSystem:
    return AlgoFileSystem(proxy.url, api_server.api_key, skip_instance_cache=True)


@pytest.fixture
def coll(api_server: EmbeddedServer) -> Iterator[str]:
    direct = AlgoFileSystem(api_server.url, api_server.api_key, skip_instance_cache=True)
    name = f"data/demo/fsw-{uuid.uuid4().hex[:8]}"
    direct.mkdir(name)
    try:
        yield name
    finally:
        direct.rm(name, recursive=True)


def test_writing_a_nested_path_creates_the_missing_folders(fs: AlgoFileSystem, coll: str) -> None:
    fs.pipe(f"{coll}/a/b/c.csv", b"x,y\n")
    assert fs.cat(f"{coll}/a/b/c.csv") == b"x,y\n"
    with fs.open(f"{coll}/other/deep/file.txt", "wb") as handle:
        handle.write(b"written")
    assert fs.isdir(f"{coll}/other/deep")
    strict = AlgoFileSystem(fs.session.api_address, None, auto_mkdir=False, skip_instance_cache=True)
    strict.session._auth_header = fs.session._auth_header
    with pytest.raises(FileNotFoundError):
        strict.pipe(f"{coll}/missing/x.txt", b"x")


def test_mkdir_of_an_existing_path_raises(fs: AlgoFileSystem, coll: str) -> None:
    fs.mkdir(f"{coll}/d")
    with pytest.raises(FileExistsError):
        fs.mkdir(f"{coll}/d")
    fs.makedirs(f"{coll}/d", exist_ok=True)


def test_copy_and_move_run_on_the_server(fs: AlgoFileSystem, coll: str, proxy: FaultProxy) -> None:
    data = b"z" * 100_000
    fs.pipe(f"{coll}/src.bin", data)
    proxy.reset()
    fs.copy(f"{coll}/src.bin", f"{coll}/copy.bin")
    fs.mv(f"{coll}/copy.bin", f"{coll}/sub/moved.bin")
    fs.pipe(f"{coll}/tree/x.txt", b"x")
    fs.mv(f"{coll}/tree", f"{coll}/tree2")
    assert proxy.body_bytes["PUT"] <= 2  # only the 1-byte x.txt (sent again after its folder was made)
    assert fs.cat(f"{coll}/sub/moved.bin") == data and fs.cat(f"{coll}/tree2/x.txt") == b"x"
    assert not fs.exists(f"{coll}/copy.bin") and not fs.exists(f"{coll}/tree")


def test_append_mode_sends_only_the_new_bytes(fs: AlgoFileSystem, coll: str, proxy: FaultProxy) -> None:
    fs.pipe(f"{coll}/log.txt", b"a" * 50_000)
    proxy.reset()
    for _ in range(5):
        with fs.open(f"{coll}/log.txt", "ab") as handle:
            handle.write(b"b" * 1000)
    assert fs.cat(f"{coll}/log.txt") == b"a" * 50_000 + b"b" * 5000
    assert proxy.body_bytes["PUT"] == 5000


def test_without_extensions_everything_falls_back(api_server: EmbeddedServer, coll: str) -> None:
    with FaultProxy(api_server.url, hide_extensions=True) as plain:
        fs = AlgoFileSystem(plain.url, api_server.api_key, skip_instance_cache=True)
        fs.pipe(f"{coll}/p/x.txt", b"x")
        with fs.open(f"{coll}/p/x.txt", "ab") as handle:
            handle.write(b"y")
        fs.copy(f"{coll}/p/x.txt", f"{coll}/p/y.txt")
        fs.mv(f"{coll}/p/y.txt", f"{coll}/q/z.txt")
        assert fs.cat(f"{coll}/p/x.txt") == b"xy" and fs.cat(f"{coll}/q/z.txt") == b"xy"
        assert not fs.capabilities().any


def test_transient_503s_are_retried_for_every_write(api_server: EmbeddedServer, coll: str) -> None:
    with FaultProxy(api_server.url, fail_ratio=0.2, seed=3) as faulty:
        fs = AlgoFileSystem(faulty.url, api_server.api_key, skip_instance_cache=True)
        for index in range(30):
            fs.pipe(f"{coll}/r/{index}.txt", str(index).encode())
        fs.mkdir(f"{coll}/r/sub")
        fs.mv(f"{coll}/r/0.txt", f"{coll}/r/sub/0.txt")
        for index in range(1, 10):
            fs.rm_file(f"{coll}/r/{index}.txt")
        assert faulty.injected >= 5
        assert sorted(fs.ls(f"{coll}/r", detail=False))[:2] == [f"{coll}/r/10.txt", f"{coll}/r/11.txt"]
        assert fs.cat(f"{coll}/r/sub/0.txt") == b"0"
