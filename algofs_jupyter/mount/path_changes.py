"""The one "this path changed" step: every cache hears of a change to a path through here (issue 23).

Before, each operation told the caches itself, in its own order: unlink removed the metadata entry and then
dropped the bytes, rename dropped bytes at one place and metadata at another, an upload put the server's
answer and then dropped the bytes. Now an operation says what happened to a path and ``PathChanges`` tells
the metadata cache (metadata_cache.py) and every content cache (content_cache.py: the small-file store and
the block cache) what that means for them:

- ``removed``: the path is gone (unlink, rmdir, the source of a file move): a negative entry, no bytes;
- ``changed``: the path's bytes changed (a create, an upload, the destination of a file move): the bytes
  are dropped; the metadata cache records the new attributes when the change brought them, else forgets
  the path so the next access asks the server;
- ``tree_moved``: a directory moved: both trees forgotten, the destination's new attributes recorded, the
  two paths' bytes dropped (the files below keep their versions).

A change of metadata only (a new mtime) is not a content change: the metadata cache is told directly.

Locks: none of its own; each cache takes its own (leaves of the mount lock order), one after the other,
never two at once.
"""

from __future__ import annotations

from .content_cache import ContentChanges
from .metadata_cache import Attr, MetadataCache


class PathChanges:
    def __init__(self, metadata: MetadataCache, contents: ContentChanges):
        self.metadata = metadata
        self.contents = contents

    def removed(self, path: str) -> None:
        self.metadata.remove(path)
        self.contents.invalidate(path)

    def changed(self, path: str, attr: Attr | None = None) -> None:
        self.contents.invalidate(path)
        if attr is not None:
            self.metadata.put(path, attr)
        else:
            self.metadata.invalidate(path)

    def tree_moved(self, src: str, dst: str, attr: Attr) -> None:
        self.contents.invalidate(src)
        self.contents.invalidate(dst)
        self.metadata.forget_tree(src)
        self.metadata.forget_tree(dst)
        self.metadata.put(dst, attr)
