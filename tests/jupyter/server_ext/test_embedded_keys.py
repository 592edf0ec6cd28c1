"""The demo server the extension starts (also behind `algofs demo`) has random keys and a private root."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest
import requests

from algofs_jupyter.jupyter.kernel_handoff import HANDOFF_FILE_ENV
from algofs_jupyter.server.users import DEMO_USERS


@pytest.fixture
def jp_server_config(jp_server_config, algofs_config, tmp_path, monkeypatch):
    monkeypatch.delenv("ALGORITHMIA_API", raising=False)
    config = {key: value for key, value in algofs_config.items()
              if key not in ("api_address", "api_key_file", "username", "algorithm_owners")}
    config.update(auto_mount=False, embedded_root=str(tmp_path / "embedded"))
    return {**jp_server_config, "AlgofsApp": config}


async def test_embedded_server_keys_are_random_and_never_shown(jp_serverapp, algofs_app, call, tmp_path):
    await jp_serverapp.extension_manager.start_all_extensions()
    await asyncio.wait_for(algofs_app._startup_task, 120)
    server = algofs_app.api_provider._server
    try:
        code, status = await call("GET", "status")
        assert code == 200 and status["embedded_server"] is True
        for key in DEMO_USERS.values():
            response = await asyncio.to_thread(requests.get, status["api_address"] + "/v1/data/.my",
                                               headers={"Authorization": key}, timeout=10)
            assert response.status_code == 401, "a published demo key opened the extension's server"
        assert server.api_key not in json.dumps(status)
        assert oct((tmp_path / "embedded").stat().st_mode & 0o777) == "0o700"
        handoff = json.loads(Path(os.environ[HANDOFF_FILE_ENV]).read_text())
        assert handoff["api_key"] == server.api_key  # kernels get it from the 0600 hand-off file only
    finally:
        await jp_serverapp.extension_manager.stop_all_extensions()
