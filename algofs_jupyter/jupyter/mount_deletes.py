"""Deleting from the file browser under the mount point: permanently, a folder with everything in it.

jupyter_server moves deleted files to the freedesktop trash (``delete_to_trash``, on by default); for a file
on the mount that means ``$mountpoint/.Trash-$uid``, which the mount's root refuses, so every delete in
``algofs/`` answered 400 "send2trash failed". A trash there would be a collection on the API server that every
other client lists, named by a local uid, with no restore or expiry on the server; a trash on local disk would
download each deleted file. So a delete under the mount point is deliberately permanent, as ``rm``, the
official client's ``.delete()`` and ``algo://`` deletes are. Everything else keeps jupyter_server's behaviour.

JupyterLab words its delete from one page-wide option, ``delete_to_trash``: the file browser's menu entry
("Move to Trash" / "Delete", fixed when the page loads) and the confirmation dialog ("Are you sure you want
to move to trash: x?" / "… permanently delete: x?", read at each delete). :func:`install_delete_wording`
makes the page say ``delete_to_trash: false`` (the entry reads "Delete", true everywhere) and passes the
server's own setting as ``algofs_delete_to_trash``; the labextension's ``deleteWording.ts`` words each
dialog from that outside the mount and as permanent inside it.

``AlgofsContentsManager`` does this itself; the server extension wraps ``delete_file`` of jupyter_server's own
file contents managers with :func:`install_mount_deletes`.
"""

from __future__ import annotations

import errno
import inspect
import os
import shutil

from anyio.to_thread import run_sync
from jupyter_core.paths import is_hidden
from tornado.web import HTTPError

from ..mount.mount_table import is_algofs_mount
from ..names import location_refusal
from .kernel_handoff import mount_prefix

MOUNTPOINT_REFUSAL = "The AlgoFS mount point itself can't be deleted; unmount it in the AlgoFS panel instead."


def place_refusal(layout: str) -> str | None:
    """Why the folder at ``layout`` (below the mount root) can't be deleted, or None. What the API can't
    create it can't delete either (the mount root's folders, ``data/``, a user's ``data/<user>/``, a
    connector's root); refusing before anything is removed matters because a recursive delete there would
    empty every collection in it and only then fail on the folder itself."""
    if location_refusal(layout, directory=True) is None:
        return None
    return (
        f"Can't delete {layout.strip('/')!r}: only collections (data/<user>/<collection>), what is in them, "
        "and what is inside a connector (e.g. s3/<bucket>/…) can be deleted on this storage."
    )


def on_live_mount(root_dir: str, path: str) -> bool:
    """Whether API path ``path`` is the mount point or below it while the mount is up."""
    found = mount_prefix(root_dir)
    if found is None:
        return False
    prefix, mount_abs = found
    path = path.strip("/")
    return (path == prefix or path.startswith(prefix + "/")) and is_algofs_mount(mount_abs)


def delete_permanently(os_path: str, api_path: str) -> None:
    """Unlink a file or remove a folder tree on the mount; OS errors become HTTP errors (never a 500)."""
    try:
        if os.path.isdir(os_path) and not os.path.islink(os_path):
            shutil.rmtree(os_path)
        else:
            os.unlink(os_path)
    except FileNotFoundError as exc:
        raise HTTPError(404, f"File or directory does not exist: {api_path}") from exc
    except OSError as exc:
        if exc.errno in (errno.EPERM, errno.EACCES):
            raise HTTPError(403, f"Permission denied: {api_path}") from exc
        raise HTTPError(502, f"AlgoFS could not delete {api_path}: {exc.strerror or exc}") from exc


def check_deletable(contents_manager, path: str) -> str:
    """The OS path to delete for ``path`` on the mount, after jupyter_server's own checks (hidden, missing),
    and never the mount point itself."""
    path = path.strip("/")
    found = mount_prefix(contents_manager.root_dir)
    if found is not None and path == found[0]:
        raise HTTPError(400, MOUNTPOINT_REFUSAL)
    if found is not None and (refusal := place_refusal(path[len(found[0]) + 1 :])):
        raise HTTPError(403, refusal)
    os_path = contents_manager._get_os_path(path)
    if not contents_manager.allow_hidden and is_hidden(os_path, contents_manager.root_dir):
        raise HTTPError(400, f"Cannot delete file or directory {path!r}")
    if not os.path.lexists(os_path):
        raise HTTPError(404, f"File or directory does not exist: {path}")
    return os_path


async def delete_on_mount(contents_manager, path: str) -> None:
    os_path = check_deletable(contents_manager, path)
    contents_manager.log.info("algofs: permanently deleting %s (no trash on the mount)", path.strip("/"))
    await run_sync(delete_permanently, os_path, path.strip("/"))


def install_delete_wording(web_app_settings: dict) -> None:
    """Chain a ``page_config_hook`` (jupyterlab_server calls it for every page) that moves the server's
    ``delete_to_trash`` to ``algofs_delete_to_trash`` and sets ``delete_to_trash`` to False."""
    previous = web_app_settings.get("page_config_hook")

    def hook(handler, page_config: dict) -> dict:
        if previous is not None:
            page_config = previous(handler, page_config)
        if "delete_to_trash" in page_config and "algofs_delete_to_trash" not in page_config:
            page_config["algofs_delete_to_trash"] = page_config["delete_to_trash"]
            page_config["delete_to_trash"] = False
        return page_config

    web_app_settings["page_config_hook"] = hook


def install_mount_deletes(contents_manager, log=None) -> bool:
    """Make ``contents_manager`` (jupyter_server's file contents manager, sync or async) delete permanently
    under the live mount point; True when that is in place. Another contents manager is left alone."""
    from jupyter_server.services.contents.filemanager import FileContentsManager

    if getattr(contents_manager, "algofs_deletes_permanently", False):
        return True  # AlgofsContentsManager: built in
    if not isinstance(contents_manager, FileContentsManager):
        if log is not None:
            log.warning("algofs: contents manager %s kept; deleting in the mount may try a trash there",
                        type(contents_manager).__name__)  # fmt: skip
        return False
    original = contents_manager.delete_file
    root_dir = contents_manager.root_dir
    if inspect.iscoroutinefunction(original):

        async def delete_file(path):
            if not on_live_mount(root_dir, path):
                return await original(path)
            await delete_on_mount(contents_manager, path)

    else:

        def delete_file(path):  # type: ignore[misc]
            if not on_live_mount(root_dir, path):
                return original(path)
            os_path = check_deletable(contents_manager, path)
            delete_permanently(os_path, path.strip("/"))

    contents_manager.delete_file = delete_file  # type: ignore[method-assign]
    return True
