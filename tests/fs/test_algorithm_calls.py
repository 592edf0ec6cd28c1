"""``call_algorithm`` over its kept-alive connection, against real ``algofs serve`` processes."""

from __future__ import annotations

import urllib.parse

import pytest

from algofs_jupyter.fs.algorithm_api import AlgorithmError, call_algorithm
from algofs_jupyter.fs.api_errors import BackendUnavailable
from algofs_jupyter.fs.api_session import ApiSession
from algofs_jupyter.server.embedded_server import EmbeddedServer


def test_calls_survive_a_server_restart_and_fail_cleanly_while_it_is_down(tmp_path):
    """The kept connection of the last call is dead after a restart: the next call opens a new one."""
    first = EmbeddedServer(tmp_path / "root", demo=True, large_file_mb=0).start(120)
    try:
        session = ApiSession(first.url, first.api_key)
        assert call_algorithm(session, "demo/echo", "text/plain", b"one").result == "one"
        assert call_algorithm(session, "demo/echo", "text/plain", b"two").result == "two"
        with pytest.raises(AlgorithmError, match="demo/fail"):
            call_algorithm(session, "demo/fail", "text/plain", b"x")
    finally:
        first.stop()
    port = urllib.parse.urlsplit(first.url).port or 0
    second = EmbeddedServer(tmp_path / "root", port=port, demo=True, users=first.users,
                            large_file_mb=0).start(120)
    try:
        assert call_algorithm(session, "demo/echo", "text/plain", b"three").result == "three"
        assert session.health()["reachable"]
    finally:
        second.stop()
    with pytest.raises(BackendUnavailable):
        call_algorithm(session, "demo/echo", "text/plain", b"down")
