"""``LocalBackend`` against the storage contract, plus what only a local directory can show (links)."""

from __future__ import annotations

import os

import pytest

from algofs_jupyter.server.storage import LocalBackend, OutsideRoot

from .storage_contract import *  # noqa: F403
from .storage_contract import content, names, store


@pytest.fixture
def backend(tmp_path) -> LocalBackend:
    return LocalBackend(tmp_path / "objects", tmp_path / "meta")


@pytest.fixture
def outside(tmp_path):
    directory = tmp_path / "outside"
    directory.mkdir()
    (directory / "secret").write_bytes(b"s")
    return directory


def test_links_out_of_the_root_are_refused_by_every_operation(backend, outside):
    (backend.root / "out").symlink_to(outside)
    (backend.root / "leak").symlink_to(outside / "secret")
    store(backend, ("inside",), b"in")
    (backend.root / "alias").symlink_to(backend.root / "inside")
    calls = [
        lambda: backend.info(("out", "secret")), lambda: backend.read(("leak",)),
        lambda: backend.list_page(("out",)), lambda: backend.write(("out", "new")),
        lambda: backend.write(("leak",)), lambda: backend.mkdir(("out", "d")),
        lambda: backend.delete_file(("out", "secret")), lambda: backend.delete_dir(("out",), force=True),
        lambda: backend.move(("out", "secret"), ("stolen",)), lambda: backend.move(("inside",), ("out", "x")),
        lambda: backend.copy(("leak",), ("stolen",)), lambda: backend.set_mtime(("leak",), 0),
    ]
    for call in calls:
        with pytest.raises(OutsideRoot):
            call()
    assert names(backend, ()) == ["alias", "inside"]  # the links out are not listed
    assert content(backend, ("alias",)) == b"in"
    assert sorted(os.listdir(outside)) == ["secret"] and (outside / "secret").read_bytes() == b"s"


def test_staged_files_are_hidden_and_swept(backend):
    upload = backend.write(("f",))
    upload.write(b"partial")
    assert names(backend, ()) == []
    assert backend.sweep() == 1  # what a killed server leaves behind
    upload.abort()
    assert os.listdir(backend.root) == []
