"""Renames: one server-side move (files and whole directories) when the server has the move extension;
else files are copied then the source deleted (destination written first) and directories answer EXDEV so
``mv`` falls back to copying. An open staged file follows its name (its unsent bytes go to the new name).

Locks (names of docs/architecture.md's *mount lock order*; pairwise):

- The rename locks of both names (``WriteStaging.renaming``, staging.py) before any ``StagedFile.lock``: a
  file rename holds them from before it looks up the source's staged file to the end, so two renames
  crossing each other's names (``a`` → ``b``, ``b`` → ``a``) run one after the other instead of each
  holding one staged file's lock and waiting for the other's.
- ``StagedFile.lock`` of the renamed open file (staged_file.py) is held across the server-side move or the
  destination's upload (network calls) and while ``WriteStaging.rekey`` takes the replaced destination's
  ``StagedFile.lock`` (source before destination, only under the rename locks) and ``WriteStaging._lock``.
- A directory rename takes no rename lock and no two ``StagedFile.lock``s: ``rekey_under`` takes
  ``WriteStaging._lock`` and then each moved file's lock, one at a time.
- ``MetadataCache._lock`` and the content caches' locks (content_cache.py) are leaves taken inside their
  methods.
"""

from __future__ import annotations

import dataclasses
import errno
import time
from pathlib import Path
from typing import Any

from mfusepy import FuseOSError

from ..fs.data_api import DataClient
from . import layout as rules
from .attributes import Attributes
from .content_cache import ContentChanges
from .metadata_cache import DIRECTORY, FILE, Attr, MetadataCache
from .path_changes import PathChanges
from .resolver import Resolver
from .staged_file import StagedFile
from .staging import WriteStaging
from .uploads import Uploader


class Renames:
    def __init__(self, client: DataClient, metadata: MetadataCache, contents: ContentChanges,
                 staging: WriteStaging, uploader: Uploader, resolver: Resolver, attributes: Attributes):
        self.client = client
        self.metadata = metadata
        self.changes = PathChanges(metadata, contents)  # the one "this path changed" step
        self.staging = staging
        self.uploader = uploader
        self.resolver = resolver
        self.attributes = attributes

    def rename(self, src: str, dst: str) -> None:
        """``src`` → ``dst`` (layout paths, not the same; virtual paths were refused already)."""
        rules.check_lengths(src)
        rules.check_new_name(dst)
        staged = self.staging.get(src)
        src_attr = None if staged is not None else self.resolver.require(src)
        is_dir = src_attr is not None and src_attr.is_dir
        rules.check_writable_location(dst, directory=is_dir)
        dst_attr = None if self.staging.get(dst) else self.resolver.resolve(dst)
        server_move = self.client.supports("move", src) and src.partition("/")[0] == dst.partition("/")[0]
        if is_dir:
            if not server_move:
                raise FuseOSError(errno.EXDEV)
            if dst_attr is not None and not dst_attr.is_dir:
                raise FuseOSError(errno.ENOTDIR)
            if (dst + "/").startswith(src + "/"):
                raise FuseOSError(errno.EINVAL)
            self._rename_directory(src, dst, src_attr)
        else:
            if dst_attr is not None and dst_attr.is_dir:
                raise FuseOSError(errno.EISDIR)
            with self.staging.renaming(src, dst):  # before any StagedFile.lock (the mount lock order)
                staged = self.staging.get(src)  # again, now that no other rename of these names runs
                if server_move:
                    self._move_file(src, dst, staged, src_attr)
                else:
                    self._copy_file(src, dst, staged)
        self.attributes.touch_directory(rules.parent_of(src))
        self.attributes.touch_directory(rules.parent_of(dst))

    def _rename_directory(self, src: str, dst: str, before: Attr | None) -> None:
        info = self.client.move(src, dst, overwrite=True)
        self.staging.rekey_under(src, dst)
        self.changes.tree_moved(src, dst, moved_attr(info, before))

    def _move_file(self, src: str, dst: str, staged: StagedFile | None, before: Attr | None) -> None:
        """Server-side move; an open staged file follows (its unsent bytes go to ``dst`` at close)."""
        self.staging.drop_retained(src)
        self.staging.drop_retained(dst)
        if staged is None:
            info = self.client.move(src, dst, overwrite=True)
            self.changes.removed(src)
            self.changes.changed(dst, moved_attr(info, before))
            return
        with staged.lock:
            try:
                self.client.move(src, dst, overwrite=True)
            except FileNotFoundError:
                staged.record_server_version(None)  # never uploaded: the next upload is a whole PUT
                if not staged.dirty:
                    staged.mark_dirty()
            self.staging.rekey(src, dst)
        self.changes.removed(src)
        self.changes.changed(dst)

    def _copy_file(self, src: str, dst: str, staged: StagedFile | None) -> None:
        """Without the move extension: destination written first, then the source deleted."""
        if staged is not None:
            with staged.lock:
                staged.record_server_version(self.client.put_file(str(staged.local), dst), exact=False)
                staged.mark_clean()
                self._delete_quietly(src)
                self.staging.rekey(src, dst)
        else:
            temp = self.staging.temp_path()
            try:
                self.client.download_to(src, temp)
                self.client.put_file(str(temp), dst)
            finally:
                Path(temp).unlink(missing_ok=True)
            self.client.delete(src)
        self.changes.removed(src)
        self.changes.changed(dst)
        self.uploader.refresh(dst)  # the destination's attributes: one HEAD

    def _delete_quietly(self, layout: str) -> None:
        try:
            self.client.delete(layout)
        except FileNotFoundError:
            pass  # never uploaded


def moved_attr(info: dict[str, Any], before: Attr | None) -> Attr:
    """The attributes at a move's destination: the server's answer; its mode, owner and times (posix
    extension) are the source's when the answer has none (a move keeps them; ctime moves to now)."""
    attr = Attr.from_info(info)
    if attr.posix is None and before is not None and before.posix is not None:
        posix = dataclasses.replace(before.posix, ctime_ns=time.time_ns())
        kind = DIRECTORY if posix.is_dir else FILE
        attr = Attr(kind, attr.size if kind == FILE else 0, attr.mtime, attr.etag, posix)
    return attr
