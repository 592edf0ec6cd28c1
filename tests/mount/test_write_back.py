"""``--write-back SECONDS`` (opt-in): close() returns once the bytes are staged, uploads follow the last
close by SECONDS and coalesce; fsync still uploads at once; unmount uploads what is pending."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from waiting import wait_until

from algofs_jupyter.server.embedded_server import EmbeddedServer

from .test_writes import Proxied, _mount, server  # noqa: F401 - the module's server fixture

pytestmark = pytest.mark.fuse


def wait_for(condition) -> bool:
    return wait_until(condition, timeout=15.0)


@pytest.fixture(scope="module")
def quick_mnt(server: EmbeddedServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxied]:  # noqa: F811
    yield from _mount(server, tmp_path_factory.mktemp("write-back"), {"write_back": 0.5})


@pytest.fixture
def slow_mnt(server: EmbeddedServer, tmp_path: Path) -> Iterator[Proxied]:  # noqa: F811
    """Uploads only 60 s after a close: whatever reaches the server sooner came from fsync or unmount."""
    yield from _mount(server, tmp_path, {"write_back": 60.0})


def collection(mnt: Proxied) -> Path:
    path = mnt.path / "data" / "demo" / f"wb-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    return path


def test_reopen_append_cycles_coalesce_into_a_few_uploads(quick_mnt: Proxied) -> None:
    log = collection(quick_mnt) / "train.log"
    quick_mnt.proxy.reset()
    lines = [f"step {i} loss {1 / (i + 1):.4f}\n".encode() for i in range(60)]
    for line in lines:
        with open(log, "ab") as handle:  # a logger reopening its file for every line
            handle.write(line)
    expected = b"".join(lines)
    assert log.read_bytes() == expected  # this mount sees its own writes at once
    on_server = quick_mnt.server_path(log)
    assert wait_for(lambda: on_server.exists() and on_server.read_bytes() == expected)
    assert wait_for(lambda: quick_mnt.status()["write_back"]["pending"] == 0)
    uploads = quick_mnt.proxy.requests["PUT"] + quick_mnt.proxy.requests["POST"]
    assert uploads <= 6, f"{uploads} upload requests for 60 closes"  # upload at close: 60
    sent = quick_mnt.proxy.body_bytes["PUT"] + quick_mnt.proxy.body_bytes["POST"]
    assert sent <= 1.2 * len(expected) + 4096


def test_many_small_files_are_uploaded_after_close(quick_mnt: Proxied) -> None:
    folder = collection(quick_mnt)
    payloads = {f"sample-{i:03d}.json": os.urandom(512) for i in range(40)}
    for name, data in payloads.items():
        (folder / name).write_bytes(data)
    assert sorted(os.listdir(folder)) == sorted(payloads)
    for name, data in payloads.items():
        on_server = quick_mnt.server_path(folder / name)
        assert wait_for(lambda p=on_server, d=data: p.exists() and p.read_bytes() == d), name


def test_fsync_uploads_at_once_and_unmount_uploads_the_rest(slow_mnt: Proxied) -> None:
    folder = collection(slow_mnt)
    durable, later = folder / "checkpoint.bin", folder / "later.bin"
    with open(durable, "wb") as handle:
        handle.write(b"weights" * 1000)
        handle.flush()
        os.fsync(handle.fileno())
        assert slow_mnt.server_path(durable).read_bytes() == b"weights" * 1000
    later.write_bytes(b"not yet")
    time.sleep(0.5)
    assert not slow_mnt.server_path(later).exists()  # close() did not upload it
    assert slow_mnt.status()["write_back"]["pending"] == 1
    slow_mnt.process.stop()
    assert slow_mnt.server_path(later).read_bytes() == b"not yet"


@pytest.fixture
def flaky_mnt(server: EmbeddedServer, tmp_path: Path) -> Iterator[Proxied]:  # noqa: F811
    yield from _mount(server, tmp_path, {"write_back": 0.3})


def test_a_failing_background_upload_keeps_the_bytes_and_lands_once_the_server_answers(
        flaky_mnt: Proxied) -> None:
    """close() returned 0 before the upload: when that upload fails, the bytes must stay readable here,
    be kept for recovery, and reach the server on a retry once the API answers again."""
    folder = collection(flaky_mnt)
    target = folder / "results.csv"
    data = b"epoch,loss\n" + b"".join(f"{i},{1 / (i + 1):.5f}\n".encode() for i in range(500))
    flaky_mnt.proxy.fail_ratio = 1.0  # every API request answers 503 from now on
    try:
        target.write_bytes(data)  # close() returns: the upload is the write-back's
        assert wait_for(lambda: flaky_mnt.status()["write_back"]["failed_attempts"] >= 1)
        on_server = flaky_mnt.server_path(target)
        assert not on_server.exists()
        assert flaky_mnt.status()["write_back"]["pending"] == 1
        assert flaky_mnt.status()["uploads"]["recovery"] >= 1  # a copy is kept while it is retried
        assert target.read_bytes() == data  # this mount still reads what was written
    finally:
        flaky_mnt.proxy.fail_ratio = 0.0
    assert wait_until(lambda: on_server.exists() and on_server.read_bytes() == data, timeout=60.0)
    assert wait_for(lambda: flaky_mnt.status()["write_back"]["pending"] == 0)
    assert flaky_mnt.status()["uploads"]["recovery"] == 0  # landed: nothing left to recover
