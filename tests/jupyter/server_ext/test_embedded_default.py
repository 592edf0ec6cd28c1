"""With no API configured the extension starts `algofs serve --demo` itself, and stops it at shutdown."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest
from jupyter_test_utils import pid_alive

from algofs_jupyter.jupyter.kernel_handoff import HANDOFF_FILE_ENV


@pytest.fixture
def embedded_config(algofs_config, tmp_path, monkeypatch):
    monkeypatch.delenv("ALGORITHMIA_API", raising=False)
    config = {
        key: value
        for key, value in algofs_config.items()
        if key not in ("api_address", "api_key_file", "username", "algorithm_owners")
    }
    return {**config, "auto_mount": False, "embedded_root": str(tmp_path / "embedded")}


@pytest.fixture
def jp_server_config(jp_server_config, embedded_config):
    return {**jp_server_config, "AlgofsApp": embedded_config}


async def test_embedded_server_default(jp_serverapp, algofs_app, call, tmp_path):
    await jp_serverapp.extension_manager.start_all_extensions()
    await asyncio.wait_for(algofs_app._startup_task, 120)

    code, status = await call("GET", "status")
    assert code == 200
    assert status["embedded_server"] is True and status["username"] == "demo"
    assert status["api_address"].startswith("http://127.0.0.1:")
    server = algofs_app.api_provider._server
    assert server is not None and Path(server.root) == (tmp_path / "embedded").resolve()

    code, body = await call("GET", "algorithms")
    names = {f"{algo['user']}/{algo['name']}" for algo in body["algorithms"]}
    assert {"demo/echo", "anowell/Pinky"} <= names

    # The kernels of this server find the API through the hand-off file named in their environment.
    handoff = json.loads(Path(os.environ[HANDOFF_FILE_ENV]).read_text())
    assert handoff["api_address"] == status["api_address"]
    assert oct(Path(os.environ[HANDOFF_FILE_ENV]).stat().st_mode & 0o777) == "0o600"

    pid = server.pid
    await jp_serverapp.extension_manager.stop_all_extensions()
    assert not pid_alive(pid)
    assert HANDOFF_FILE_ENV not in os.environ
