"""AlgoFileSystem against the real embedded server: layout, paging, ranges, errors and fsspec registration."""

from __future__ import annotations

import errno
import os
import uuid

import fsspec
import pytest

from algofs_jupyter.fs import AlgoFileSystem
from algofs_jupyter.fs.api_errors import error_for_status
from algofs_jupyter.server.embedded_server import EmbeddedServer


@pytest.fixture(scope="module")
def fs(api_server: EmbeddedServer) -> AlgoFileSystem:
    return fsspec.filesystem("algo", api_address=api_server.url, api_key=api_server.api_key,
                             skip_instance_cache=True)


@pytest.fixture
def collection(fs: AlgoFileSystem):
    name = f"data/demo/fs-{uuid.uuid4().hex[:8]}"
    fs.mkdir(name)
    try:
        yield name
    finally:
        fs.rm(name, recursive=True)


def test_registered_protocol_and_layout(fs: AlgoFileSystem) -> None:
    assert isinstance(fs, AlgoFileSystem)
    root = fs.ls("", detail=False)
    assert root[0] == "data" and {"s3", "dropbox"} <= set(root)
    assert fs.ls("data", detail=False)[0] == "data/demo"
    assert fs.username() == "demo"
    assert fs.isdir("data/.my/datasets")


def test_paged_listing_of_5000_entries(fs: AlgoFileSystem) -> None:
    entries = list(fs.iter_dir("data/demo/many_files"))
    assert len(entries) == 5000 and len({e["name"] for e in entries}) == 5000
    assert all(e["type"] == "file" and e["size"] > 0 for e in entries)


def test_ranges_round_trip_and_names(fs: AlgoFileSystem, collection: str) -> None:
    path = f"{collection}/a b ü + ;.bin"
    data = bytes(range(256)) * 100
    fs.pipe_file(path, data)
    assert fs.cat_file(path) == data
    assert fs.read_range(path, 1000, 1010) == data[1000:1010]
    assert fs.cat_file(path, start=-5) == data[-5:]
    assert fs.read_range(path, len(data) - 3, len(data) + 100) == data[-3:]
    info = fs.info(path)
    assert info["size"] == len(data) and info["etag"]
    with fs.open(path, "rb") as handle:
        handle.seek(300)
        assert handle.read(4) == data[300:304]
    with fs.open(f"{collection}/written.txt", "wb") as handle:
        handle.write(b"via fsspec")
    assert fs.cat_file(f"{collection}/written.txt") == b"via fsspec"


def test_stale_etag_is_detected(fs: AlgoFileSystem, collection: str) -> None:
    path = f"{collection}/changing.txt"
    fs.pipe_file(path, b"one")
    etag = fs.info(path)["etag"]
    fs.pipe_file(path, b"two!")
    with pytest.raises(OSError) as stale:
        fs.read_range(path, 0, 3, etag=etag)
    assert stale.value.errno == errno.ESTALE


def test_errors_carry_errnos(fs: AlgoFileSystem, collection: str) -> None:
    with pytest.raises(FileNotFoundError):
        fs.info(f"{collection}/missing")
    with pytest.raises(PermissionError):
        fs.ls("s3+images")  # outside the connector's path restriction
    with pytest.raises(PermissionError):
        fs.pipe_file("data/alice/public/x.txt", b"not mine")
    fs.mkdir(f"{collection}/sub")
    fs.pipe_file(f"{collection}/sub/f", b"x")
    with pytest.raises(OSError) as not_empty:
        fs.rmdir(f"{collection}/sub")
    assert not_empty.value.errno == errno.ENOTEMPTY
    with pytest.raises(FileExistsError):
        fs.mkdir(f"{collection}/sub")


def test_status_mapping() -> None:
    assert error_for_status(404, "", "p").errno == errno.ENOENT
    assert error_for_status(403, "", "p").errno == errno.EACCES
    assert error_for_status(500, "boom", "p").errno == errno.EIO
    assert error_for_status(400, "directory is not empty", "p").errno == errno.ENOTEMPTY


def test_unreachable_backend_is_eio_in_bounded_time(free_port: int) -> None:
    fs = AlgoFileSystem(f"http://127.0.0.1:{free_port}", "sim-x", timeout=1.0, skip_instance_cache=True)
    with pytest.raises(OSError) as down:
        fs.info("data/demo/x")
    assert down.value.errno == errno.EIO
    assert fs.session.health()["reachable"] is False


def test_proxy_settings_from_the_environment_still_apply(api_server: EmbeddedServer, free_port: int,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The session reads proxies once (not per request); HTTP_PROXY/NO_PROXY must still decide."""
    for name in ("HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port}")  # nothing listens there
    proxied = AlgoFileSystem(api_server.url, api_server.api_key, timeout=1.0, skip_instance_cache=True)
    with pytest.raises(OSError) as refused:
        proxied.ls("data/demo")
    assert refused.value.errno == errno.EIO
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    direct = AlgoFileSystem(api_server.url, api_server.api_key, timeout=1.0, skip_instance_cache=True)
    assert any(entry["name"].endswith("/datasets") for entry in direct.ls("data/demo"))


def _count_concurrency(fs: AlgoFileSystem, monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Wraps the real session's ``request`` to record how many requests were in flight at once."""
    import threading

    seen = {"now": 0, "max": 0}
    lock = threading.Lock()
    original = fs.session.request

    def request(*args, **kwargs):
        with lock:
            seen["now"] += 1
            seen["max"] = max(seen["max"], seen["now"])
        try:
            return original(*args, **kwargs)
        finally:
            with lock:
                seen["now"] -= 1

    monkeypatch.setattr(fs.session, "request", request)
    return seen


def test_cat_and_get_of_many_paths_run_in_parallel(api_server: EmbeddedServer, fs: AlgoFileSystem,
                                                   collection: str, tmp_path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Without read-many (the hosted API) ``cat`` and ``get`` of many files run on BATCH_THREADS."""
    from algofs_jupyter.fs.filesystem import BATCH_THREADS

    files = {f"{collection}/f{i:03d}": f"file {i}".encode() * 50 for i in range(40)}
    for path, data in files.items():
        fs.pipe_file(path, data)
    plain = AlgoFileSystem(api_server.url, api_server.api_key, extensions=False, skip_instance_cache=True)
    seen = _count_concurrency(plain, monkeypatch)
    assert plain.cat(sorted(files)) == files
    assert 1 < seen["max"] <= BATCH_THREADS
    assert plain.cat([f"{collection}/f000", f"{collection}/missing"], on_error="omit") == {
        f"{collection}/f000": files[f"{collection}/f000"]}
    seen["max"] = 0
    plain.get(f"{collection}/", str(tmp_path / "copy") + "/", recursive=True)
    assert 1 < seen["max"] <= BATCH_THREADS
    assert {p.name: p.read_bytes() for p in (tmp_path / "copy").iterdir()} == {
        k.rpartition("/")[2]: v for k, v in files.items()}


def test_cat_of_many_small_files_is_a_request_per_64_with_read_many(fs: AlgoFileSystem,
                                                                    collection: str) -> None:
    """A file too large for one read-many answer (2 MiB) is fetched on its own; errors stay per path."""
    files = {f"{collection}/f{i:03d}": f"file {i}".encode() * 50 for i in range(100)}
    files[f"{collection}/large"] = os.urandom((2 << 20) + 1)
    fs.pipe(files)
    fs.client.capabilities()
    before = fs.session.requests_sent
    assert fs.cat(sorted(files)) == files
    # 64 + 37 paths; the large file alone, from the server's own file (§13: no HTTP request)
    assert fs.session.requests_sent - before == 2
    missing = f"{collection}/missing"
    with pytest.raises(FileNotFoundError):
        fs.cat([f"{collection}/f000", missing])
    assert fs.cat([f"{collection}/f000", missing], on_error="return")[missing].errno == errno.ENOENT


@pytest.mark.parametrize("extensions", [True, False], ids=["extension", "plain-api"])
def test_directories_copy_and_move_whole(api_server: EmbeddedServer, collection: str,
                                         extensions: bool) -> None:
    """``cp``/``mv`` of a directory tree, empty folders included; without the extensions (no server-side
    copy or move) fsspec's copy + delete, whose directory entries made ``cp_file`` fail before."""
    fs = AlgoFileSystem(api_server.url, api_server.api_key, extensions=extensions, skip_instance_cache=True)
    tree = {"top.txt": b"top", "sub/inner.txt": b"inner", "sub/deeper/leaf.bin": b"\0leaf"}
    for name, data in tree.items():
        fs.pipe_file(f"{collection}/src/{name}", data)
    fs.mkdir(f"{collection}/src/empty")
    fs.cp(f"{collection}/src", f"{collection}/copy", recursive=True)
    fs.mv(f"{collection}/src", f"{collection}/moved", recursive=True)
    assert not fs.exists(f"{collection}/src")
    for target in ("copy", "moved"):
        assert {name: fs.cat_file(f"{collection}/{target}/{name}") for name in tree} == tree
        assert fs.isdir(f"{collection}/{target}/empty")


def test_infos_carry_modes_times_and_links_as_plain_values(fs: AlgoFileSystem, collection: str) -> None:
    """With the posix extension infos and listings have LocalFileSystem's keys (mode, uid, gid, islink,
    destination, times in float seconds) as plain, JSON-serialisable values; a symlink is not followed."""
    import json
    import stat

    assert fs.supports("posix", collection)
    fs.pipe_file(f"{collection}/run.sh", b"#!/bin/sh\n")
    fs.client.setattr(f"{collection}/run.sh", mode=0o755, mtime_ns=-86_400_000_000_123)
    fs.client.symlink(f"{collection}/link", "run.sh")
    fs.mkdir(f"{collection}/dir")
    script, link = fs.info(f"{collection}/run.sh"), fs.info(f"{collection}/link")
    assert script["mode"] == stat.S_IFREG | 0o755 and script["islink"] is False
    assert script["mtime"] == pytest.approx(-86_400.000000123, abs=1e-6)
    assert stat.S_ISLNK(link["mode"]) and link["islink"] and link["destination"] == "run.sh"
    assert link["type"] == "file" and fs.cat_file(f"{collection}/link") == b"run.sh"
    listed = {entry["name"].rsplit("/", 1)[-1]: entry for entry in fs.ls(collection)}
    assert listed["link"]["destination"] == "run.sh" and stat.S_ISDIR(listed["dir"]["mode"])
    assert listed["run.sh"]["mode"] == stat.S_IFREG | 0o755
    json.dumps([fs.info(f"{collection}/link"), *listed.values()])  # plain values only


def test_fsspec_s_own_fuse_stats_every_entry(fs: AlgoFileSystem, collection: str) -> None:
    """``fsspec.fuse`` (fsspec's FUSE of any filesystem) builds stat results from ``info``: an owner nobody
    set is left out (its ``info.get("uid", 1000)``), not None, which libfuse's stat can't hold (EINVAL for
    every entry, the bench's fsspec.fuse rows until 2026-12-07). Owners that are set come through."""
    import sys

    import mfusepy

    sys.modules.setdefault("fuse", mfusepy)  # fsspec.fuse imports fusepy's module name
    from fsspec.fuse import FUSEr

    fs.pipe_file(f"{collection}/plain.txt", b"hello")
    fs.pipe_file(f"{collection}/owned.txt", b"mine")
    fs.client.setattr(f"{collection}/owned.txt", uid=1234, gid=4321)
    info = fs.info(f"{collection}/plain.txt")
    assert "uid" not in info and "gid" not in info
    fuser = FUSEr(fs, f"{collection}/", ready_file=False)
    for name, owner in (("plain.txt", (1000, 1000)), ("owned.txt", (1234, 4321))):
        attrs = fuser.getattr(f"/{name}")
        assert (attrs["st_uid"], attrs["st_gid"]) == owner and attrs["st_size"] == len(fs.cat_file(
            f"{collection}/{name}"))
        stat_result = mfusepy.c_stat()
        mfusepy.set_st_attrs(stat_result, attrs, use_ns=False)  # what mfusepy does with the answer
    assert fuser.getattr("/")["st_mode"] & 0o170000 == 0o040000


def test_a_file_opened_for_reading_reads_the_server_s_own_file(fs: AlgoFileSystem, collection: str) -> None:
    """A server on this machine (the tests') answers an open file's reads with its own file's descriptor
    (local reads, docs/api-extensions.md §13): no request after the open, and the version opened is read
    to the end even when the file is replaced meanwhile. ``extensions=False`` reads over HTTP."""
    assert "local-reads" in fs.client.capabilities().backends.get("data", ())
    data = os.urandom(3 << 20)
    fs.pipe_file(f"{collection}/big.bin", data)
    with fs.open(f"{collection}/big.bin", "rb", block_size=1 << 20) as handle:
        sent = fs.session.requests_sent
        assert handle.read(1 << 20) == data[:1 << 20]
        fs.pipe_file(f"{collection}/big.bin", os.urandom(len(data)))  # replaced on the server
        sent_by_the_replace = fs.session.requests_sent - sent
        handle.seek(12_345)
        assert handle.read() == data[12_345:]
        assert fs.session.requests_sent - sent == sent_by_the_replace  # the reads sent nothing
    plain = AlgoFileSystem(fs.session.api_address, fs.client.session.authorization.split(" ", 1)[1],
                           extensions=False, skip_instance_cache=True)
    with plain.open(f"{collection}/big.bin", "rb", block_size=1 << 20) as handle:
        sent = plain.session.requests_sent
        assert len(handle.read()) == len(data)
        assert plain.session.requests_sent - sent >= 1  # a ranged GET: what the reads above did not send


def test_whole_files_ranges_and_downloads_come_from_the_server_s_own_file(
        fs: AlgoFileSystem, collection: str, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``cat_file`` (whole, ranged, from the end, past the end), ``get_file`` and ``get`` of a server on
    this machine read its own file (§13): no HTTP request for the bytes. The same calls over HTTP
    (``extensions=False``) send requests and give the same bytes."""
    data = os.urandom((2 << 20) + 123)
    fs.pipe_file(f"{collection}/d/big.bin", data)
    fs.pipe_file(f"{collection}/d/small.txt", b"tiny")
    fs.mkdir(f"{collection}/d/empty")
    plain = AlgoFileSystem(fs.session.api_address, fs.client.session.authorization.split(" ", 1)[1],
                           extensions=False, skip_instance_cache=True)
    for filesystem, name in ((fs, "local"), (plain, "http")):
        sent = filesystem.session.requests_sent
        assert filesystem.cat_file(f"{collection}/d/big.bin") == data
        assert filesystem.cat_file(f"{collection}/d/big.bin", 100, 5000) == data[100:5000]
        assert filesystem.cat_file(f"{collection}/d/big.bin", -1000) == data[-1000:]
        assert filesystem.cat_file(f"{collection}/d/big.bin", 10, 10 << 30) == data[10:]
        assert filesystem.cat_file(f"{collection}/d/small.txt") == b"tiny"
        filesystem.get_file(f"{collection}/d/big.bin", str(tmp_path / f"{name}.bin"))
        assert (tmp_path / f"{name}.bin").read_bytes() == data
        if filesystem is fs:
            assert filesystem.session.requests_sent == sent
        else:
            assert filesystem.session.requests_sent - sent >= 7  # 5 cat_file (2 with a HEAD), get_file
    with pytest.raises(FileNotFoundError):
        fs.cat_file(f"{collection}/d/missing")  # what the GET says: the socket's refusal is not the answer

    downloaded: list[str] = []
    for method in ("download_entry", "download_to"):
        original = getattr(fs.client, method)
        monkeypatch.setattr(fs.client, method,
                            lambda path, local, _o=original: (downloaded.append(path), _o(path, local))[1])
    fs.get(f"{collection}/d", str(tmp_path / "tree"), recursive=True)
    assert (tmp_path / "tree" / "big.bin").read_bytes() == data
    assert (tmp_path / "tree" / "small.txt").read_bytes() == b"tiny"
    assert (tmp_path / "tree" / "empty").is_dir()
    assert not any(path.endswith((".bin", ".txt")) for path in downloaded), downloaded
