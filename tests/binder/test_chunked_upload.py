"""JupyterLab's chunked upload through a real Jupyter server's contents API, FUSE and fallback mode.

The browser sends a large file as ``PUT /api/contents/<path>`` with ``chunk`` 1, 2, … and -1 (last);
jupyter_server's LargeFileManager writes chunk 1 and opens the file in append mode for each later one.
The server talks to ``algofs serve`` through a counting proxy (tests/fault_proxy.py): the bytes sent to
the API must stay linear in the file size (issue 12: it was quadratic in both modes).
"""

from __future__ import annotations

import base64
import os
import sys
import uuid
from pathlib import Path

import pytest
from fault_proxy import FaultProxy
from jupyter_process import CONTENTS_MANAGER, JupyterProcess

from algofs_jupyter.fs import AlgoFileSystem
from algofs_jupyter.jupyter.fuse_check import fuse_unavailable_reason
from algofs_jupyter.server.embedded_server import EmbeddedServer

CHUNK = 1 << 20
CHUNKS = 12


def start_jupyter(tmp: Path, api: str, key: str, fuse: bool, port: int) -> JupyterProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALGORITHMIA_", "ALGOFS_"))}
    env.update(JUPYTER_DATA_DIR=str(tmp / "data"), JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
               XDG_CACHE_HOME=str(tmp / "cache"), ALGORITHMIA_API=api, ALGORITHMIA_API_KEY=key)
    if not fuse:
        env["ALGOFS_DISABLE_FUSE"] = "1"
    (tmp / "root").mkdir()
    command = [sys.executable, "-m", "jupyter_server", "--no-browser", f"--ServerApp.port={port}",
               "--IdentityProvider.token=test-token", f"--ServerApp.root_dir={tmp / 'root'}",
               f"--ServerApp.contents_manager_class={CONTENTS_MANAGER}"]
    if os.geteuid() == 0:
        command.append("--allow-root")
    return JupyterProcess(command, port, "test-token", env, tmp / "jupyter.log").start()


def upload_in_chunks(server: JupyterProcess, route: str, data: bytes) -> None:
    count = (len(data) + CHUNK - 1) // CHUNK
    for index in range(count):
        chunk = -1 if index == count - 1 else index + 1
        body = {"type": "file", "format": "base64", "chunk": chunk, "name": route.rsplit("/", 1)[-1],
                "content": base64.b64encode(data[index * CHUNK:(index + 1) * CHUNK]).decode()}
        response = server.request("PUT", route, json=body)
        assert response.status_code in (200, 201), response.text


@pytest.mark.slow  # two Jupyter servers: ~1 min each on this shared machine
@pytest.mark.parametrize("fuse", [pytest.param(True, marks=pytest.mark.fuse), False],
                         ids=["fuse", "fallback"])
def test_chunked_upload_sends_each_byte_once(tmp_path: Path, fuse: bool, free_port: int) -> None:
    if fuse and fuse_unavailable_reason():
        pytest.skip(fuse_unavailable_reason())
    with EmbeddedServer(tmp_path / "api", demo=True) as api, FaultProxy(api.url) as proxy:
        collection = f"up-{uuid.uuid4().hex[:8]}"
        AlgoFileSystem(api.url, api.api_key, skip_instance_cache=True).mkdir(f"data/demo/{collection}")
        server = start_jupyter(tmp_path, proxy.url, api.api_key, fuse, free_port)
        try:
            if fuse:
                server.wait_for(lambda: server.get("/algofs/status").json()["mounted"], what="the mount")
            route = f"/api/contents/algofs/data/demo/{collection}/upload.bin"
            server.wait_for(lambda: server.get(route.rsplit("/", 1)[0]).status_code == 200, what="the API")
            data = os.urandom(CHUNKS * CHUNK - 12345)
            proxy.reset()
            upload_in_chunks(server, route, data)
            stored = api.root / "data" / "demo" / collection / "upload.bin"
            assert stored.read_bytes() == data
            sent = proxy.body_bytes["PUT"]
            assert sent <= 1.2 * len(data), f"{sent} bytes sent for a {len(data)}-byte upload"
            model = server.get(route + "?content=0").json()
            assert model["size"] == len(data)
        finally:
            server.stop()
