"""Checkpoints of files on the mount live on local disk, in a private directory of the user's.

JupyterLab checkpoints every file it opens (``POST /api/contents/<path>/checkpoints``). jupyter_server's file
checkpoints put the copy next to the file, in ``<dir>/.ipynb_checkpoints/<name>-checkpoint<ext>``; on the
mount that is an upload of the whole file to the API server, and an ``.ipynb_checkpoints`` collection every
other client then lists (issue 25). These classes keep jupyter_server's behaviour for every other file and put
the checkpoints of files under the mount point in ``<jupyter data dir>/algofs/checkpoints/<mount key>/``
instead: made 0700 level by level (``private_dirs``), keyed by the mount point's absolute path so two
servers with different mount points never share one, and kept across restarts like local checkpoints are.

``AlgofsContentsManager`` uses :class:`AlgofsCheckpoints` by default; the server extension puts it (or
:class:`AlgofsSyncCheckpoints`) in place of jupyter_server's default file checkpoints when the server runs
another contents manager, and leaves a checkpoints class the user configured alone.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from pathlib import Path

from jupyter_server.services.contents.filecheckpoints import AsyncFileCheckpoints, FileCheckpoints
from tornado.web import HTTPError
from traitlets import Unicode

from ..private_dirs import make_private_dirs
from .kernel_handoff import mount_prefix


def default_checkpoint_root() -> Path:
    from .api_provider import default_data_dir

    return default_data_dir() / "checkpoints"


class MountFileCheckpoints(FileCheckpoints):
    """jupyter_server's file checkpoints, except that ``checkpoint_path`` for files under the mount point is
    in a private local directory, never on the mount."""

    algofs_checkpoint_root = Unicode(
        "",
        help="Where checkpoints of files on the AlgoFS mount are kept (local disk, made 0700); "
        "empty = <jupyter data dir>/algofs/checkpoints.",
    ).tag(config=True)

    def _mount(self) -> tuple[str, str] | None:
        """(mount point as an API path relative to root_dir, its absolute path), or None."""
        return mount_prefix(self.root_dir)

    def mount_checkpoint_dir(self, path: str) -> Path | None:
        """The local directory for checkpoints of ``path`` (an API path) under the mount, else None."""
        path = path.strip("/")
        mount = self._mount()
        if mount is None:
            return None
        prefix, mount_abs = mount
        if not path.startswith(prefix + "/"):
            return None
        parts = posixpath.dirname(path[len(prefix) + 1 :]).split("/")
        if any(part in (".", "..") for part in parts):
            raise HTTPError(404, f"No such file: {path}")
        key = hashlib.sha256(os.fsencode(mount_abs)).hexdigest()[:16]
        root = Path(self.algofs_checkpoint_root or default_checkpoint_root()).expanduser()
        return root.joinpath(key, *[part for part in parts if part])

    def checkpoint_path(self, checkpoint_id, path):
        cp_dir = self.mount_checkpoint_dir(path)
        if cp_dir is None:
            return super().checkpoint_path(checkpoint_id, path)
        basename, ext = os.path.splitext(posixpath.basename(path.strip("/")))
        with self.perm_to_403():
            make_private_dirs(cp_dir)
        return str(cp_dir / f"{basename}-{checkpoint_id}{ext}")


class AlgofsCheckpoints(MountFileCheckpoints, AsyncFileCheckpoints):
    """jupyter_server's async file checkpoints, except that files on the mount are checkpointed locally."""


AlgofsSyncCheckpoints = MountFileCheckpoints  # for a synchronous contents manager


def install_mount_checkpoints(contents_manager, log=None) -> bool:
    """Swap jupyter_server's default file checkpoints of ``contents_manager`` for ours; leave any other
    checkpoints class alone. True when ours are in place."""
    current = getattr(contents_manager, "checkpoints", None)
    if isinstance(current, MountFileCheckpoints):
        return True
    replacement = {AsyncFileCheckpoints: AlgofsCheckpoints, FileCheckpoints: AlgofsSyncCheckpoints}.get(
        type(current)  # type: ignore[arg-type]
    )
    if replacement is None:
        if log is not None:
            log.warning(
                "algofs: checkpoints class %s kept; checkpoints of files on the mount go through the mount",
                type(current).__name__,
            )
        return False
    kwargs = dict(contents_manager.checkpoints_kwargs)
    kwargs.setdefault("parent", contents_manager)
    contents_manager.checkpoints = replacement(**kwargs)
    return True
