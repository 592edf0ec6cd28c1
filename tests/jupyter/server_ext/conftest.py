"""pytest-jupyter's server fixtures (``jp_fetch``, ``jp_serverapp``…) for the extension's tests only.

Imported rather than listed in ``pytest_plugins`` so they don't leak into other test folders (its
autouse fixtures would build a ServerApp for every test in the repository).
"""

from __future__ import annotations

import json

import pytest
from jupyter_test_utils import assert_no_mounts_left
from pytest_jupyter.jupyter_server import *  # noqa: F403


@pytest.fixture
def algofs_config(api_server, api_key_file, tmp_path) -> dict:
    """AlgofsApp settings: the session's demo API server, a private cache dir, no auto-mount."""
    return {
        "api_address": api_server.url,
        "api_key_file": str(api_key_file),
        "username": api_server.username,
        "cache_dir": str(tmp_path / "cache"),
        "cache_size": 64 * 1024 * 1024,
        "auto_mount": False,
        "mount_timeout": 30.0,
        "algorithm_owners": ["demo", "anowell"],
    }


@pytest.fixture
def jp_server_config(algofs_config) -> dict:
    return {
        "ServerApp": {
            "jpserver_extensions": {"algofs_jupyter": True, "jupyter_server_terminals": False},
            "allow_unauthenticated_access": False,
        },
        "AlgofsApp": algofs_config,
    }


@pytest.fixture
def no_stale_mounts(tmp_path, algofs_app, jp_asyncio_loop):
    """Shut the extension down first (pytest-jupyter's own cleanup runs after every other fixture)."""
    yield tmp_path
    jp_asyncio_loop.run_until_complete(algofs_app.stop_extension())
    assert_no_mounts_left(tmp_path)


@pytest.fixture
def algofs_app(jp_serverapp):
    return jp_serverapp.extension_manager.extension_points["algofs_jupyter"].app


@pytest.fixture
def call(jp_fetch):
    """``await call("POST", "mount", {...})`` → (status code, JSON body); never raises on 4xx."""

    async def do(method: str, route: str, body: dict | None = None, **kwargs):
        if method in ("POST", "PUT"):
            kwargs.setdefault("body", json.dumps(body or {}))
        response = await jp_fetch(
            "algofs", route, method=method, raise_error=False, request_timeout=120, **kwargs
        )
        return response.code, json.loads(response.body or b"null")

    return do
