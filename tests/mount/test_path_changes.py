"""The one "this path changed" step (mount/path_changes.py) reaches the metadata cache and every content
cache, with no /dev/fuse: a real MetadataCache and a content cache that records what it was told."""

from __future__ import annotations

from algofs_jupyter.mount.metadata_cache import DIRECTORY, FILE, Attr, MetadataCache
from algofs_jupyter.mount.path_changes import PathChanges


class Told:
    """A content cache that remembers which paths it was told changed."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    def invalidate(self, path: str) -> None:
        self.paths.append(path)


def caches() -> tuple[MetadataCache, Told, PathChanges]:
    metadata, contents = MetadataCache(), Told()
    return metadata, contents, PathChanges(metadata, contents)


def test_a_removed_path_is_known_gone_and_its_bytes_dropped():
    metadata, contents, changes = caches()
    metadata.put("data/u/c/a.txt", Attr(FILE, 3, 1.0, "e1"))
    changes.removed("data/u/c/a.txt")
    hit, attr = metadata.lookup("data/u/c/a.txt")
    assert hit and attr is None  # a negative entry: no HEAD needed to know it is gone
    assert contents.paths == ["data/u/c/a.txt"]


def test_a_changed_path_drops_its_bytes_and_records_or_forgets_its_attributes():
    metadata, contents, changes = caches()
    metadata.put("data/u/c/a.txt", Attr(FILE, 3, 1.0, "e1"))
    changes.changed("data/u/c/a.txt", Attr(FILE, 5, 2.0, "e2"))
    assert metadata.lookup("data/u/c/a.txt") == (True, Attr(FILE, 5, 2.0, "e2"))
    changes.changed("data/u/c/a.txt")  # no attributes came with the change: ask the server next time
    assert metadata.lookup("data/u/c/a.txt")[0] is False
    assert contents.paths == ["data/u/c/a.txt", "data/u/c/a.txt"]


def test_a_moved_tree_is_forgotten_below_both_names():
    metadata, contents, changes = caches()
    metadata.put("data/u/c/d", Attr(DIRECTORY, 0, 1.0))
    metadata.put("data/u/c/d/x.txt", Attr(FILE, 1, 1.0, "e"))
    changes.tree_moved("data/u/c/d", "data/u/c/e", Attr(DIRECTORY, 0, 2.0))
    assert metadata.lookup("data/u/c/d/x.txt")[0] is False  # below the old name: ask the server
    assert metadata.lookup("data/u/c/d") == (True, None)  # the old name itself: known to be gone
    assert metadata.lookup("data/u/c/e") == (True, Attr(DIRECTORY, 0, 2.0))
    assert contents.paths == ["data/u/c/d", "data/u/c/e"]
