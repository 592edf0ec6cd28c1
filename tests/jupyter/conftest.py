"""Fixtures for the Jupyter layer: API key files, FUSE guards, a check that no mount is left behind."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from jupyter_test_utils import assert_no_mounts_left

from algofs_jupyter.jupyter import kernel_session
from algofs_jupyter.jupyter.backend import Backend
from algofs_jupyter.jupyter.fuse_check import fuse_unavailable_reason


@pytest.fixture
def no_stale_mounts(tmp_path: Path) -> Iterator[Path]:
    """Request it *before* the fixtures that mount, so its check runs after their teardown."""
    yield tmp_path
    assert_no_mounts_left(tmp_path)


@pytest.fixture
def requires_fuse() -> None:
    reason = fuse_unavailable_reason()
    if reason:
        pytest.skip(reason)


@pytest.fixture
def api_key_file(api_server, tmp_path_factory) -> Path:
    """The demo user's key in a 0600 file (keys never go through argv)."""
    path = tmp_path_factory.mktemp("keys") / "demo.key"
    path.write_text(api_server.api_key)
    path.chmod(0o600)
    return path


@pytest.fixture
def local_session(no_stale_mounts, api_server, tmp_path: Path) -> Iterator[kernel_session.LocalSession]:
    """A kernel's own session (it mounts under ``tmp_path`` on first use), installed as the kernel's
    current session for the magics; closed, which unmounts, afterwards."""
    backend = Backend(api_address=api_server.url, api_key=api_server.api_key, username=api_server.username)
    session = kernel_session.LocalSession(backend, root_dir=tmp_path, algorithm_owners=["demo", "anowell"],
                                          cache_dir=tmp_path / "cache", cache_size=32 * 1024**2)
    kernel_session.set_session(session)
    try:
        yield session
    finally:
        kernel_session.set_session(None)
        session.close()
