"""Refused names and places under the FUSE mount, jupyter_server's own contents manager (issue 25, item 5).

The extension enabled alone keeps jupyter_server's file manager; the mount refuses ``what?.txt`` with EINVAL
and a folder in ``algofs/data`` with EACCES, which that manager answered as a 500 "Unexpected error …
[Errno 22] Invalid argument", "Unknown error renaming file" and a bare "Permission denied". A real server
(FUSE, embedded demo API server) is asked what JupyterLab's upload, rename and New Folder ask.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from jupyter_process import JupyterProcess

from algofs_jupyter.jupyter.fuse_check import fuse_unavailable_reason
from algofs_jupyter.mount.mount_table import is_algofs_mount
from algofs_jupyter.names import NAME_RULE
from algofs_jupyter.testing.ports import free_ports

DATASETS = "/api/contents/algofs/data/demo/datasets"


def start_server(tmp: Path) -> JupyterProcess:
    """jupyter_server with the extension and no contents manager configured (its own)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALGORITHMIA_", "ALGOFS_"))}
    env.update(JUPYTER_DATA_DIR=str(tmp / "data"), JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
               XDG_CACHE_HOME=str(tmp / "cache"))  # fmt: skip
    (tmp / "root").mkdir()
    port = free_ports(1)[0]
    command = [sys.executable, "-m", "jupyter_server", "--no-browser", f"--ServerApp.port={port}",
               "--IdentityProvider.token=test-token", f"--ServerApp.root_dir={tmp / 'root'}"]  # fmt: skip
    if os.geteuid() == 0:
        command.append("--allow-root")
    return JupyterProcess(command, port, "test-token", env, tmp / "jupyter.log").start()


@pytest.mark.fuse
def test_jupyter_servers_own_manager_refuses_names_and_places_with_the_rule(tmp_path):
    if fuse_unavailable_reason():
        pytest.skip(fuse_unavailable_reason())
    server = start_server(tmp_path)
    try:
        server.wait_for(lambda: server.get("/algofs/status").json()["mounted"], timeout=120, what="the mount")
        text = {"type": "file", "format": "text", "content": "hello\n"}
        for name in ("what?.txt", "weird#name.txt"):  # an upload is a save
            response = server.request("PUT", f"{DATASETS}/{quote(name)}", json=text)
            assert response.status_code == 400, (name, response.status_code, response.text)
            message = response.json()["message"]
            assert name in message and NAME_RULE in message

        assert server.request("PUT", f"{DATASETS}/fine.txt", json=text).status_code == 201
        renamed = server.request("PATCH", f"{DATASETS}/fine.txt",
                                 json={"path": "algofs/data/demo/datasets/what?.txt"})  # fmt: skip
        assert renamed.status_code == 400, (renamed.status_code, renamed.text)
        assert NAME_RULE in renamed.json()["message"]
        assert server.get(f"{DATASETS}/fine.txt").status_code == 200  # left where it was

        # New Folder where the API can't make one says where folders go
        for parent in ("algofs", "algofs/data"):
            folder = server.request("POST", f"/api/contents/{parent}", json={"type": "directory"})
            assert folder.status_code == 403, (parent, folder.status_code, folder.text)
            assert "folders can be made only in a user's folder data/<user>/" in folder.json()["message"]
        # what the API can hold still works: a new folder in a collection, saving over an existing file
        assert server.request("POST", DATASETS, json={"type": "directory"}).status_code == 201
        assert server.request("PUT", f"{DATASETS}/fine.txt", json=text).status_code == 200
        # outside the mount, jupyter_server's own rules
        assert server.request("PUT", "/api/contents/what%3F.txt", json=text).status_code == 201
    finally:
        server.stop()
    assert not is_algofs_mount(tmp_path / "root/algofs")
