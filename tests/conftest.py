"""Fixtures shared by every test folder. Keep this minimal; each folder adds its own conftest.py."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from algofs_jupyter.server.embedded_server import EmbeddedServer
from algofs_jupyter.testing.ports import free_ports

#: SeaweedFS, ``algofs serve --storage s3://…`` and the local|s3 parametrisation (tests/s3_fixtures.py)
pytest_plugins = ["s3_fixtures"]


@pytest.fixture(scope="session")
def api_server(local_api_server: EmbeddedServer) -> EmbeddedServer:
    """A real ``algofs serve --demo`` child process, shared by the session (demo users and content).

    Tests must not change the demo content; they work in their own scratch collections. It uses the
    published demo keys (as ``algofs serve --demo`` run by hand does) on a throwaway root. The server
    and mount folders override this with the local|s3 parametrisation (tests/s3_fixtures.py).
    """
    return local_api_server


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (``testing.ports.free_ports``)."""
    return free_ports(1)[0]


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual umask, so a test sees what a file's mode is when the code does not set it itself."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)
