"""The daemon's control socket (``mount/control.py``) without a mount: a real Unix socket."""

from __future__ import annotations

from pathlib import Path

import pytest

from algofs_jupyter.mount import control


@pytest.fixture
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "runtime"
    monkeypatch.setenv("ALGOFS_RUNTIME_DIR", str(directory))
    return directory


def test_a_query_gets_the_handlers_answer_and_errors_come_back(runtime: Path, tmp_path: Path) -> None:
    def broken() -> dict:
        raise ValueError("boom")

    handlers = {"status": lambda: {"state": "mounted"}, "broken": broken}
    server = control.ControlServer(tmp_path / "mnt", handlers)
    server.start()
    try:
        assert control.query(tmp_path / "mnt", "status") == {"state": "mounted"}
        with pytest.raises(RuntimeError, match="unknown command 'nope'"):
            control.query(tmp_path / "mnt", "nope")
        with pytest.raises(RuntimeError, match="ValueError: boom"):
            control.query(tmp_path / "mnt", "broken")
        assert control.query(tmp_path / "mnt", "status") == {"state": "mounted"}, "a bad request killed it"
    finally:
        server.stop()
    assert not control.socket_path(tmp_path / "mnt").exists()
    with pytest.raises(ConnectionError):
        control.query(tmp_path / "mnt", "status", timeout=1)


def test_each_mountpoint_has_its_own_socket_in_a_private_directory(runtime: Path, tmp_path: Path) -> None:
    first, second = control.socket_path(tmp_path / "a"), control.socket_path(tmp_path / "b")
    assert first != second and first.parent == second.parent == control.runtime_dir()
    assert control.runtime_dir().stat().st_mode & 0o077 == 0
