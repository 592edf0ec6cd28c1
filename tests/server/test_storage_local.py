"""``LocalBackend`` against the storage contract, plus what only a local directory can show (links)."""

from __future__ import annotations

import os

import pytest

from algofs_jupyter.server.storage import InvalidOperation, LocalBackend, OutsideRoot

from .posix_contract import *  # noqa: F403
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


def test_keys_up_to_path_max_work_below_a_long_root(tmp_path):
    root = tmp_path / ("r" * 200) / ("o" * 200)  # the root's own path adds 400+ bytes
    backend = LocalBackend(root, tmp_path / "meta")
    key: tuple[str, ...] = ()
    while len("/".join((*key, "d" * 250)).encode()) <= 4095 - 10:
        key = (*key, "d" * 250)
        backend.mkdir(key)
    leaf = (*key, "f" * (4095 - len("/".join(key).encode()) - 1))
    assert len("/".join(leaf).encode()) == 4095
    store(backend, leaf, b"deep")
    assert content(backend, leaf) == b"deep" and backend.info(leaf).size == 4
    store(backend, leaf, b"!", offset=4)
    assert content(backend, leaf) == b"deep!" and names(backend, key) == [leaf[-1]]
    backend.set_mtime(leaf, 978307200)
    backend.move(leaf, (*key, "g"))
    assert backend.delete_dir(key[:1], force=True) == 1


def test_removing_or_moving_a_link_acts_on_the_link(backend):
    backend.mkdir(("d",))
    store(backend, ("d", "f"), b"kept")
    (backend.root / "link").symlink_to(backend.root / "d")
    (backend.root / "flink").symlink_to(backend.root / "d" / "f")
    assert backend.info(("link",)).is_dir and content(backend, ("link", "f")) == b"kept"
    assert backend.delete_dir(("link",), force=True) == 0
    backend.delete_file(("flink",))
    assert names(backend, ()) == ["d"] and content(backend, ("d", "f")) == b"kept"
    (backend.root / "link2").symlink_to("d")  # relative links work too
    backend.move(("link2",), ("link3",))
    assert (backend.root / "link3").is_symlink() and content(backend, ("link3", "f")) == b"kept"


@pytest.mark.parametrize("key", [("a/b",), ("..",), (".",), ("",), ("a", "..", "b"), ("nul\x00",)])
def test_keys_are_plain_names(backend, key):
    backend.mkdir(("a",))
    with pytest.raises(InvalidOperation):
        backend.info(key)
    with pytest.raises(InvalidOperation):
        backend.mkdir(key)


def test_files_written_by_other_tools_show_the_posix_defaults(backend):
    """Data put on the disk by other tools (or before the posix extension) has no stored metadata: the
    defaults, with the file's own mtime (ns, before 1970 too); the disk's mode is not the API's."""
    folder = backend.root / "d"
    folder.mkdir()
    (folder / "f").write_bytes(b"abc")
    os.chmod(folder / "f", 0o700)
    os.utime(folder / "f", ns=(0, -5 * 10**9 + 7))
    posix = backend.info(("d", "f")).posix
    assert (posix.mode, posix.uid, posix.gid) == (0o100644, None, None)
    assert posix.mtime_ns == posix.atime_ns == posix.ctime_ns == -5 * 10**9 + 7
    listed = {e.name: e.posix for e in backend.list_page(()).entries}
    assert listed["d"].mode == 0o040755 and listed["d"].uid is None
