"""The mount's path rules (``mount/layout.py``) without ``/dev/fuse``."""

from __future__ import annotations

import errno
import logging

import pytest
from mfusepy import FuseOSError

from algofs_jupyter import names
from algofs_jupyter.mount import layout
from algofs_jupyter.mount.metadata_cache import DIRECTORY, FILE, Attr


def test_layout_and_virtual_paths() -> None:
    assert layout.layout_path("/data/demo/x.csv") == "data/demo/x.csv"
    assert layout.layout_path("/") == ""
    assert layout.virtual_path("/algorithms") == "/"
    assert layout.virtual_path("/algorithms/anowell/Pinky/latest") == "/anowell/Pinky/latest"
    assert layout.virtual_path("/algorithmsx") is None
    assert layout.virtual_path("/data/algorithms") is None


@pytest.mark.parametrize(("path", "possible"), [
    ("data/demo/x", True), ("data/.my/x", True), ("s3/bucket/key", True), ("dropbox+work/a", True),
    ("nope/x", False), ("data/demo/a%41b", False), ("data/demo/.algofs-partial-1", False),
])
def test_only_paths_the_api_can_hold_are_asked_for(path: str, possible: bool) -> None:
    assert layout.may_exist_remotely(path) is possible


def test_connector_roots() -> None:
    assert layout.is_connector_root("s3") and layout.is_connector_root("dropbox+work")
    assert not layout.is_connector_root("s3/bucket") and not layout.is_connector_root("data")


@pytest.mark.parametrize(("path", "directory"), [
    ("", True), ("data", True), ("data/demo", True), ("data/demo/file", False), ("s3", True),
    ("elsewhere/x", False),
])
def test_places_the_api_cannot_create_things_answer_eacces(path: str, directory: bool) -> None:
    with pytest.raises(FuseOSError) as caught:
        layout.check_writable_location(path, directory)
    assert caught.value.errno == errno.EACCES


@pytest.mark.parametrize(("path", "directory"), [
    ("data/demo/coll", True), ("data/demo/coll/file", False), ("s3/bucket", False), ("s3/b/c", True),
])
def test_writable_locations(path: str, directory: bool) -> None:
    layout.check_writable_location(path, directory)


def test_new_names_the_api_cannot_carry_answer_einval() -> None:
    layout.check_new_name("data/demo/coll/fine.txt")
    for bad in ("data/demo/coll/a?b", "data/demo/coll/a#b", "data/demo/coll/%41"):
        with pytest.raises(FuseOSError) as caught:
            layout.check_new_name(bad)
        assert caught.value.errno == errno.EINVAL


def test_attr_from_info() -> None:
    assert Attr.from_info({"type": "file", "size": 3, "mtime": 5.0, "etag": "e"}) == Attr(FILE, 3, 5.0, "e")
    assert Attr.from_info({"type": "file", "size": 3, "mtime": 5.0}) == Attr(FILE, 3, 5.0, "")
    assert Attr.from_info({"type": "directory", "size": 0, "mtime": 0.0, "etag": ""}) == Attr(DIRECTORY)


def test_overlong_names_and_paths_answer_enametoolong() -> None:
    layout.check_new_name("data/demo/coll/" + "n" * 255)
    layout.check_lengths("data/demo/" + "/".join(["d" * 200] * 20))  # 4,030 bytes: fits
    for bad in ("data/demo/coll/" + "n" * 256, "data/demo/coll/" + "ü" * 128,
                "data/demo/" + "/".join(["d" * 200] * 21)):
        with pytest.raises(FuseOSError) as caught:
            layout.check_new_name(bad)
        assert caught.value.errno == errno.ENAMETOOLONG


def test_directory_attrs_keep_the_folder_mtime_of_listings() -> None:
    listed = {"type": "directory", "size": 0, "mtime": 7.0, "etag": ""}
    assert Attr.from_info(listed) == Attr(DIRECTORY, 0, 7.0)


def test_libfuses_hidden_names() -> None:
    assert layout.hidden_by_libfuse(".fuse_hidden0000001a00000003")
    for name in (".fuse_hidden", ".fuse_hidden0000001a0000000", "x.fuse_hidden0000001a00000003",
                 ".fuse_hidden0000001a00000003.txt", ".fuse_hiddenXXXXXXXXXXXXXXXX", "notes.txt"):
        assert not layout.hidden_by_libfuse(name), name


def test_refusals_keep_the_errno_and_log_the_rule(caplog: pytest.LogCaptureFixture) -> None:
    """Issue 25 item 5: the errno stays; the mount's log says which rule (names.py's text)."""
    caplog.set_level(logging.INFO, logger="algofs_jupyter.mount.layout")
    with pytest.raises(FuseOSError) as caught:
        layout.check_new_name("data/demo/coll/what?.txt")
    assert caught.value.errno == errno.EINVAL
    with pytest.raises(FuseOSError) as caught:
        layout.check_writable_location("data/New Folder", directory=True)
    assert caught.value.errno == errno.EACCES
    assert f"refused data/demo/coll/what?.txt: {names.name_refusal('what?.txt')}" in caplog.text
    assert "`?` and `#` can't be in names on this storage" in caplog.text
    assert "refused data/New Folder: Can't create 'New Folder' in data: folders can be made" in caplog.text
