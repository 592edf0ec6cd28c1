"""A kernel started by the server finds the extension's API endpoint and mount through
``ALGOFS_HANDOFF_FILE``."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from algofs_jupyter.jupyter.kernel_access import ServerAccess
from algofs_jupyter.jupyter.kernel_handoff import HANDOFF_FILE_ENV


async def start_and_attach(jp_serverapp, algofs_app) -> ServerAccess:
    """(Tests using this also request ``jp_fetch``: that is what makes the test HTTP server listen.)"""
    await jp_serverapp.extension_manager.start_all_extensions()
    await asyncio.wait_for(algofs_app._startup_task, 60)
    return ServerAccess(os.environ[HANDOFF_FILE_ENV])


async def test_server_access_uses_the_servers_endpoint_and_rest_api(jp_serverapp, jp_fetch, algofs_app,
                                                                    api_server):
    server_access = await start_and_attach(jp_serverapp, algofs_app)
    endpoint = await asyncio.to_thread(server_access.endpoint)
    assert endpoint.api_address == api_server.url.rstrip("/") and endpoint.username == "demo"
    status = await asyncio.to_thread(server_access.status)
    assert status["mounted"] is False and status["mountpoint"] == "algofs"
    listed = await asyncio.to_thread(server_access.list_algorithms)
    names = {f"{algo['user']}/{algo['name']}" for algo in listed}
    assert "anowell/Pinky" in names  # the server's algorithm_owners setting applies
    result = await asyncio.to_thread(server_access.pipe, "demo/echo", "via the server's API provider")
    assert result.result == "via the server's API provider"


@pytest.mark.fuse
async def test_server_access_mounts_through_the_server(
    jp_serverapp, jp_fetch, algofs_app, requires_fuse, no_stale_mounts, jp_root_dir, monkeypatch
):
    server_access = await start_and_attach(jp_serverapp, algofs_app)
    monkeypatch.chdir(jp_root_dir)
    status = await asyncio.to_thread(server_access.mount, "from-kernel")
    assert status["mounted"] and status["mountpoint"] == "from-kernel", status
    assert algofs_app.mount_manager.mounted  # the server owns it, not the kernel
    assert (Path(status["mountpoint_abs"]) / "data" / "demo").is_dir()
    status = await asyncio.to_thread(server_access.unmount)
    assert not status["mounted"]
