"""A directory listing that raced a change to that directory is not cached (issue 25, item 4: "Rename and
Save" made the notebook vanish from JupyterLab's file browser: a listing fetched before the rename was
stored after the rename had updated the cache, so neither name was listed until the listing expired).

No /dev/fuse: the mount's operations of a real ``MountDaemon`` (never run) over a real ``algofs serve``.
"""

from __future__ import annotations

import os
import threading
import types
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from algofs_jupyter.fs.data_api import DataClient
from algofs_jupyter.mount.daemon import MountDaemon
from algofs_jupyter.mount.metadata_cache import FILE, Attr, MetadataCache
from algofs_jupyter.mount.options import MountOptions


@pytest.fixture
def daemon(local_api_server, tmp_path: Path) -> Iterator[MountDaemon]:
    options = MountOptions(cache_dir=tmp_path / "cache")
    made = MountDaemon(str(tmp_path / "mnt"), local_api_server.url, local_api_server.api_key, options)
    try:
        yield made
    finally:
        made.staging.close()
        made.content.close()
        made.client.session.close()


@pytest.fixture
def collection(local_api_server) -> Iterator[str]:
    client = DataClient(local_api_server.url, local_api_server.api_key)
    layout = f"data/demo/race-{uuid.uuid4().hex[:8]}"
    client.mkdir(layout, create_parents=False)
    try:
        yield layout
    finally:
        client.delete(layout, recursive=True)
        client.close()


def slow_listing_of(daemon: MountDaemon, directory: str) -> tuple[threading.Event, threading.Event]:
    """The next listing of ``directory`` gets the server's answer, then waits for ``go`` before the mount
    sees it: a listing slow to arrive (a big page, a slow network) that a change overtakes."""
    fetched, go = threading.Event(), threading.Event()
    original = daemon.client.iter_dir

    def iter_dir(layout: str, *args, **kwargs):
        entries = list(original(layout, *args, **kwargs))
        if layout == directory and not fetched.is_set():
            fetched.set()
            assert go.wait(30)
        yield from entries

    daemon.client.iter_dir = iter_dir  # type: ignore[method-assign]
    return fetched, go


def names(daemon: MountDaemon, directory: str) -> set[str]:
    entries = daemon.operations.readdir("/" + directory, 0)
    return {entry if isinstance(entry, str) else entry[0] for entry in entries} - {".", ".."}


def test_a_listing_that_raced_a_rename_is_not_cached(daemon: MountDaemon, collection: str) -> None:
    daemon.client.put_bytes(f"{collection}/Untitled.ipynb", b"{}")
    fetched, go = slow_listing_of(daemon, collection)
    racing: list[set[str]] = []
    lister = threading.Thread(target=lambda: racing.append(names(daemon, collection)))
    lister.start()
    try:
        assert fetched.wait(30)  # the server answered with the name before the rename
        daemon.operations.rename(f"/{collection}/Untitled.ipynb", f"/{collection}/Renamed.ipynb")
    finally:
        go.set()
        lister.join(30)
    assert racing == [{"Untitled.ipynb"}]  # that readdir may show the old state...
    assert names(daemon, collection) == {"Renamed.ipynb"}  # ...but the next one must not
    assert daemon.operations.getattr(f"/{collection}/Renamed.ipynb")["st_size"] == 2


def test_a_listing_is_stored_only_if_its_directory_did_not_change_while_it_ran() -> None:
    cache = MetadataCache()
    started = cache.listing_started("data/u/c")
    cache.put("data/u/c/new", Attr(FILE, 1))  # a change while the listing ran
    cache.put_listing("data/u/c", {"old": Attr(FILE, 1)}, started)
    cache.listing_ended("data/u/c")
    assert cache.listing("data/u/c") is None  # not stored: the next readdir lists again
    assert cache.lookup("data/u/c/new") == (True, Attr(FILE, 1))

    for change in (lambda: cache.remove("data/u/c/x"), lambda: cache.invalidate("data/u/c/x"),
                   lambda: cache.forget_tree("data/u/c"), lambda: cache.remove("data/u/c"), cache.clear):
        started = cache.listing_started("data/u/c")
        change()
        cache.put_listing("data/u/c", {"old": Attr(FILE, 1)}, started)
        cache.listing_ended("data/u/c")
        assert cache.listing("data/u/c") is None

    started = cache.listing_started("data/u/c")
    cache.put("data/u/other/x", Attr(FILE, 1))  # another directory's change
    cache.put_listing("data/u/c", {"old": Attr(FILE, 1)}, started)
    cache.listing_ended("data/u/c")
    assert cache.listing("data/u/c") == {"old": Attr(FILE, 1)}


def test_a_listing_that_raced_an_upload_is_not_cached(daemon: MountDaemon, collection: str) -> None:
    """A close() uploads (no directory lock in the kernel, unlike a rename): a listing the server answered
    before the upload, stored after it, hid the saved file until the listing expired."""
    fetched, go = slow_listing_of(daemon, collection)
    racing: list[set[str]] = []
    lister = threading.Thread(target=lambda: racing.append(names(daemon, collection)))
    lister.start()
    try:
        assert fetched.wait(30)  # the server answered before the file existed
        path = f"/{collection}/Saved.ipynb"
        fi = types.SimpleNamespace(fh=0, flags=os.O_WRONLY | os.O_CREAT, direct_io=False, keep_cache=False)
        daemon.operations.create(path, 0o644, fi)
        daemon.operations.write(path, b'{"cells": []}', 0, fi)
        daemon.operations.flush(path, fi)  # close(): the upload
        daemon.operations.release(path, fi)
    finally:
        go.set()
        lister.join(30)
    assert racing == [set()]
    assert names(daemon, collection) == {"Saved.ipynb"}
