"""No-FUSE fallback for the JupyterLab file browser: the mount-point directory served from ``AlgoFileSystem``.

Binder and most hosted Jupyter services have no ``/dev/fuse``, so nothing can be mounted at ``algofs/``. This
contents manager answers every path under the mount point from the API instead (listing, opening as text or
base64, saving, deleting, renaming by copy+delete, new folders, downloads through ``/files/``), and delegates
everything else — and everything while a real FUSE mount is active there — to jupyter_server's normal
large-file manager. In both modes a delete under the mount point is permanent, folders included
(``mount_deletes.py`` says why).

Enable it with ``--ServerApp.contents_manager_class=algofs_jupyter.jupyter.contents.AlgofsContentsManager``
(``algofs demo`` and ``binder/`` do). It finds the API and the mount point in the hand-off file the server
extension publishes (``ALGOFS_HANDOFF_FILE``), so both agree on one backend.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import mimetypes
import os
import posixpath
import threading
from datetime import datetime, timezone
from pathlib import Path

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import AuthenticatedFileHandler
from jupyter_server.files.handlers import FilesHandler
from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from jupyter_server.services.contents.manager import AsyncContentsManager
from tornado import web
from tornado.web import HTTPError
from traitlets import Int, default

from ..mount.mount_table import is_algofs_mount
from .checkpoints import AlgofsCheckpoints
from .kernel_handoff import HANDOFF_FILE_ENV, read_handoff_file
from .mount_deletes import MOUNTPOINT_REFUSAL, delete_on_mount, on_live_mount, place_refusal
from .mount_names import RuleRefusal, new_path_refusal

EPOCH = datetime.fromtimestamp(0, tz=timezone.utc)


def _mtime(info: dict) -> datetime:
    value = info.get("mtime") or 0
    return datetime.fromtimestamp(float(value), tz=timezone.utc) if value else EPOCH


class AlgofsContentsManager(AsyncLargeFileManager):
    """Large-file contents manager whose mount-point subtree falls back to the Algorithmia API."""

    algofs_max_file_size = Int(
        20 * 1024 * 1024,
        help="Largest AlgoFS file the fallback file browser opens (bytes); read bigger ones from code.",
    ).tag(config=True)

    algofs_deletes_permanently = True  # under the mount point; install_mount_deletes leaves this one alone

    @default("checkpoints_class")
    def _algofs_checkpoints_class(self):
        return AlgofsCheckpoints  # files on the mount are checkpointed on local disk, not through it

    @default("files_handler_class")
    def _algofs_files_handler_class(self):
        return AlgofsFilesHandler  # downloads of fallback files come from the API, not from disk

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._algofs_fs = None
        self._algofs_key: tuple[str, str | None] | None = None  # (API address, key) of _algofs_fs
        self._algofs_lock = threading.Lock()

    # ----- where the fallback applies --------------------------------------------------------------
    def _handoff(self) -> dict | None:
        path = os.environ.get(HANDOFF_FILE_ENV)
        return read_handoff_file(path) if path else None

    def _mount_prefix(self, handoff: dict | None) -> str | None:
        """The mount point as an API path relative to root_dir, or None if it lies outside it."""
        if not handoff or not handoff.get("mountpoint_abs"):
            return None
        try:
            relative = Path(handoff["mountpoint_abs"]).relative_to(Path(self.root_dir).resolve())
        except ValueError:
            return None
        return relative.as_posix()

    def _fallback_path(self, path: str) -> str | None:
        """The AlgoFileSystem path for ``path`` when it is under an unmounted mount point; else None."""
        path = path.strip("/")
        handoff = self._handoff()
        prefix = self._mount_prefix(handoff)
        if handoff is None or not prefix or not (path == prefix or path.startswith(prefix + "/")):
            return None
        if is_algofs_mount(handoff["mountpoint_abs"]):
            return None
        if handoff.get("error"):
            raise HTTPError(503, handoff["error"])
        return path[len(prefix) :].strip("/")

    async def _refuse_new_path(self, path: str, directory: bool, existing_ok: bool) -> None:
        """A 4xx naming the rule for a new path under the mount point (mounted or not) the API can't hold:
        400 for a name it can't carry, 403 for a place it can't create in (``existing_ok``: the save of a
        path that already exists goes ahead). Without this the mount's EINVAL/EACCES reach the browser as a
        500 ("Unexpected error … [Errno 22]", "Unknown error renaming file") or a bare "Permission denied"."""
        prefix = self._mount_prefix(self._handoff())
        path = path.strip("/")
        if not prefix or not path.startswith(prefix + "/"):
            return
        refused = new_path_refusal(path[len(prefix) :].strip("/"), directory)
        # only a refused path costs one more lookup
        if refused is None or (existing_ok and await self._any_exists(path)):
            return
        raise RuleRefusal(*refused)

    def _filesystem(self):
        handoff = self._handoff() or {}
        address, key = handoff.get("api_address"), handoff.get("api_key")
        if not address:
            raise HTTPError(503, "AlgoFS is still starting (no API endpoint published yet)")
        with self._algofs_lock:
            if self._algofs_key != (address, key):
                from algofs_jupyter.fs.filesystem import AlgoFileSystem

                self._algofs_fs = AlgoFileSystem(api_address=address, api_key=key)
                self._algofs_key = (address, key)
            return self._algofs_fs

    async def _run(self, func, *args, **kwargs):
        """Blocking filesystem work in a thread; API errors become HTTP errors."""
        try:
            return await asyncio.to_thread(func, *args, **kwargs)
        except HTTPError:
            raise
        except FileNotFoundError as exc:
            raise HTTPError(404, f"No such file or directory: {exc}") from exc
        except PermissionError as exc:
            raise HTTPError(403, f"Permission denied: {exc}") from exc
        except (IsADirectoryError, NotADirectoryError, FileExistsError, ValueError) as exc:
            raise HTTPError(400, str(exc)) from exc
        except OSError as exc:
            raise HTTPError(502, f"AlgoFS API error: {exc}") from exc

    # ----- models ------------------------------------------------------------------------------------
    @staticmethod
    def _model(api_path: str, info: dict) -> dict:
        is_dir = info.get("type") == "directory"
        name = api_path.rstrip("/").rsplit("/", 1)[-1]
        return {
            "name": name,
            "path": api_path,
            "type": "directory" if is_dir else "file",
            "created": _mtime(info),
            "last_modified": _mtime(info),
            "content": None,
            "format": None,
            "mimetype": None if is_dir else mimetypes.guess_type(name)[0],
            "size": None if is_dir else int(info.get("size") or 0),
            "writable": True,
            "hash": None,
            "hash_algorithm": None,
        }

    def _list_dir(self, algo_path: str, api_path: str) -> list[dict]:
        fs = self._filesystem()
        entries = fs.ls(algo_path, detail=True)
        models = []
        for info in entries:
            child = str(info["name"]).rstrip("/").rsplit("/", 1)[-1]
            models.append(self._model(f"{api_path}/{child}", info))
        return sorted(models, key=lambda model: (model["type"] != "directory", model["name"]))

    def _info(self, algo_path: str) -> dict:
        if not algo_path:
            return {"type": "directory"}
        return self._filesystem().info(algo_path)

    def _read(self, algo_path: str, size: int) -> bytes:
        if size > self.algofs_max_file_size:
            raise HTTPError(
                413,
                f"{algo_path} is {size / 2**20:.1f} MiB; the AlgoFS fallback file browser opens files up to "
                f"{self.algofs_max_file_size / 2**20:.0f} MiB. Read it from code instead "
                f"with fsspec.open('algo://{algo_path}').",
            )
        return self._filesystem().cat_file(algo_path)

    async def _algofs_get(
        self, path: str, algo_path: str, content: bool, type, format, require_hash: bool = False
    ) -> dict:
        api_path = path.strip("/")
        info = await self._run(self._info, algo_path)
        model = self._model(api_path, info)
        if model["type"] == "directory":
            if type not in (None, "directory"):
                raise HTTPError(400, f"{api_path} is a directory, not a {type}", reason="bad type")
            if content:
                model["content"] = await self._run(self._list_dir, algo_path, api_path)
                model["format"] = "json"
            return model
        if type == "directory":
            raise HTTPError(400, f"{api_path} is not a directory", reason="bad type")
        as_notebook = type == "notebook" or (
            type is None and api_path.endswith(".ipynb") and format != "base64"
        )
        if not content:
            if as_notebook:
                model["type"], model["mimetype"] = "notebook", None
            if require_hash:
                model.update(self._get_hash(await self._run(self._read, algo_path, model["size"])))
            return model
        data = await self._run(self._read, algo_path, model["size"])
        if require_hash:  # JupyterLab opens documents with hash=1; a None hash is a 500 there
            model.update(self._get_hash(data))
        if format != "base64":
            try:
                model["content"], model["format"] = data.decode("utf-8"), "text"
                model["mimetype"] = model["mimetype"] or "text/plain"
            except UnicodeDecodeError:
                if format == "text":
                    raise HTTPError(400, f"{api_path} is not UTF-8 encoded", reason="bad format") from None
        if model["format"] is None:
            model["content"], model["format"] = base64.b64encode(data).decode("ascii"), "base64"
            model["mimetype"] = model["mimetype"] or "application/octet-stream"
        if as_notebook:
            import nbformat

            model["content"] = nbformat.reads(data.decode("utf-8"), as_version=4)
            model["type"], model["format"], model["mimetype"] = "notebook", "json", None
        return model

    def _inject_mountpoint(self, model: dict, path: str) -> dict:
        """Show the mount point in its parent's listing even though nothing exists there on disk."""
        prefix = self._mount_prefix(self._handoff())
        if not prefix or model.get("type") != "directory" or not isinstance(model.get("content"), list):
            return model
        parent, name = posixpath.split(prefix)
        if parent != path.strip("/") or any(child["name"] == name for child in model["content"]):
            return model
        model["content"].append(self._model(prefix, {"type": "directory"}))
        return model

    # ----- ContentsManager API -----------------------------------------------------------------------
    async def get(self, path, content=True, type=None, format=None, require_hash=False):
        algo_path = self._fallback_path(path)
        if algo_path is None:
            try:
                model = await super().get(
                    path, content=content, type=type, format=format, require_hash=require_hash
                )
            except PermissionError as exc:
                # jupyter_server lets a listdir EACCES through as a 500; the mount shows a path the API
                # refuses as a d--x--x--x directory, so that is what asking for another user's data does.
                raise HTTPError(403, f"Permission denied: {path.strip('/')}") from exc
            return self._inject_mountpoint(model, path) if content else model
        return await self._algofs_get(path, algo_path, content, type, format, require_hash)

    async def save(self, model, path=""):
        await self._refuse_new_path(path, model.get("type") == "directory", existing_ok=True)
        algo_path = self._fallback_path(path)
        if algo_path is None:
            return await super().save(model, path)
        if not algo_path:
            raise HTTPError(400, "can't write the AlgoFS root itself")
        kind = model.get("type")
        if kind == "directory":
            await self._run(self._filesystem().makedirs, algo_path, exist_ok=True)
        elif kind in ("file", "notebook"):
            await self._run(self._write, algo_path, self._model_bytes(model), model.get("chunk"))
        else:
            raise HTTPError(400, f"unsupported model type {kind!r}")
        return await self.get(path, content=False)

    @staticmethod
    def _model_bytes(model: dict) -> bytes:
        if model.get("content") is None:
            raise HTTPError(400, "no file content")
        if model["type"] == "notebook":
            import nbformat

            return nbformat.writes(nbformat.from_dict(model["content"])).encode("utf-8")
        if model.get("format") == "base64":
            return base64.b64decode(model["content"])
        return model["content"].encode("utf-8")

    def _write(self, algo_path: str, data: bytes, chunk: int | None) -> None:
        """Upload; a chunked upload (chunk 2..n, -1 = last) appends: only the chunk is sent when the
        server has the write-at-offset extension, else the file is re-uploaded whole."""
        fs = self._filesystem()
        if chunk in (None, 1):
            fs.pipe_file(algo_path, data)
            return
        with fs.open(algo_path, "ab") as handle:
            handle.write(data)

    async def delete_file(self, path):
        algo_path = self._fallback_path(path)
        if algo_path is None:
            if on_live_mount(self.root_dir, path):
                return await delete_on_mount(self, path)
            return await super().delete_file(path)
        await self._run(self._delete, algo_path)

    def _delete(self, algo_path: str) -> None:
        """Permanent, a folder with everything in it (as on the mount: ``mount_deletes.py``)."""
        fs = self._filesystem()
        if not algo_path:
            raise HTTPError(400, MOUNTPOINT_REFUSAL)
        if refusal := place_refusal(algo_path):
            raise HTTPError(403, refusal)
        if fs.isdir(algo_path):
            fs.rm(algo_path, recursive=True)
        else:
            fs.rm_file(algo_path)

    async def rename_file(self, old_path, new_path):
        old_algo, new_algo = self._fallback_path(old_path), self._fallback_path(new_path)
        if (old_algo is None) != (new_algo is None):
            raise HTTPError(400, "can't move between AlgoFS and local files in fallback mode (no FUSE)")
        is_dir = bool(await ensure_async(self.dir_exists(old_path)))
        await self._refuse_new_path(new_path, is_dir, existing_ok=False)
        if old_algo is None or new_algo is None:
            return await super().rename_file(old_path, new_path)
        await self._run(self._move, old_algo, new_algo)

    def _move(self, old: str, new: str) -> None:
        """One server-side move where the server can; else copy every file, then delete the source."""
        fs = self._filesystem()
        if fs.exists(new):
            raise HTTPError(409, f"File already exists: {new}")
        if fs.supports("move", old) and old.split("/")[0] == new.split("/")[0]:
            fs.move(old, new, overwrite=False)
            return
        if fs.isdir(old):
            fs.makedirs(new, exist_ok=True)
            files = sorted(fs.find(old))
            for source in files:
                target = new + source[len(old.rstrip("/")) :]
                fs.makedirs(posixpath.dirname(target), exist_ok=True)
                fs.pipe_file(target, fs.cat_file(source))
            for source in files:
                fs.rm_file(source)
            fs.rm(old, recursive=True)
        else:
            fs.pipe_file(new, fs.cat_file(old))
            fs.rm_file(old)

    async def copy(self, from_path, to_path=None):
        from_algo = self._fallback_path(from_path)
        if from_algo is None and (to_path is None or self._fallback_path(to_path) is None):
            return await super().copy(from_path, to_path)
        if from_algo and await self.dir_exists(from_path):
            return await self._copy_folder(from_path, to_path)
        return await AsyncContentsManager.copy(self, from_path, to_path)  # generic get + save

    async def _copy_folder(self, from_path: str, to_path: str | None) -> dict:
        """A folder pasted (``copy_from``) within the fallback tree: named as jupyter_server names it
        (``name``, ``name-Copy1``… in an existing folder), copied file by file through the API."""
        from_path = from_path.strip("/")
        parent, _, name = from_path.rpartition("/")
        to_path = parent if to_path is None else to_path.strip("/")
        if await self.dir_exists(to_path):
            to_path = f"{to_path}/{await self.increment_filename(name, to_path, insert='-Copy')}"
        source, target = self._fallback_path(from_path), self._fallback_path(to_path)
        if not source or not target:
            raise HTTPError(400, "can't copy between AlgoFS and local files in fallback mode (no FUSE)")
        if target == source or target.startswith(source + "/"):
            raise HTTPError(400, f"can't copy {from_path} into itself")
        await self._run(self._copy_tree, source, target)
        return await self.get(to_path, content=False)

    def _copy_tree(self, source: str, target: str) -> None:
        fs = self._filesystem()
        fs.makedirs(target, exist_ok=False)
        for path, info in sorted(fs.find(source, withdirs=True, detail=True).items()):
            copied = target + path.rstrip("/")[len(source.rstrip("/")) :]
            if info.get("type") == "directory":
                fs.makedirs(copied, exist_ok=True)
            else:
                fs.pipe_file(copied, fs.cat_file(path))

    async def _any_exists(self, path) -> bool:
        """jupyter_server's ``exists`` is a synchronous look on disk (and called bare by its own code), so
        fallback paths are asked here."""
        if self._fallback_path(path) is None:
            return bool(await ensure_async(self.exists(path)))
        return bool(await self.file_exists(path) or await self.dir_exists(path))

    async def increment_filename(self, filename, path="", insert=""):
        """jupyter_server's naming ("untitled1.txt", "t-Copy1.txt"), with fallback paths looked up through
        the API: on disk nothing is there, so a Duplicate would overwrite its original."""
        if self._fallback_path(path) is None:
            return await super().increment_filename(filename, path, insert)
        basename, dot, ext = filename.rpartition(".")
        if ext != "ipynb":
            basename, dot, ext = filename.partition(".")
        for i in itertools.count():
            name = f"{basename}{f'{insert}{i}' if i else ''}{dot}{ext}"
            if not await self._any_exists(f"{path.strip('/')}/{name}"):
                return name
        raise AssertionError("unreachable")

    async def dir_exists(self, path):
        algo_path = self._fallback_path(path)
        if algo_path is None:
            return await super().dir_exists(path)
        return not algo_path or await self._run(self._filesystem().isdir, algo_path)

    async def file_exists(self, path=""):
        algo_path = self._fallback_path(path)
        if algo_path is None:
            return await super().file_exists(path)
        return bool(algo_path) and await self._run(self._filesystem().isfile, algo_path)

    async def is_hidden(self, path):
        if self._fallback_path(path) is None:
            return await super().is_hidden(path)
        return any(part.startswith(".") for part in path.strip("/").split("/"))

    async def get_kernel_path(self, path, model=None):
        if self._fallback_path(path) is None:
            return await super().get_kernel_path(path, model)
        return ""  # kernels for AlgoFS notebooks start at the root dir: the remote path isn't a directory

    # Checkpoints live on local disk; AlgoFS files have none in fallback mode.
    async def create_checkpoint(self, path):
        if self._fallback_path(path) is None:
            return await super().create_checkpoint(path)
        return {"id": "algofs-none", "last_modified": datetime.now(timezone.utc)}

    async def list_checkpoints(self, path):
        if self._fallback_path(path) is None:
            return await super().list_checkpoints(path)
        return []

    async def restore_checkpoint(self, checkpoint_id, path):
        if self._fallback_path(path) is None:
            return await super().restore_checkpoint(checkpoint_id, path)
        raise HTTPError(400, "AlgoFS files have no checkpoints in fallback mode")

    async def delete_checkpoint(self, checkpoint_id, path):
        if self._fallback_path(path) is None:
            return await super().delete_checkpoint(checkpoint_id, path)


class AlgofsFilesHandler(AuthenticatedFileHandler):
    """``/files/…`` (the file browser's Download, images in Markdown): fallback paths are read through the
    contents manager (from the API), everything else is served from disk as jupyter_server does."""

    def _from_api(self, path: str) -> bool:
        manager = self.contents_manager
        return isinstance(manager, AlgofsContentsManager) and manager._fallback_path(path) is not None

    @web.authenticated
    @authorized
    async def get(self, path, include_body=True):  # type: ignore[override]
        if self._from_api(path):
            return await ensure_async(FilesHandler.get(self, path, include_body=include_body))
        return await ensure_async(super().get(path, include_body=include_body))
