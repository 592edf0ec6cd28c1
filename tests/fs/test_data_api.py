"""``DataClient``'s one funnel against a real ``algofs serve``: deadlines, retries, error mapping, and the
range reader a cache fetches with. Faults come from a real proxy (tests/fault_proxy.py) that answers 503,
drops connections or hides the extensions; a refused connection is a port nothing listens on. No mocks.
"""

from __future__ import annotations

import errno
import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from fault_proxy import FaultProxy

from algofs_jupyter.fs import api_paths
from algofs_jupyter.fs.api_errors import BackendUnavailable, NotSupported, StaleFile
from algofs_jupyter.fs.data_api import DataClient
from algofs_jupyter.server.embedded_server import EmbeddedServer


@pytest.fixture(scope="module")
def direct(api_server: EmbeddedServer) -> DataClient:
    return DataClient(api_server.url, api_server.api_key)


@pytest.fixture
def coll(direct: DataClient) -> Iterator[str]:
    name = f"data/demo/api-{uuid.uuid4().hex[:8]}"
    direct.mkdir(name)
    try:
        yield name
    finally:
        direct.delete(name, recursive=True)


def _mkdir_once(client: DataClient, path: str) -> None:
    """``mkdir``'s request through the funnel, declared not replayable."""
    parts = api_paths.split_path(path)
    client._call("POST", parts, url=api_paths.api_path(parts[:-1]) + "/", json_body={"name": parts[-1]},
                 retry=False).close()


def test_replayable_requests_ride_out_injected_503s(api_server: EmbeddedServer, direct: DataClient,
                                                    coll: str) -> None:
    with FaultProxy(api_server.url, fail_ratio=0.5, seed=3) as proxy:
        client = DataClient(proxy.url, api_server.api_key, timeout=10.0)
        for i in range(10):
            client.put_bytes(f"{coll}/f{i}", b"x" * i)  # PUT: replayed (the body is made again)
        assert sorted(entry["size"] for entry in client.iter_dir(coll)) == list(range(10))
        assert client.read_whole(f"{coll}/f5")[0] == b"xxxxx"
        assert proxy.injected >= 5
    assert [direct.head(f"{coll}/f{i}")["size"] for i in range(10)] == list(range(10))


def test_the_deadline_bounds_the_retries_and_a_503_becomes_eio(api_server: EmbeddedServer) -> None:
    with FaultProxy(api_server.url, fail_ratio=1.0) as proxy:
        client = DataClient(proxy.url, api_server.api_key, timeout=1.0)
        began = time.monotonic()
        with pytest.raises(OSError) as failed:
            client.read_whole("data/demo/datasets/x")
        elapsed = time.monotonic() - began
        assert failed.value.errno == errno.EIO
        assert "data://demo/datasets/x" in str(failed.value) and "HTTP 503" in str(failed.value)
        assert 0.3 < elapsed < 2.0, elapsed
        assert proxy.injected >= 3  # retried, until the deadline
        assert client.session.health()["reachable"] is True  # the server answered: no fail-fast
        proxy.reset()
        with pytest.raises(OSError) as once:
            _mkdir_once(client, "data/demo/never-made")
        assert once.value.errno == errno.EIO and proxy.injected == 1  # not replayable: sent once


def test_a_dropped_connection_is_retried_only_when_the_request_may_be_replayed(
        api_server: EmbeddedServer, direct: DataClient, coll: str) -> None:
    direct.put_bytes(f"{coll}/f", b"abc")
    with FaultProxy(api_server.url, drop_ratio=0.5, seed=5) as proxy:
        client = DataClient(proxy.url, api_server.api_key, timeout=10.0)
        for _ in range(8):
            assert client.read_whole(f"{coll}/f")[0] == b"abc"
        assert proxy.dropped >= 2
    with FaultProxy(api_server.url, drop_ratio=1.0) as proxy:
        client = DataClient(proxy.url, api_server.api_key, timeout=5.0)
        with pytest.raises(BackendUnavailable) as lost:
            _mkdir_once(client, f"{coll}/sub")
        assert lost.value.errno == errno.EIO and proxy.dropped == 1  # sent, answer lost: not sent again
        assert client.session.health()["reachable"] is False
    assert not direct.exists(f"{coll}/sub")


def test_a_refused_connection_is_retried_until_the_server_is_there(api_server: EmbeddedServer,
                                                                    direct: DataClient, coll: str,
                                                                    free_port: int) -> None:
    """Nothing was sent, so even a request that may not be replayed is tried again within its deadline."""
    client = DataClient(f"http://127.0.0.1:{free_port}", api_server.api_key, timeout=8.0)
    started: list[FaultProxy] = []
    timer = threading.Timer(0.5, lambda: started.append(FaultProxy(api_server.url, port=free_port).start()))
    timer.start()
    try:
        _mkdir_once(client, f"{coll}/late")
        assert direct.info(f"{coll}/late")["type"] == "directory"
    finally:
        timer.join()
        for proxy in started:
            proxy.stop()


def test_after_a_transport_failure_the_client_fails_fast(free_port: int) -> None:
    client = DataClient(f"http://127.0.0.1:{free_port}", "sim-x", timeout=1.0)
    began = time.monotonic()
    with pytest.raises(BackendUnavailable) as down:
        client.read_whole("data/demo/x")
    assert down.value.errno == errno.EIO and "API unreachable" in str(down.value)
    assert time.monotonic() - began < 2.0
    assert client.session.health()["reachable"] is False
    began = time.monotonic()
    with pytest.raises(BackendUnavailable):
        client.head("data/demo/x")
    assert time.monotonic() - began < 0.5  # one attempt, no retries, while the window lasts


def test_server_errors_reach_the_caller_with_their_errno(direct: DataClient, coll: str) -> None:
    direct.put_bytes(f"{coll}/f", b"abc")
    with pytest.raises(FileNotFoundError) as missing:
        direct.head(f"{coll}/missing")
    assert f"data://{coll[5:]}/missing" in str(missing.value)
    with pytest.raises(FileExistsError):
        direct.mkdir(coll)
    with pytest.raises(NotADirectoryError):
        list(direct.iter_dir(f"{coll}/f"))
    with pytest.raises(PermissionError):
        direct.put_bytes("data/alice/public/x.txt", b"not mine")
    direct.put_bytes(f"{coll}/full/f", b"x")  # auto_mkdir
    with pytest.raises(OSError) as not_empty:
        direct.delete(f"{coll}/full")
    assert not_empty.value.errno == errno.ENOTEMPTY
    with pytest.raises(OSError) as cross:
        direct.move(f"{coll}/f", "dropbox/f")
    assert cross.value.errno == errno.EXDEV  # the extension's errno wins over the status (400)
    moved = direct.move(f"{coll}/f", f"{coll}/g")
    assert moved["name"] == f"{coll}/g" and moved["size"] == 3 and moved["etag"]


def test_without_the_extensions_the_client_says_not_supported(api_server: EmbeddedServer, coll: str,
                                                             tmp_path) -> None:
    local = tmp_path / "local"
    local.write_bytes(b"abc")
    with FaultProxy(api_server.url, hide_extensions=True) as proxy:
        client = DataClient(proxy.url, api_server.api_key)
        assert not client.capabilities().any and client.known_capabilities is not None
        client.put_file(local, f"{coll}/f")
        for call in (lambda: client.move(f"{coll}/f", f"{coll}/g"),
                     lambda: client.copy(f"{coll}/f", f"{coll}/g"),
                     lambda: client.write_at(f"{coll}/f", 0, local),
                     lambda: client.set_mtime(f"{coll}/f", 1.0)):
            with pytest.raises(NotSupported) as refused:
                call()
            assert refused.value.errno == errno.EOPNOTSUPP
        assert not client.exists(f"{coll}/g")


def test_the_range_reader_gives_a_cache_bytes_buffers_and_streams(direct: DataClient, coll: str) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB
    path = f"{coll}/blob"
    stored = direct.put_bytes(path, data)
    assert stored is not None and stored["size"] == len(data)
    reader = direct.range_reader(path, stored["etag"], len(data))
    assert reader(10, 1000) == data[10:1000]
    assert reader(len(data) - 5, len(data) + 100) == data[-5:]  # short only at the end
    block = bytearray(4096)
    assert reader.into(4096, memoryview(block)) == 4096 and block == data[4096:8192]
    with reader.stream(65536, 4 * 65536) as fill:  # one GET, several blocks
        for n in range(3):
            assert fill(memoryview(block)) == 4096
            assert block == data[65536 + n * 4096:65536 + (n + 1) * 4096]
    listed = direct.range_reader(path, size=len(data))  # attributes from a listing: no ETag, a size
    assert listed(0, 4) == data[:4]
    direct.put_bytes(path, b"changed")
    for stale in (reader, listed):
        with pytest.raises(StaleFile) as changed:
            stale(0, 4)
        assert changed.value.errno == errno.ESTALE


def test_the_data_client_and_its_users_send_through_the_one_funnel() -> None:
    """Only ``DataClient._call`` hands a request to the session: the fsspec face and the mount build none."""
    import ast
    from pathlib import Path

    package = Path(__file__).resolve().parents[2] / "algofs_jupyter"
    senders = []
    for path in [package / "fs" / "data_api.py", package / "fs" / "filesystem.py",
                 *sorted((package / "mount").rglob("*.py"))]:
        tree = ast.parse(path.read_text())
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(function):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                        and node.func.attr == "request":
                    senders.append(f"{path.relative_to(package)}:{function.name}")
    assert sorted(set(senders)) == ["fs/data_api.py:_call"]
