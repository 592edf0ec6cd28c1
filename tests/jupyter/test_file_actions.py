"""The file browser's actions inside ``algofs/`` through a real Jupyter server's contents API (issue 24, 3).

What JupyterLab sends for Delete, Rename, Copy/Paste and Duplicate (``POST`` with ``copy_from``), New Folder
and Download (``GET /files/…``), against a real server in three set-ups: FUSE with ``AlgofsContentsManager``
(what ``algofs demo`` runs), FUSE with jupyter_server's own contents manager (the extension enabled alone),
and the no-FUSE fallback. Inside ``algofs/`` a delete is permanent (docs/jupyter.md "Deleting in algofs/"): a
file or a non-empty folder is gone from the API server, and no ``.Trash-<uid>`` is left anywhere. Outside it
JupyterLab's normal move-to-trash is kept.
"""

from __future__ import annotations

import base64
import json
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from jupyter_process import CONTENTS_MANAGER, JupyterProcess

from algofs_jupyter.jupyter.fuse_check import fuse_unavailable_reason
from algofs_jupyter.mount.mount_table import is_algofs_mount
from algofs_jupyter.testing.ports import free_ports

COLLECTION = "algofs/data/demo/datasets"
TEXT = {"type": "file", "format": "text", "content": "hello algofs\n"}

SETUPS = {
    "fuse": (True, CONTENTS_MANAGER),
    "fuse-default-manager": (True, None),
    "fallback": (False, CONTENTS_MANAGER),
}


class Setup:
    """A Jupyter server (with the extension and its embedded demo API server) and where things land."""

    def __init__(self, name: str, tmp: Path):
        self.name, self.tmp = name, tmp
        self.fuse, contents_manager = SETUPS[name]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ALGORITHMIA_", "ALGOFS_"))}
        env.update(JUPYTER_DATA_DIR=str(tmp / "data"), JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
                   XDG_CACHE_HOME=str(tmp / "cache"), XDG_DATA_HOME=str(tmp / "xdg"))  # fmt: skip
        if not self.fuse:
            env["ALGOFS_DISABLE_FUSE"] = "1"
        (tmp / "root").mkdir()
        port = free_ports(1)[0]
        command = [sys.executable, "-m", "jupyter_server", "--no-browser", f"--ServerApp.port={port}",
                   "--IdentityProvider.token=test-token", f"--ServerApp.root_dir={tmp / 'root'}"]  # fmt: skip
        if contents_manager:
            command.append(f"--ServerApp.contents_manager_class={contents_manager}")
        if os.geteuid() == 0:
            command.append("--allow-root")
        self.server = JupyterProcess(command, port, "test-token", env, tmp / "jupyter.log")

    @property
    def api_root(self) -> Path:
        """The embedded API server's content root: what every other client of the API sees."""
        return self.tmp / "data/algofs/demo-server"

    def on_api_server(self, path: str) -> Path:
        """Where ``algofs/data/<user>/…`` is stored by the embedded server (local storage)."""
        assert path.startswith("algofs/data/")
        return self.api_root / "data" / path[len("algofs/data/") :]

    def trash_dirs(self) -> list[str]:
        """Every freedesktop trash folder (``.Trash``, ``.Trash-<uid>``) on the API server or the mount."""
        found = [str(p) for p in self.api_root.rglob(".Trash*")]
        mount = self.tmp / "root/algofs"
        if is_algofs_mount(mount):
            found += [str(mount / name) for name in os.listdir(mount) if name.startswith(".Trash")]
        return found


@pytest.fixture(scope="module", params=list(SETUPS))
def setup(request, tmp_path_factory) -> Iterator[Setup]:
    fuse, _ = SETUPS[request.param]
    if fuse and fuse_unavailable_reason():
        pytest.skip(fuse_unavailable_reason())
    tmp = tmp_path_factory.mktemp(request.param)
    env = Setup(request.param, tmp)
    env.server.start()
    try:
        if fuse:
            env.server.wait_for(lambda: env.server.get("/algofs/status").json()["mounted"], what="the mount")
        else:
            env.server.wait_for(lambda: env.server.get(f"/api/contents/{COLLECTION}").status_code == 200,
                                what="the fallback contents")  # fmt: skip
        yield env
    finally:
        env.server.stop()
        assert not is_algofs_mount(tmp / "root/algofs")


@pytest.fixture
def folder(setup: Setup, request) -> str:
    """A fresh folder of the test's own in the demo collection, made as the file browser's New Folder does."""
    made = setup.server.request("POST", f"/api/contents/{COLLECTION}", json={"type": "directory"})
    assert made.status_code == 201, made.text
    name = re.sub(r"\W", "-", request.node.name)[:60]
    renamed = setup.server.request("PATCH", f"/api/contents/{made.json()['path']}",
                                   json={"path": f"{COLLECTION}/{name}"})  # fmt: skip
    assert renamed.status_code == 200, renamed.text
    return renamed.json()["path"]


def put(setup: Setup, path: str, content: str = "hello algofs\n") -> None:
    saved = setup.server.request("PUT", f"/api/contents/{path}", json={**TEXT, "content": content})
    assert saved.status_code in (200, 201), saved.text


def names(setup: Setup, path: str) -> list[str]:
    listing = setup.server.get(f"/api/contents/{path}")
    assert listing.status_code == 200, listing.text
    return sorted(child["name"] for child in listing.json()["content"])


def test_delete_a_file_removes_it_from_the_api_server(setup, folder):
    put(setup, f"{folder}/t.txt")
    assert setup.on_api_server(f"{folder}/t.txt").is_file()
    deleted = setup.server.request("DELETE", f"/api/contents/{folder}/t.txt")
    assert deleted.status_code == 204, deleted.text
    assert setup.server.get(f"/api/contents/{folder}/t.txt").status_code == 404
    assert not setup.on_api_server(f"{folder}/t.txt").exists()
    assert setup.trash_dirs() == []


def test_delete_a_non_empty_folder_removes_it_whole(setup, folder):
    for sub in ("inner", "inner/deeper"):
        made = setup.server.request("PUT", f"/api/contents/{folder}/{sub}", json={"type": "directory"})
        assert made.status_code == 201, made.text
    put(setup, f"{folder}/inner/a.txt")
    put(setup, f"{folder}/inner/deeper/b.txt")
    put(setup, f"{folder}/inner/c.csv", "x,y\n1,2\n")
    assert names(setup, f"{folder}/inner") == ["a.txt", "c.csv", "deeper"]
    deleted = setup.server.request("DELETE", f"/api/contents/{folder}/inner")
    assert deleted.status_code == 204, deleted.text
    assert names(setup, folder) == []
    assert not setup.on_api_server(f"{folder}/inner").exists()
    assert setup.trash_dirs() == []


def test_the_mount_point_and_the_folders_above_collections_are_not_deleted(setup):
    refused = setup.server.request("DELETE", "/api/contents/algofs")
    assert refused.status_code == 400, refused.text
    assert "algofs" in names(setup, "")
    # a recursive delete of a user's folder would empty every collection in it before failing on the folder
    for place in ("algofs/data/demo", "algofs/data"):
        refused = setup.server.request("DELETE", f"/api/contents/{place}")
        assert refused.status_code == 403, (place, refused.status_code, refused.text)
        assert "only collections (data/<user>/<collection>)" in refused.json()["message"]
    assert setup.on_api_server(f"{COLLECTION}/cities.csv").is_file()
    assert "cities.csv" in names(setup, COLLECTION)


def test_rename_a_file_and_a_folder(setup, folder):
    put(setup, f"{folder}/old.txt", "renamed content\n")
    moved = setup.server.request(
        "PATCH", f"/api/contents/{folder}/old.txt", json={"path": f"{folder}/new.txt"}
    )
    assert moved.status_code == 200, moved.text
    assert names(setup, folder) == ["new.txt"]
    assert setup.server.get(f"/api/contents/{folder}/new.txt").json()["content"] == "renamed content\n"
    moved = setup.server.request("PATCH", f"/api/contents/{folder}", json={"path": f"{folder}-renamed"})
    assert moved.status_code == 200, moved.text
    assert names(setup, f"{folder}-renamed") == ["new.txt"]
    assert setup.on_api_server(f"{folder}-renamed/new.txt").read_text() == "renamed content\n"
    assert not setup.on_api_server(folder).exists()


def test_copy_paste_and_duplicate(setup, folder):
    put(setup, f"{folder}/t.txt", "copy me\n")
    # Duplicate: copy_from into the same folder makes t-Copy1.txt
    duplicate = setup.server.request("POST", f"/api/contents/{folder}", json={"copy_from": f"{folder}/t.txt"})
    assert duplicate.status_code == 201, duplicate.text
    assert duplicate.json()["name"] == "t-Copy1.txt"
    # Copy + Paste into another folder keeps the name
    made = setup.server.request("POST", f"/api/contents/{folder}", json={"type": "directory"})
    target = made.json()["path"]
    pasted = setup.server.request("POST", f"/api/contents/{target}", json={"copy_from": f"{folder}/t.txt"})
    assert pasted.status_code == 201, pasted.text
    assert pasted.json()["path"] == f"{target}/t.txt"
    for path in (f"{folder}/t-Copy1.txt", f"{target}/t.txt"):
        assert setup.server.get(f"/api/contents/{path}").json()["content"] == "copy me\n"
        assert setup.on_api_server(path).read_text() == "copy me\n"
    assert setup.on_api_server(f"{folder}/t.txt").read_text() == "copy me\n"  # the original stays


def test_copy_paste_a_folder(setup, folder):
    """Paste of a copied folder (JupyterLab sends ``copy_from`` with the folder): the whole tree, named as
    jupyter_server names it; in fallback mode it was a 400 "Can't copy directories"."""
    for sub in ("src", "src/sub", "dest"):
        made = setup.server.request("PUT", f"/api/contents/{folder}/{sub}", json={"type": "directory"})
        assert made.status_code == 201, made.text
    put(setup, f"{folder}/src/a.txt", "a\n")
    put(setup, f"{folder}/src/sub/b.txt", "b\n")
    pasted = setup.server.request("POST", f"/api/contents/{folder}/dest", json={"copy_from": f"{folder}/src"})
    assert pasted.status_code == 201, pasted.text
    assert pasted.json()["path"] == f"{folder}/dest/src" and pasted.json()["type"] == "directory"
    again = setup.server.request("POST", f"/api/contents/{folder}", json={"copy_from": f"{folder}/src"})
    assert again.status_code == 201, again.text
    assert again.json()["path"] == f"{folder}/src-Copy1"
    for copy in ("dest/src", "src-Copy1"):
        assert names(setup, f"{folder}/{copy}") == ["a.txt", "sub"]
        assert setup.on_api_server(f"{folder}/{copy}/sub/b.txt").read_text() == "b\n"
    assert setup.on_api_server(f"{folder}/src/a.txt").read_text() == "a\n"  # the original stays


def test_new_folder_and_new_file(setup, folder):
    made = setup.server.request("POST", f"/api/contents/{folder}", json={"type": "directory"})
    assert made.status_code == 201, made.text
    assert made.json()["name"] == "Untitled Folder" and made.json()["type"] == "directory"
    new_file = setup.server.request("POST", f"/api/contents/{folder}", json={"type": "file", "ext": ".txt"})
    assert new_file.status_code == 201, new_file.text
    assert names(setup, folder) == ["Untitled Folder", "untitled.txt"]
    assert setup.on_api_server(f"{folder}/Untitled Folder").is_dir()
    assert setup.on_api_server(f"{folder}/untitled.txt").is_file()


def test_download_a_file(setup, folder):
    payload = bytes(range(256)) * 64
    upload = {"type": "file", "format": "base64", "content": base64.b64encode(payload).decode("ascii")}
    saved = setup.server.request("PUT", f"/api/contents/{folder}/blob.bin", json=upload)
    assert saved.status_code in (200, 201), saved.text
    # the file browser's Download: /files/<path>?download=1
    downloaded = setup.server.get(f"/files/{folder}/blob.bin", params={"download": "1"})
    assert downloaded.status_code == 200, downloaded.text[:500]
    assert downloaded.content == payload
    assert "attachment" in downloaded.headers.get("Content-Disposition", "")
    # what an open asks for: the contents model with content
    model = setup.server.get(f"/api/contents/{folder}/blob.bin", params={"content": "1", "format": "base64"})
    assert model.status_code == 200, model.text[:500]
    assert base64.b64decode(model.json()["content"]) == payload
    # a text file through /files/ as well
    put(setup, f"{folder}/t.txt", "downloaded text\n")
    assert setup.server.get(f"/files/{folder}/t.txt").content == b"downloaded text\n"


def test_outside_algofs_a_delete_still_goes_to_the_trash(setup):
    """JupyterLab's own behaviour everywhere else: the server's delete_to_trash (default True) is kept."""
    put(setup, f"local-{setup.name}.txt", "local\n")
    deleted = setup.server.request("DELETE", f"/api/contents/local-{setup.name}.txt")
    assert deleted.status_code == 204, deleted.text
    assert not (setup.tmp / f"root/local-{setup.name}.txt").exists()
    trashed = setup.tmp / f"xdg/Trash/files/local-{setup.name}.txt"
    assert trashed.read_text() == "local\n"


def test_the_page_says_which_delete(setup):
    """JupyterLab words the file browser's delete from the page's ``delete_to_trash``: served False (the
    menu entry reads "Delete"), with the server's own setting as ``algofs_delete_to_trash`` for the dialogs
    outside algofs/ (labextension/src/deleteWording.ts)."""
    page = setup.server.get("/lab")
    assert page.status_code == 200, page.text[:300]
    found = re.search(
        r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', page.text, re.S
    )
    assert found, page.text[:500]
    config = json.loads(found.group(1))
    assert config["delete_to_trash"] is False
    assert config["algofs_delete_to_trash"] is True
