"""Checkpoints of files on the mount stay on local disk (issue 25, item 1).

JupyterLab checkpoints every file it opens. A real Jupyter server with the extension in fuse mode (the demo's
``AlgofsContentsManager``, and jupyter_server's default contents manager) is asked what JupyterLab asks when
a file on the mount is opened: ``GET`` with content, then ``POST .../checkpoints``. Nothing named
``.ipynb_checkpoints`` may then exist on the API server (its content root on disk, and the official
``Algorithmia`` client's listing), the checkpoint is in the private local directory, and restoring works.
Checkpoints of files outside the mount still go next to the file, as jupyter_server puts them.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest
from jupyter_process import CONTENTS_MANAGER, JupyterProcess
from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from tornado.web import HTTPError

from algofs_jupyter.jupyter.checkpoints import install_mount_checkpoints
from algofs_jupyter.jupyter.fuse_check import fuse_unavailable_reason
from algofs_jupyter.jupyter.kernel_handoff import HANDOFF_FILE_ENV
from algofs_jupyter.mount.mount_table import is_algofs_mount
from algofs_jupyter.testing.ports import free_ports

FILE = "algofs/data/demo/datasets/cities.csv"


def start_server(tmp: Path, contents_manager: str | None) -> JupyterProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALGORITHMIA_", "ALGOFS_"))}
    env.update(JUPYTER_DATA_DIR=str(tmp / "data"), JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
               XDG_CACHE_HOME=str(tmp / "cache"))  # fmt: skip
    (tmp / "root").mkdir()
    port = free_ports(1)[0]
    command = [sys.executable, "-m", "jupyter_server", "--no-browser", f"--ServerApp.port={port}",
               "--IdentityProvider.token=test-token", f"--ServerApp.root_dir={tmp / 'root'}"]  # fmt: skip
    if contents_manager:
        command.append(f"--ServerApp.contents_manager_class={contents_manager}")
    if os.geteuid() == 0:
        command.append("--allow-root")
    return JupyterProcess(command, port, "test-token", env, tmp / "jupyter.log").start()


def checkpoint_names_on_server(tmp: Path) -> list[str]:
    """Every ``.ipynb_checkpoints`` (file or collection) in the embedded API server's content root."""
    content_root = tmp / "data/algofs/demo-server"
    assert content_root.is_dir(), content_root
    return [
        os.path.join(top, name)
        for top, dirs, files in os.walk(content_root)
        for name in dirs + files
        if ".ipynb_checkpoints" in name or "-checkpoint" in name
    ]


def listed_by_algorithmia_client(server: JupyterProcess, collection: str) -> list[str]:
    import Algorithmia

    handoff = _handoff(server)
    client = Algorithmia.client(api_key=handoff["api_key"], api_address=handoff["api_address"])
    directory = client.dir(f"data://{collection}")
    return [entry.getName() for entry in directory.list()]


def _handoff(server: JupyterProcess) -> dict:
    """The API endpoint (address and key) the extension published for its kernels."""
    runtime = Path(server.env["JUPYTER_RUNTIME_DIR"])
    return json.loads(next(runtime.glob("algofs-*.json")).read_text())


def test_checkpoint_paths_without_a_server(tmp_path, monkeypatch):
    """Under the mount point: the private local directory (0700 levels); elsewhere: next to the file."""
    root, mount = tmp_path / "root", tmp_path / "root/algofs"
    mount.mkdir(parents=True)
    handoff = tmp_path / "handoff.json"
    handoff.write_text(json.dumps({"pid": os.getpid(), "mountpoint_abs": str(mount)}))
    monkeypatch.setenv(HANDOFF_FILE_ENV, str(handoff))
    manager = AsyncLargeFileManager(root_dir=str(root))
    assert install_mount_checkpoints(manager)
    checkpoints = manager.checkpoints
    checkpoints.algofs_checkpoint_root = str(tmp_path / "private/checkpoints")

    on_mount = Path(checkpoints.checkpoint_path("checkpoint", "/algofs/data/demo/a.csv"))
    assert on_mount.name == "a-checkpoint.csv" and on_mount.parent.name == "demo"
    assert on_mount.is_relative_to(tmp_path / "private/checkpoints")
    assert not (mount / "data").exists()
    level = on_mount.parent
    while level != tmp_path / "private":
        assert stat.S_IMODE(level.stat().st_mode) == 0o700, level
        level = level.parent
    (root / "notes").mkdir()
    local = checkpoints.checkpoint_path("checkpoint", "notes/b.txt")
    assert local == str(root / "notes/.ipynb_checkpoints/b-checkpoint.txt")
    with pytest.raises(HTTPError):
        checkpoints.checkpoint_path("checkpoint", "algofs/data/../../../b.txt")


@pytest.mark.fuse
@pytest.mark.parametrize(
    "contents_manager", [CONTENTS_MANAGER, None], ids=["algofs-manager", "default-manager"]
)
def test_opening_a_file_on_the_mount_checkpoints_it_on_local_disk(tmp_path, contents_manager):
    if fuse_unavailable_reason():
        pytest.skip(fuse_unavailable_reason())
    server = start_server(tmp_path, contents_manager)
    try:
        server.wait_for(lambda: server.get("/algofs/status").json()["mounted"], what="the mount")
        status = server.get("/algofs/status").json()
        assert status["mode"] == "fuse", status
        # what JupyterLab does when a file is opened: read it, list its checkpoints, create one
        opened = server.get(f"/api/contents/{FILE}", params={"content": "1", "type": "file"}).json()
        original = opened["content"]
        assert server.get(f"/api/contents/{FILE}/checkpoints").json() == []
        created = server.request("POST", f"/api/contents/{FILE}/checkpoints")
        assert created.status_code == 201, created.text
        checkpoint_id = created.json()["id"]
        assert [c["id"] for c in server.get(f"/api/contents/{FILE}/checkpoints").json()] == [checkpoint_id]

        # nothing reached the API server: not on its disk, not in the official client's listing
        assert checkpoint_names_on_server(tmp_path) == []
        assert "datasets" in listed_by_algorithmia_client(server, "demo")  # the client does see the demo
        for collection in ("demo", "demo/datasets"):
            assert ".ipynb_checkpoints" not in listed_by_algorithmia_client(server, collection), collection
        assert not os.path.lexists(tmp_path / "root/algofs/data/demo/datasets/.ipynb_checkpoints")

        # the checkpoint is on local disk, in a private (0700) directory outside the mount
        local = list((tmp_path / "data/algofs/checkpoints").rglob("cities-checkpoint.csv"))
        assert len(local) == 1 and local[0].read_text() == original
        assert stat.S_IMODE((tmp_path / "data/algofs/checkpoints").stat().st_mode) == 0o700
        assert stat.S_IMODE(local[0].parent.stat().st_mode) == 0o700

        # restoring puts the checkpointed content back through the mount
        saved = server.request(
            "PUT", f"/api/contents/{FILE}", json={"type": "file", "format": "text", "content": "changed\n"}
        )
        assert saved.status_code == 200, saved.text
        restored = server.request("POST", f"/api/contents/{FILE}/checkpoints/{checkpoint_id}")
        assert restored.status_code == 204, restored.text
        again = server.get(f"/api/contents/{FILE}", params={"content": "1", "type": "file"}).json()
        assert again["content"] == original
        assert checkpoint_names_on_server(tmp_path) == []

        # deleting the checkpoint removes the local copy
        deleted = server.request("DELETE", f"/api/contents/{FILE}/checkpoints/{checkpoint_id}")
        assert deleted.status_code == 204, deleted.text
        assert server.get(f"/api/contents/{FILE}/checkpoints").json() == []

        # a file outside the mount is checkpointed next to it, as jupyter_server always did
        local_file = server.request(
            "PUT", "/api/contents/local.txt", json={"type": "file", "format": "text", "content": "here\n"}
        )
        assert local_file.status_code in (200, 201), local_file.text
        assert server.request("POST", "/api/contents/local.txt/checkpoints").status_code == 201
        assert (tmp_path / "root/.ipynb_checkpoints/local-checkpoint.txt").read_text() == "here\n"
    finally:
        server.stop()
    assert not is_algofs_mount(tmp_path / "root/algofs")
