"""Fixtures for the Jupyter layer: API key files, FUSE guards, a check that no mount is left behind."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from jupyter_test_utils import assert_no_mounts_left

from algofs_jupyter.jupyter import kernel_access
from algofs_jupyter.jupyter.api_provider import ApiProvider
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
def local_access(no_stale_mounts, api_server, tmp_path: Path) -> Iterator[kernel_access.LocalAccess]:
    """A kernel's own access (it mounts under ``tmp_path`` on first use), installed as the kernel's
    current access for the magics; closed, which unmounts, afterwards."""
    provider = ApiProvider(api_address=api_server.url, api_key=api_server.api_key,
                           username=api_server.username)
    access = kernel_access.LocalAccess(provider, root_dir=tmp_path, algorithm_owners=["demo", "anowell"],
                                       cache_dir=tmp_path / "cache", cache_size=32 * 1024**2)
    kernel_access.set_access(access)
    try:
        yield access
    finally:
        kernel_access.set_access(None)
        access.close()
