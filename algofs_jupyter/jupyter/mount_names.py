"""Refused names and places on the live mount, answered with the rule by jupyter_server's own file manager.

The API carries names inside URLs and creates folders and files only in some places (``names.py``), so the
mount refuses ``what?.txt`` with ``EINVAL`` and a folder in ``algofs/data/`` with ``EACCES``. jupyter_server's
file manager turned those into a 500 "Unexpected error … [Errno 22] Invalid argument" (upload, save),
"Unknown error renaming file" and a bare "Permission denied" (new folder). ``AlgofsContentsManager`` checks
first itself (``contents.py``); with jupyter_server's own manager (the extension enabled alone, FUSE mode)
:func:`install_name_rules` wraps ``save`` (also behind new files, new folders and uploads) and
``rename_file`` so a new path under the live mount is refused up front with a 4xx naming the rule.
Both raise :class:`RuleRefusal`, so the rule's `%XX` reaches the browser as written.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable

from tornado.web import HTTPError

from ..names import location_refusal, name_refusal
from .mount_deletes import mount_prefix, on_live_mount


class RuleRefusal(HTTPError):
    """An HTTPError whose message reaches the JSON reply as written. Without %-args tornado's
    ``log_message`` doubles every ``%`` (it is a format string) and jupyter_server's API handlers send it as
    is, so the rule's "%XX escapes (e.g. %41)" read "%%XX … %%41" in JupyterLab's dialog; tornado's own log
    uses get_message()."""

    @property
    def log_message(self) -> str | None:
        return self._log_message


def new_path_refusal(layout: str, directory: bool) -> tuple[int, str] | None:
    """(status, message) when nothing can be created at ``layout`` (a path below the mount root): 400 for a
    name the API can't carry, 403 for a place it can't create in; None when it can."""
    refusal = name_refusal(layout.rpartition("/")[2])
    if refusal is not None:
        return 400, refusal
    if location_refusal(layout, directory=False):  # the files' rule is the stricter one
        refusal = location_refusal(layout, directory=directory)
        if refusal is not None:
            return 403, refusal
    return None


def check_new_path(contents_manager, path: str, directory: Callable[[], bool], existing_ok: bool) -> None:
    """Raise the refusal for API path ``path`` when it is under the live mount and can't be created there
    (``directory()``: whether it is a folder, asked only then; ``existing_ok``: saving over a path that
    exists goes ahead)."""
    root_dir = contents_manager.root_dir
    if not on_live_mount(root_dir, path):
        return
    found = mount_prefix(root_dir)
    path = path.strip("/")
    if found is None or path == found[0]:
        return
    refused = new_path_refusal(path[len(found[0]) :].strip("/"), directory())
    if refused is None or (existing_ok and os.path.lexists(contents_manager._get_os_path(path))):
        return
    raise RuleRefusal(*refused)


def install_name_rules(contents_manager, log=None) -> bool:
    """Wrap ``save`` and ``rename_file`` of jupyter_server's file contents manager (sync or async) with
    :func:`check_new_path`; True when in place. ``AlgofsContentsManager`` has its own; others are left
    alone."""
    from jupyter_server.services.contents.filemanager import FileContentsManager

    if hasattr(contents_manager, "_refuse_new_path"):
        return True  # AlgofsContentsManager: built in
    if not isinstance(contents_manager, FileContentsManager):
        if log is not None:
            log.warning("algofs: contents manager %s kept; names the mount refuses may answer 500",
                        type(contents_manager).__name__)  # fmt: skip
        return False
    save, rename_file = contents_manager.save, contents_manager.rename_file

    def check_save(model, path):
        is_dir = (model or {}).get("type") == "directory"
        check_new_path(contents_manager, path, lambda: is_dir, existing_ok=True)

    def check_rename(old_path, new_path):
        def directory() -> bool:
            return os.path.isdir(contents_manager._get_os_path(old_path.strip("/")))

        check_new_path(contents_manager, new_path, directory, existing_ok=False)

    if inspect.iscoroutinefunction(save):

        async def async_save(model, path=""):
            check_save(model, path)
            return await save(model, path)

        async def async_rename(old_path, new_path):
            check_rename(old_path, new_path)
            return await rename_file(old_path, new_path)

        contents_manager.save, contents_manager.rename_file = async_save, async_rename  # type: ignore[method-assign]
    else:

        def sync_save(model, path=""):
            check_save(model, path)
            return save(model, path)

        def sync_rename(old_path, new_path):
            check_rename(old_path, new_path)
            return rename_file(old_path, new_path)

        contents_manager.save, contents_manager.rename_file = sync_save, sync_rename  # type: ignore[method-assign]
    return True
