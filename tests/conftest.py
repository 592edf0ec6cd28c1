"""Fixtures shared by every test folder. Keep this minimal; each folder adds its own conftest.py."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from algofs_jupyter.server.process import EmbeddedServer
from algofs_jupyter.server.users import DEMO_USERS


@pytest.fixture(scope="session")
def api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    """A real ``algofs serve --demo`` child process, shared by the session (demo users and content).

    Tests must not change the demo content; they work in their own scratch collections. It uses the
    published demo keys (as ``algofs serve --demo`` run by hand does) on a throwaway root.
    """
    root = tmp_path_factory.mktemp("algofs-serve-root")
    server = EmbeddedServer(root, demo=True, users=dict(DEMO_USERS))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def find_free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    return find_free_port()
