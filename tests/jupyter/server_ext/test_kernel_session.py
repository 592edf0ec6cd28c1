"""A kernel started by the server finds the extension's backend and mount through ``ALGOFS_SESSION_FILE``."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from algofs_jupyter.jupyter.kernel_handoff import SESSION_FILE_ENV
from algofs_jupyter.jupyter.kernel_session import ServerSession


async def start_and_attach(jp_serverapp, algofs_app) -> ServerSession:
    """(Tests using this also request ``jp_fetch``: that is what makes the test HTTP server listen.)"""
    await jp_serverapp.extension_manager.start_all_extensions()
    await asyncio.wait_for(algofs_app._startup_task, 60)
    return ServerSession(os.environ[SESSION_FILE_ENV])


async def test_session_uses_the_servers_endpoint_and_rest_api(jp_serverapp, jp_fetch, algofs_app, api_server):
    server_session = await start_and_attach(jp_serverapp, algofs_app)
    endpoint = await asyncio.to_thread(server_session.endpoint)
    assert endpoint.api_address == api_server.url.rstrip("/") and endpoint.username == "demo"
    status = await asyncio.to_thread(server_session.status)
    assert status["mounted"] is False and status["mountpoint"] == "algofs"
    listed = await asyncio.to_thread(server_session.list_algorithms)
    names = {f"{algo['user']}/{algo['name']}" for algo in listed}
    assert "anowell/Pinky" in names  # the server's algorithm_owners setting applies
    result = await asyncio.to_thread(server_session.pipe, "demo/echo", "via the server's backend")
    assert result.result == "via the server's backend"


@pytest.mark.fuse
async def test_session_mounts_through_the_server(
    jp_serverapp, jp_fetch, algofs_app, requires_fuse, no_stale_mounts, jp_root_dir, monkeypatch
):
    server_session = await start_and_attach(jp_serverapp, algofs_app)
    monkeypatch.chdir(jp_root_dir)
    status = await asyncio.to_thread(server_session.mount, "from-kernel")
    assert status["mounted"] and status["mountpoint"] == "from-kernel", status
    assert algofs_app.mount_manager.mounted  # the server owns it, not the kernel
    assert (Path(status["mountpoint_abs"]) / "data" / "demo").is_dir()
    status = await asyncio.to_thread(server_session.unmount)
    assert not status["mounted"]
