"""Organizations in the mount (issue 27, item 1): members see ``data/<org>/`` beside their own folder, share
its files through their own mounts, a non-member sees no such folder and can't read it, and a member
removed from the hub's organizations file loses the folder and its files within the metadata TTL, with no
restart of the server or the mount."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from algofs_jupyter.mount.mount_process import MountProcess, is_mounted
from algofs_jupyter.server.embedded_server import EmbeddedServer

from .conftest import fuse_available

TTL = 1.0  # the mounts' metadata TTL, seconds


def write_members(path: Path, **members: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"organizations": {"lab": {"members": members}}}))
    os.replace(tmp, path)


def eventually(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the mount did not show the change"
        time.sleep(0.3)


def unreadable(path: Path) -> bool:
    try:
        path.read_text()
    except PermissionError:
        return True
    except OSError:
        return True  # gone from the parent listing: ENOENT
    return False


@pytest.fixture
def team(tmp_path: Path) -> Iterator[tuple[EmbeddedServer, Path, dict[str, Path]]]:
    if not fuse_available():
        pytest.skip("needs /dev/fuse and fusermount3")
    orgs = tmp_path / "organizations.json"
    write_members(orgs, ann="admin", bob="member")
    users = {name: secrets.token_urlsafe(24) for name in ("ann", "bob", "cat")}
    server = EmbeddedServer(tmp_path / "root", users=users)
    server.serve_flags += ["--organizations-file", str(orgs)]
    mounts: list[MountProcess] = []
    with contextlib.ExitStack() as cleanup:
        server.start()
        cleanup.callback(server.stop)
        points: dict[str, Path] = {}
        for name in users:
            process = MountProcess(tmp_path / f"mnt-{name}", server.url, users[name],
                                   cache_dir=tmp_path / f"cache-{name}", metadata_ttl=TTL)
            process.start(60)
            mounts.append(process)
            cleanup.callback(process.stop)
            points[name] = Path(process.mountpoint)
        yield server, orgs, points
    assert not any(is_mounted(p.mountpoint) for p in mounts)


def test_members_share_the_org_folder_and_removal_hides_it(team):
    _server, orgs, mnt = team
    assert os.listdir(mnt["ann"] / "data")[1:3] == ["ann", "lab"]  # .my, the user, their organization
    assert "lab" in os.listdir(mnt["bob"] / "data")
    assert "lab" not in os.listdir(mnt["cat"] / "data")
    (mnt["ann"] / "data" / "lab" / "shared").mkdir()  # an org admin makes a collection
    (mnt["ann"] / "data" / "lab" / "shared" / "notes.txt").write_text("from ann")
    eventually(lambda: (mnt["bob"] / "data" / "lab" / "shared" / "notes.txt").is_file())
    assert (mnt["bob"] / "data" / "lab" / "shared" / "notes.txt").read_text() == "from ann"
    (mnt["bob"] / "data" / "lab" / "shared" / "reply.txt").write_text("from bob")  # a member writes
    eventually(lambda: (mnt["ann"] / "data" / "lab" / "shared" / "reply.txt").is_file())
    with pytest.raises(PermissionError):  # a member makes no collection
        (mnt["bob"] / "data" / "lab" / "bobs").mkdir()
    assert unreadable(mnt["cat"] / "data" / "lab" / "shared" / "notes.txt")

    write_members(orgs, ann="admin")  # JupyterHub took bob out of the group
    eventually(lambda: "lab" not in os.listdir(mnt["bob"] / "data"))
    eventually(lambda: unreadable(mnt["bob"] / "data" / "lab" / "shared" / "notes.txt"))
    assert (mnt["ann"] / "data" / "lab" / "shared" / "reply.txt").read_text() == "from bob"
