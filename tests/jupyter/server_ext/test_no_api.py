"""No API configured and the embedded server disabled: the server still runs and says why nothing works."""

from __future__ import annotations

import asyncio
import os

import pytest

from algofs_jupyter.jupyter.kernel_access import AccessError, ServerAccess
from algofs_jupyter.jupyter.kernel_handoff import HANDOFF_FILE_ENV


@pytest.fixture
def jp_server_config(jp_server_config, algofs_config, monkeypatch):
    monkeypatch.delenv("ALGORITHMIA_API", raising=False)
    remote = ("api_address", "api_key_file")
    config = {key: value for key, value in algofs_config.items() if key not in remote}
    return {**jp_server_config, "AlgofsApp": {**config, "embedded_server": False, "auto_mount": True}}


async def test_misconfiguration_is_reported_not_fatal(jp_serverapp, jp_fetch, algofs_app, call):
    await jp_serverapp.extension_manager.start_all_extensions()
    await asyncio.wait_for(algofs_app._startup_task, 30)

    code, status = await call("GET", "status")
    assert code == 200 and status["mounted"] is False and status["api_address"] is None

    code, status = await call("POST", "mount")
    assert code == 200 and status["mode"] in ("error", "fallback")
    if status["mode"] == "error":
        assert "embedded server is disabled" in status["reason"]

    code, body = await call("GET", "algorithms")
    assert code == 502 and "embedded server is disabled" in body["message"]

    access = ServerAccess(os.environ[HANDOFF_FILE_ENV], wait_for_endpoint=60)
    with pytest.raises(AccessError, match="embedded server is disabled"):
        await asyncio.wait_for(asyncio.to_thread(access.endpoint), 5)
