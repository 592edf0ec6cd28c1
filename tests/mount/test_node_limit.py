"""The soft limit on kernel/libfuse nodes (node_limit.py) on a real mount: past ``--inode-soft-limit`` paths
the least recently seen are invalidated, the paths recorded stay within the limit, and the kernel really
forgot a swept name (its next ``stat`` reaches the daemon again) while every file still reads right."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from waiting import wait_until

from algofs_jupyter.fs import AlgoFileSystem
from algofs_jupyter.mount import control
from algofs_jupyter.mount.node_limit import NodeLimit
from algofs_jupyter.server.embedded_server import EmbeddedServer

pytestmark = pytest.mark.fuse

LIMIT = 200


@pytest.fixture
def folder(api_server: EmbeddedServer, api_fs: AlgoFileSystem) -> Iterator[str]:
    """A collection of 1,000 small files written on the server's disk (its layout path), removed after."""
    name = f"nodes-{uuid.uuid4().hex[:8]}"
    api_fs.mkdir(f"data/demo/{name}")
    if api_server.storage:
        pytest.skip("writes the files on the server's disk")
    for index in range(1000):
        (api_server.root / "data" / "demo" / name / f"f{index:04d}").write_bytes(b"%04d" % index)
    try:
        yield f"data/demo/{name}"
    finally:
        api_fs.rm(f"data/demo/{name}", recursive=True)


def paths(mnt: Path) -> int:
    return control.query(mnt, "status")["nodes"]["paths"]


def test_paths_the_kernel_holds_stay_within_the_soft_limit(new_mount, folder: str) -> None:
    mnt = new_mount(inode_soft_limit=LIMIT)
    directory = mnt / folder
    names = sorted(os.listdir(directory))
    for name in names:  # a lookup per name
        os.stat(directory / name)

    def settled() -> bool:
        nodes = control.query(mnt, "status")["nodes"]
        return nodes["paths"] <= LIMIT and nodes["swept"] >= 1000 - LIMIT

    assert wait_until(settled, timeout=30), control.query(mnt, "status")["nodes"]
    # the kernel forgot the first names: a stat looks the name up in the daemon again (recorded: one path
    # more), where the kernel answers a name it holds itself for the 60 s entry timeout (no change)
    before = paths(mnt)
    os.stat(directory / names[-1])
    assert paths(mnt) == before, "a recent name was looked up again"
    # a name from the middle of the listing: the kernel got it with the READDIRPLUS listing, so it was
    # recorded then and swept as one of the oldest. (Not names[0]: the kernel may get the listing's first
    # few names without attributes and look them up during the stat loop, which records them last.)
    middle = names[len(names) // 2]
    os.stat(directory / middle)
    assert paths(mnt) == before + 1, "a swept name was answered by the kernel: not forgotten"
    assert (directory / middle).read_bytes() == b"%04d" % (len(names) // 2)


def test_no_limit_records_nothing(new_mount, folder: str) -> None:
    mnt = new_mount(inode_soft_limit=0)
    directory = mnt / folder
    for name in sorted(os.listdir(directory))[:50]:
        os.stat(directory / name)
    assert control.query(mnt, "status")["nodes"] == {"soft_limit": 0, "paths": 0, "swept": 0, "sweeps": 0}


def test_a_directory_is_swept_after_the_names_under_it() -> None:
    """Invalidating a directory drops every name under it from the kernel, so the directory of names still
    being looked up is not among the oldest, though it was seen first. (Before, the first sweep took the
    directories of the walk: a fresh-clone run saw a name just looked up reach the daemon again.)"""
    swept: list[bytes] = []
    limit = NodeLimit(10, interval=3600)  # sweeps only when the limit is passed
    limit.start(lambda path: swept.append(path) or 0)
    try:
        for path in (b"/data", b"/data/demo", b"/data/demo/dir"):
            limit.seen(path)
        for index in range(12):
            limit.seen(b"/data/demo/dir/f%02d" % index)
        assert wait_until(lambda: limit.stats()["swept"] >= 6, timeout=10), limit.stats()
    finally:
        limit.close()
    assert swept == [b"/data/demo/dir/f%02d" % index for index in range(len(swept))]
    assert limit.stats()["paths"] == 15 - len(swept)
