"""The file browser's fallback: a real Jupyter server without FUSE serves ./algofs from the API.

The server runs ``AlgofsContentsManager`` with ``ALGOFS_DISABLE_FUSE=1`` and no API configured (so the
extension starts the embedded demo server); every call goes through ``/api/contents`` like JupyterLab's.
"""

from __future__ import annotations

import base64
import hashlib
import os
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from jupyter_process import CONTENTS_MANAGER, JupyterProcess

import algofs_jupyter.server.demo
from algofs_jupyter.jupyter.fuse_check import fuse_unavailable_reason
from algofs_jupyter.mount.mount_table import is_algofs_mount
from algofs_jupyter.testing.ports import free_ports

DEMO_CONTENT = Path(algofs_jupyter.server.demo.__file__).parent / "content"
BASE = "/api/contents/algofs/data/demo"


def start_server(tmp: Path, fuse: bool) -> JupyterProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALGORITHMIA_", "ALGOFS_"))}
    env.update(JUPYTER_DATA_DIR=str(tmp / "data"), JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
               XDG_CACHE_HOME=str(tmp / "cache"))  # fmt: skip
    if not fuse:
        env["ALGOFS_DISABLE_FUSE"] = "1"
    (tmp / "root").mkdir()
    port = free_ports(1)[0]
    command = [sys.executable, "-m", "jupyter_server", "--no-browser", f"--ServerApp.port={port}",
               "--IdentityProvider.token=test-token", f"--ServerApp.root_dir={tmp / 'root'}",
               f"--ServerApp.contents_manager_class={CONTENTS_MANAGER}",
               "--AlgofsContentsManager.algofs_max_file_size=1000000"]  # fmt: skip
    if os.geteuid() == 0:
        command.append("--allow-root")
    return JupyterProcess(command, port, "test-token", env, tmp / "jupyter.log").start()


@pytest.fixture(scope="module")
def fallback_server(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("fallback"), fuse=False)
    try:
        server.wait_for(lambda: server.get(BASE).status_code == 200, what="the API endpoint")
        yield server
    finally:
        server.stop()


def names(model: dict) -> list[str]:
    return sorted(child["name"] for child in model["content"])


def test_root_lists_the_mountpoint_and_status_says_fallback(fallback_server):
    root = fallback_server.get("/api/contents").json()
    assert {"name": "algofs", "type": "directory"}.items() <= next(
        c for c in root["content"] if c["name"] == "algofs"
    ).items()
    status = fallback_server.get("/algofs/status").json()
    assert status["mode"] == "fallback" and "ALGOFS_DISABLE_FUSE" in status["reason"]
    assert not is_algofs_mount(status["mountpoint_abs"])


def test_lists_directories_like_the_demo_store(fallback_server):
    model = fallback_server.get(f"{BASE}/datasets").json()
    assert model["type"] == "directory" and model["path"] == "algofs/data/demo/datasets"
    assert names(model) == sorted(p.name for p in (DEMO_CONTENT / "data/demo/datasets").iterdir())
    top = fallback_server.get("/api/contents/algofs").json()
    assert "data" in names(top)


def test_opens_text_and_binary_files(fallback_server):
    text = fallback_server.get(f"{BASE}/datasets/cities.csv").json()
    assert (
        text["format"] == "text"
        and text["content"] == (DEMO_CONTENT / "data/demo/datasets/cities.csv").read_text()
    )
    image_dir = fallback_server.get(f"{BASE}/images").json()
    png = next(c for c in image_dir["content"] if c["name"].endswith(".png"))
    binary = fallback_server.get(f"/api/contents/{png['path']}").json()
    assert binary["format"] == "base64"
    assert base64.b64decode(binary["content"]).startswith(b"\x89PNG")


def test_refuses_files_over_the_size_limit_with_a_clear_error(fallback_server):
    response = fallback_server.get(f"{BASE}/large/large.bin")
    assert response.status_code == 413
    assert "fallback file browser opens files up to" in response.json()["message"]
    listing = fallback_server.get(f"{BASE}/large/large.bin", params={"content": "0"}).json()
    assert listing["size"] == 1024 * 2**20


def test_new_folder_save_rename_delete(fallback_server):
    folder = fallback_server.request("POST", BASE, json={"type": "directory"}).json()
    assert folder["type"] == "directory"
    folder_path = folder["path"]
    saved = fallback_server.request(
        "PUT",
        f"/api/contents/{folder_path}/note.txt",
        json={"type": "file", "format": "text", "content": "hello algofs"},
    )
    assert saved.status_code in (200, 201), saved.text
    moved = fallback_server.request(
        "PATCH", f"/api/contents/{folder_path}/note.txt", json={"path": f"{folder_path}/moved.txt"}
    )
    assert moved.status_code == 200, moved.text
    assert names(fallback_server.get(f"/api/contents/{folder_path}").json()) == ["moved.txt"]
    assert fallback_server.get(f"/api/contents/{folder_path}/moved.txt").json()["content"] == "hello algofs"
    notebook = fallback_server.request(
        "POST", f"/api/contents/{folder_path}", json={"type": "notebook"}
    ).json()
    opened = fallback_server.get(f"/api/contents/{notebook['path']}").json()
    assert opened["type"] == "notebook" and opened["content"]["nbformat"] == 4
    assert fallback_server.request("DELETE", f"/api/contents/{folder_path}/moved.txt").status_code == 204
    assert names(fallback_server.get(f"/api/contents/{folder_path}").json()) == [notebook["name"]]
    # a folder that still holds something goes whole (permanent: test_file_actions.py)
    assert fallback_server.request("DELETE", f"/api/contents/{folder_path}").status_code == 204
    assert fallback_server.get(f"/api/contents/{folder_path}").status_code == 404


def test_fallback_refuses_names_and_places_with_the_rule(fallback_server):
    text = {"type": "file", "format": "text", "content": "x"}
    response = fallback_server.request("PUT", f"{BASE}/datasets/{quote('what?.txt')}", json=text)
    assert response.status_code == 400, response.text
    assert "`?` and `#` can't be in names on this storage" in response.json()["message"]
    folder = fallback_server.request("POST", "/api/contents/algofs/data", json={"type": "directory"})
    assert folder.status_code == 403, folder.text
    assert "folders can be made only in a user's folder data/<user>/" in folder.json()["message"]


def test_opens_documents_with_their_hash_as_jupyterlab_asks(fallback_server):
    """JupyterLab 4 opens a document with ``hash=1``; a fallback model without one was a 500 "Keys
    unexpectedly None: ['hash', 'hash_algorithm']", so no notebook in algofs/ opened (issue 25, seen by
    algofs-rename-save.spec.ts)."""
    cities = fallback_server.get(f"{BASE}/datasets/cities.csv", params={"content": "1", "hash": "1"})
    assert cities.status_code == 200, cities.text
    seed = (DEMO_CONTENT / "data/demo/datasets/cities.csv").read_bytes()
    assert cities.json()["hash_algorithm"] == "sha256"
    assert cities.json()["hash"] == hashlib.sha256(seed).hexdigest()
    created = fallback_server.request("POST", f"{BASE}/datasets", json={"type": "notebook"})
    assert created.status_code == 201, created.text
    path = created.json()["path"]
    try:
        hashes = set()
        for params in ({"type": "notebook", "content": "1", "hash": "1"}, {"content": "0", "hash": "1"}):
            opened = fallback_server.get(f"/api/contents/{path}", params=params)
            assert opened.status_code == 200, (params, opened.status_code, opened.text)
            hashes.add(opened.json()["hash"])
        assert len(hashes) == 1 and None not in hashes
    finally:
        fallback_server.request("DELETE", f"/api/contents/{path}")


def test_local_files_are_untouched(fallback_server):
    saved = fallback_server.request(
        "PUT", "/api/contents/local.txt", json={"type": "file", "format": "text", "content": "on disk"}
    )
    assert saved.status_code in (200, 201)
    assert fallback_server.get("/api/contents/local.txt").json()["content"] == "on disk"
    assert (
        fallback_server.request(
            "PATCH", "/api/contents/local.txt", json={"path": "algofs/data/demo/local.txt"}
        ).status_code
        == 400
    )


@pytest.mark.fuse
def test_mounted_tree_is_served_from_disk(tmp_path):
    if fuse_unavailable_reason():
        pytest.skip(fuse_unavailable_reason())
    server = start_server(tmp_path, fuse=True)
    try:
        server.wait_for(lambda: server.get("/algofs/status").json()["mounted"], what="the mount")
        model = server.get(f"{BASE}/datasets").json()
        assert names(model) == sorted(p.name for p in (DEMO_CONTENT / "data/demo/datasets").iterdir())
        # Delegated to the default manager: local-file models carry the on-disk hash fields / real mtimes.
        assert model["last_modified"] != "1970-01-01T00:00:00Z"
    finally:
        server.stop()
    assert not is_algofs_mount(tmp_path / "root/algofs")


@pytest.mark.fuse
def test_a_path_the_api_refuses_answers_403_not_500(tmp_path):
    """The mount shows a refused path as a ``d--x--x--x`` directory whose listing fails with EACCES."""
    if fuse_unavailable_reason():
        pytest.skip(fuse_unavailable_reason())
    secret = (DEMO_CONTENT / "data/alice/private/secret.txt").read_text()
    server = start_server(tmp_path, fuse=True)
    try:
        server.wait_for(lambda: server.get("/algofs/status").json()["mounted"], what="the mount")
        for path in ("algofs/data/alice/private", "algofs/data/alice/private/secret.txt"):
            response = server.get(f"/api/contents/{path}")
            assert response.status_code == 403, (path, response.status_code, response.text)
            assert f"Permission denied: {path}" in response.json()["message"]
            assert secret not in response.text
        # without content the refused directory's model is still served; readable neighbours are unaffected
        bare = server.get("/api/contents/algofs/data/alice/private", params={"content": "0"})
        assert bare.status_code == 200 and bare.json()["type"] == "directory"
        assert "hello.txt" in names(server.get("/api/contents/algofs/data/alice/public").json())
    finally:
        server.stop()
    assert not is_algofs_mount(tmp_path / "root/algofs")


@pytest.mark.fuse
def test_refused_names_and_places_answer_4xx_naming_the_rule(tmp_path):
    """Issue 25 item 5: a name the API can't carry is a 400 saying which characters and why (was a 500
    "[Errno 22] Invalid argument" on upload, "Unknown error renaming file" on rename); a new folder where the
    API can't make one is a 403 saying where folders go (was a bare "Permission denied")."""
    if fuse_unavailable_reason():
        pytest.skip(fuse_unavailable_reason())
    server = start_server(tmp_path, fuse=True)
    try:
        server.wait_for(lambda: server.get("/algofs/status").json()["mounted"], what="the mount")
        text = {"type": "file", "format": "text", "content": "hello\n"}
        for name in ("what?.txt", "weird#name.txt"):
            response = server.request("PUT", f"{BASE}/datasets/{quote(name)}", json=text)
            assert response.status_code == 400, (name, response.status_code, response.text)
            message = response.json()["message"]
            assert name in message and "`?` and `#` can't be in names on this storage" in message
        # a chunked upload's first chunk is a save too
        chunked = server.request("PUT", f"{BASE}/datasets/{quote('what?.txt')}", json={**text, "chunk": 1})
        assert chunked.status_code == 400 and "can't be in names" in chunked.json()["message"]

        created = server.request("PUT", f"{BASE}/datasets/fine.txt", json=text)
        assert created.status_code == 201, created.text
        renamed = server.request("PATCH", f"{BASE}/datasets/fine.txt",
                                 json={"path": "algofs/data/demo/datasets/weird#name.txt"})  # fmt: skip
        assert renamed.status_code == 400, (renamed.status_code, renamed.text)
        assert "`?` and `#` can't be in names on this storage" in renamed.json()["message"]
        assert server.get(f"{BASE}/datasets/fine.txt").status_code == 200  # left where it was

        for parent in ("algofs", "algofs/data"):
            folder = server.request("POST", f"/api/contents/{parent}", json={"type": "directory"})
            assert folder.status_code == 403, (parent, folder.status_code, folder.text)
            assert "folders can be made only in a user's folder data/<user>/" in folder.json()["message"]
        # where folders do go, they are made
        made = server.request("POST", "/api/contents/algofs/data/demo/datasets", json={"type": "directory"})
        assert made.status_code == 201, made.text
    finally:
        server.stop()
    assert not is_algofs_mount(tmp_path / "root/algofs")
