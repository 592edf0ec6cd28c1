"""Small files on a real mount: warm opens make no request, a cold file costs at most one, the directory
prefetcher runs ahead of a reader and stops with it, and the consistency modes see remote changes when
they say they do. Requests are counted by the daemon's own session (``backend.requests_sent``)."""

from __future__ import annotations

import os
import random
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from algofs_jupyter.fs import AlgoFileSystem
from algofs_jupyter.mount import control
from algofs_jupyter.server.embedded_server import EmbeddedServer

pytestmark = pytest.mark.fuse


@pytest.fixture
def collection(api_server: EmbeddedServer, api_fs: AlgoFileSystem) -> Iterator[str]:
    """A fresh collection of user demo (its layout path), removed afterwards."""
    name = f"small-{uuid.uuid4().hex[:8]}"
    api_fs.mkdir(f"data/demo/{name}")
    try:
        yield f"data/demo/{name}"
    finally:
        api_fs.rm(f"data/demo/{name}", recursive=True)


def make_files(server: EmbeddedServer, layout: str, count: int, size: int = 4096) -> dict[str, bytes]:
    """``count`` files placed on the server's disk directly (fast; the server serves them at once), or
    through the API when the server keeps its data in a bucket (``--storage s3://…``)."""
    files = {}
    for i in range(count):
        name = f"f{i:05d}.bin"
        files[name] = (name.encode() * (size // len(name) + 1))[:size]
    if server.storage:
        AlgoFileSystem(server.url, server.api_key, skip_instance_cache=True).pipe(
            {f"{layout}/{name}": data for name, data in files.items()})
        return files
    folder = server.root / layout
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return files




def requests_sent(mnt: Path) -> int:
    return control.query(mnt, "status")["backend"]["requests_sent"]


def read_all(directory: Path, names: list[str]) -> dict[str, bytes]:
    out = {}
    for name in names:
        with open(directory / name, "rb") as handle:
            out[name] = handle.read()
    return out


def test_cold_pass_costs_one_request_per_file_and_warm_pass_none(api_server: EmbeddedServer, new_mount,
                                                                 collection: str) -> None:
    files = make_files(api_server, collection, 120)
    mnt = new_mount()
    directory = mnt / collection
    names = sorted(os.listdir(directory))  # the listing: attributes for every file
    assert names == sorted(files)
    before = requests_sent(mnt)
    assert read_all(directory, names) == files
    cold = requests_sent(mnt) - before
    assert cold <= len(files), f"{cold} requests for {len(files)} cold files"
    before = requests_sent(mnt)
    shuffled = names[:]
    random.Random(1).shuffle(shuffled)
    assert read_all(directory, shuffled) == files
    assert requests_sent(mnt) - before == 0, "a warm pass asked the API"
    small = control.query(mnt, "status")["small_files"]
    assert small["prefetch"]["runs_started"] >= 1 and small["prefetch_hits"] > 0  # the prefetcher ran ahead


def shuffled_cold_pass(new_mount, files: dict[str, bytes], collection: str, **options: object) -> int:
    """Requests of one shuffled cold pass over ``files`` on a fresh mount (after the listing)."""
    mnt = new_mount(**options)
    directory = mnt / collection
    names = sorted(os.listdir(directory))
    shuffled = names[:]
    random.Random(2).shuffle(shuffled)
    before = requests_sent(mnt)
    assert read_all(directory, shuffled) == files
    return requests_sent(mnt) - before


def test_a_shuffled_cold_pass_takes_files_along_with_read_many(api_server: EmbeddedServer, new_mount,
                                                               collection: str) -> None:
    """Shuffled readers mostly open files nobody fetched yet; each such miss brings the run's next 31
    files in the same request (read-many), so a cold shuffled pass costs a few requests per 100 files.
    Against a server without the extension (``no_extensions``) it is one GET per file, as before."""
    files = make_files(api_server, collection, 400, size=2000)
    with_many = shuffled_cold_pass(new_mount, files, collection)
    assert with_many <= len(files) // 8, f"{with_many} requests for {len(files)} cold files"
    without = shuffled_cold_pass(new_mount, files, collection, no_extensions=True)
    assert without >= len(files) * 0.9, f"{without} requests without read-many"


def test_prefetch_stops_when_the_reader_stops(api_server: EmbeddedServer, new_mount, collection: str) -> None:
    files = make_files(api_server, collection, 300)
    mnt = new_mount(prefetch_files=16)
    directory = mnt / collection
    names = sorted(os.listdir(directory))
    before = requests_sent(mnt)
    read_all(directory, names[:10])
    time.sleep(3.0)  # the run ends 2 s after the last open; fetches in flight finish
    stopped = requests_sent(mnt)
    time.sleep(2.0)
    assert requests_sent(mnt) == stopped, "the prefetcher kept fetching after the reader stopped"
    # the 10 files, the files fetched ahead (at most 16 more than were opened), the 2 that started the run
    assert stopped - before <= 10 + 16 + 2, f"{stopped - before} requests for 10 files read"
    assert len(files) == 300


def test_ttl_mode_sees_a_remote_change_after_the_ttl_and_own_writes_at_once(
        api_server: EmbeddedServer, api_fs: AlgoFileSystem, new_mount, collection: str) -> None:
    make_files(api_server, collection, 3)
    mnt = new_mount(metadata_ttl=2.0)
    path = mnt / collection / "f00001.bin"
    os.listdir(path.parent)
    old = path.read_bytes()
    api_fs.pipe_file(f"{collection}/f00001.bin", b"changed by another client")
    before = requests_sent(mnt)
    assert path.read_bytes() == old  # within the TTL: the cached version, no request
    assert requests_sent(mnt) == before
    time.sleep(2.5)
    assert path.read_bytes() == b"changed by another client"
    # the mount's own writes are visible at once, same size and same second included
    path.write_bytes(b"mine")
    assert path.read_bytes() == b"mine"
    path.write_bytes(b"MINE")
    assert path.read_bytes() == b"MINE"


def test_strict_mode_sees_a_remote_change_at_once(api_server: EmbeddedServer, api_fs: AlgoFileSystem,
                                                  new_mount, collection: str) -> None:
    make_files(api_server, collection, 3)
    mnt = new_mount(consistency="strict")
    path = mnt / collection / "f00001.bin"
    os.listdir(path.parent)
    assert len(path.read_bytes()) == 4096
    api_fs.pipe_file(f"{collection}/f00001.bin", b"changed by another client")
    assert path.read_bytes() == b"changed by another client"
    api_fs.pipe_file(f"{collection}/f00001.bin", b"CHANGED by another client")  # same size
    assert path.read_bytes() == b"CHANGED by another client"


@pytest.mark.slow
def test_prefetcher_memory_stays_bounded_on_50000_files(api_server: EmbeddedServer, new_mount,
                                                        collection: str) -> None:
    make_files(api_server, collection, 50_000, size=2048)
    try:
        budget = 8 << 20
        mnt = new_mount(prefetch_memory=budget, prefetch_files=256)
        directory = mnt / collection
        names = sorted(os.listdir(directory))
        status = control.query(mnt, "status")
        rss_before = _rss(status["pid"])
        read_all(directory, names[:6000])  # 12 MiB read: more than the budget
        small = control.query(mnt, "status")["small_files"]
        assert small["bytes"] <= budget and small["unread_bytes"] <= budget
        growth = _rss(status["pid"]) - rss_before
        assert growth < budget + (24 << 20), f"daemon grew by {growth >> 20} MiB"
    finally:  # 50,000 DELETEs would outlast the fixture's deadline: empty the folder on the server's disk
        folder = api_server.root / collection
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_a_pass_that_outlives_the_ttl_relists_instead_of_a_head_per_file(api_server: EmbeddedServer,
                                                                        new_mount, collection: str) -> None:
    files = make_files(api_server, collection, 60)
    mnt = new_mount(metadata_ttl=1.0)
    directory = mnt / collection
    names = sorted(os.listdir(directory))
    before = requests_sent(mnt)
    started = time.monotonic()
    for name in names:  # a slow reader: the pass takes longer than the TTL
        assert (directory / name).read_bytes() == files[name]
        time.sleep(0.05)
    expiries = int((time.monotonic() - started) / 1.0) + 2
    sent = requests_sent(mnt) - before
    # one GET per file, and each time the TTL ran out one listing page plus a HEAD of each of the two
    # directories above it (the kernel revalidates the path) - not a HEAD per file
    assert sent <= len(files) + 3 * expiries, f"{sent} requests for {len(files)} files, {expiries} TTLs"


def test_a_reader_that_never_lists_gets_the_prefetcher_too(api_server: EmbeddedServer, new_mount,
                                                           collection: str) -> None:
    """A loader with its file names from an index (no walk, no listdir): each cold file used to cost a
    HEAD (the lookup) and a GET. The second open lists the directory in the background; once the listing
    is in, lookups are answered from it and the run fetches files ahead."""
    files = make_files(api_server, collection, 200)
    mnt = new_mount()
    directory = mnt / collection
    names = sorted(files)
    shuffled = names[:]
    random.Random(3).shuffle(shuffled)
    before = requests_sent(mnt)
    assert read_all(directory, shuffled) == files  # never os.listdir(directory)
    cold = requests_sent(mnt) - before
    small = control.query(mnt, "status")["small_files"]
    assert small["prefetch"]["listings"] == 1 and small["prefetch"]["runs_started"] == 1, small
    assert small["prefetches"] > len(files) // 2, small
    assert cold <= len(files) // 2, f"{cold} requests for {len(files)} cold files"
