"""``AlgoFileSystem``: the fsspec face (protocol ``algo``) of the Data API client (data_api.py).

Paths use the layout shared with the mount: ``data/<user>/<collection>/…`` for hosted data (``data/.my``
is the caller) and ``<connector>/…`` (``s3/…``, ``dropbox+work/…``) for connectors. The root lists
``data`` and the connectors that answer a probe. Every request is the client's (``self.client``); what
is here is fsspec's shape: listings and infos as fsspec wants them, batched ``cat`` (read-many) and
``get`` on a few threads, ``cp_file``/``mv`` with their fallbacks when the server has no copy/move,
and ``AlgoFile``.
"""

from __future__ import annotations

import errno
import functools
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import Any

from fsspec.spec import AbstractBufferedFile, AbstractFileSystem

from . import api_paths
from .api_capabilities import READ_MANY, Capabilities
from .api_errors import NotSupported
from .api_session import DEFAULT_TIMEOUT
from .data_api import DataClient
from .data_infos import directory_info
from .http_body import Fill
from .local_reads import LocalFile, LocalOpener, copy_and_close
from .posix_meta import Posix, seconds

#: Concurrent requests of one batched ``cat``/``get`` (the session's pool holds 32 connections).
BATCH_THREADS = 8
#: Paths per read-many request of a batched ``cat`` (the server takes 256, and 2 MiB of bytes).
READ_MANY_PATHS = 64


class AlgoFileSystem(AbstractFileSystem):
    protocol = "algo"
    root_marker = ""

    def __init__(self, api_address: str | None = None, api_key: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT, auto_mkdir: bool = True, extensions: bool = True,
                 **storage_options: Any):
        """``auto_mkdir``: writing ``a/b/c.csv`` creates missing folders (as s3fs/gcsfs users expect).
        ``extensions=False`` never uses the API extensions (behaves as against the hosted API)."""
        super().__init__(**storage_options)
        self.client = DataClient(api_address, api_key, timeout=timeout, auto_mkdir=auto_mkdir,
                                 extensions=extensions)
        self.session = self.client.session
        self._local = threading.local()  # per-thread state of a running ``get``
        self._open_on_server = LocalOpener(self.client)

    def open_local(self, path: str) -> LocalFile | None:
        """An open descriptor of the server's own file at ``path`` when the server is on this machine (the
        local-reads extension, docs/api-extensions.md §13), else None; any failure is None too (the
        caller reads over HTTP)."""
        try:
            return self._open_on_server(self._strip_protocol(path))
        except OSError:
            return None

    @property
    def auto_mkdir(self) -> bool:
        return self.client.auto_mkdir

    @classmethod
    def _strip_protocol(cls, path: str) -> str:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        return api_paths.join_path(api_paths.split_path(str(path)))

    # -- the client's calls, as they were methods of this class -----------------------------------

    def capabilities(self) -> Capabilities:
        return self.client.capabilities()

    @property
    def known_capabilities(self) -> Capabilities | None:
        return self.client.known_capabilities

    def supports(self, extension: str, path: str) -> bool:
        return self.client.supports(extension, path)

    def username(self) -> str:
        return self.client.username()

    def connectors(self, candidates: tuple[str, ...] = api_paths.DEFAULT_CONNECTORS) -> list[str]:
        return self.client.connectors(candidates)

    def head(self, path: str) -> dict[str, Any]:
        return self.client.head(path)

    def iter_dir(self, path: str) -> Iterator[dict[str, Any]]:
        return self.client.iter_dir(path)

    def read_range(self, path: str, start: int, end: int, etag: str = "") -> bytes:
        return self.client.read_range(path, start, end, etag)

    def read_block(self, path: str, start: int, end: int, etag: str = "", size: int = -1) -> bytearray:
        return self.client.read_block(path, start, end, etag, size)

    def read_block_into(self, path: str, start: int, out: memoryview, etag: str = "", size: int = -1) -> int:
        return self.client.read_block_into(path, start, out, etag, size)

    def open_range(self, path: str, start: int, end: int, etag: str = "",
                   size: int = -1) -> AbstractContextManager[Fill]:
        return self.client.open_range(path, start, end, etag, size)

    def read_whole(self, path: str, etag: str = "") -> tuple[bytes, str]:
        return self.client.read_whole(path, etag)

    def download_to(self, path: str, destination: str | os.PathLike) -> int:
        """The whole file into ``destination``; the byte count. A server on this machine's own file is
        copied by the kernel (§13), else one streamed GET."""
        copied = self._copy_local(path, destination)
        return copied if copied is not None else self.client.download_to(path, destination)

    def _copy_local(self, path: str, destination: str | os.PathLike) -> int | None:
        """``download_to`` from the server's own file: its byte count, or None where the server offers
        none (another machine, S3 storage, a directory, any refusal: the caller asks over HTTP)."""
        local = self.open_local(path)
        return copy_and_close(local, destination) if local is not None else None

    def write_at(self, path: str, offset: int, local: str | os.PathLike, **kwargs: Any) -> dict[str, Any]:
        return self.client.write_at(path, offset, local, **kwargs)

    def move(self, path1: str, path2: str, overwrite: bool = True) -> dict[str, Any]:
        return self.client.move(path1, path2, overwrite)

    def set_mtime(self, path: str, mtime: float) -> dict[str, Any]:
        return self.client.set_mtime(path, mtime)

    # -- fsspec: metadata -------------------------------------------------------------------------

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        if not api_paths.split_path(path):
            entries = [directory_info(name) for name in ["data", *self.client.connectors()]]
        else:
            entries = [fsspec_info(entry) for entry in self.client.iter_dir(path)]
        return entries if detail else [e["name"] for e in entries]

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        return fsspec_info(self.client.info(path))

    def exists(self, path: str, **kwargs: Any) -> bool:
        return self.client.exists(path)

    # -- fsspec: reading --------------------------------------------------------------------------

    def cat_file(self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any) -> bytes:
        """The file's bytes (``start``/``end`` as in fsspec, negative from the end). A server on this
        machine answers from its own file (§13): one socket request, no HEAD, no GET; else HTTP."""
        local = self.open_local(path)
        if local is not None:
            try:
                data = local.read(*_byte_range(start, end, local.size))
            finally:
                os.close(local.fd)
            if data is not None:
                return data
        if start is None and end is None:
            return self.read_whole(path)[0]
        return self.read_range(path, *_byte_range(start, end, self.info(path)["size"]))

    def cat(self, path: Any, recursive: bool = False, on_error: str = "raise", **kwargs: Any) -> Any:
        """fsspec's ``cat``, with the files of a multi-path call fetched ``READ_MANY_PATHS`` to a request
        where the server has ``read-many`` (docs/api-extensions.md §12), else on ``BATCH_THREADS`` threads
        (one whole-file GET each): many small files cost a few round trips' time, not one each."""
        paths_ = self.expand_path(path, recursive=recursive, **kwargs)
        if len(paths_) == 1 and not isinstance(path, list) and paths_[0] == self._strip_protocol(path):
            return self.cat_file(paths_[0], **kwargs)
        results = self._cat_many(paths_, **kwargs)
        out: dict[str, Any] = {}
        for name, result in zip(paths_, results, strict=True):
            if isinstance(result, BaseException):
                if on_error == "raise":
                    raise result
                if on_error == "omit":
                    continue
            out[name] = result
        return out

    def _cat_many(self, paths: list[str], **kwargs: Any) -> list[Any]:
        """Each path's bytes or its exception, in order. What read-many did not answer (too large for one
        answer, changed while read, the request failed) is fetched on its own."""
        answers: dict[str, Any] = {}
        many = [p for p in paths if not kwargs and self.client.supports(READ_MANY, p)]
        chunks = [many[i:i + READ_MANY_PATHS] for i in range(0, len(many), READ_MANY_PATHS)]
        for result in self._batched([functools.partial(self.client.read_many, chunk) for chunk in chunks]):
            if isinstance(result, BaseException):
                continue  # those paths are fetched one by one below
            for name, answer in result.items():
                if isinstance(answer, tuple):
                    answers[name] = answer[0]
                elif answer.errno not in (errno.EFBIG, errno.ESTALE):
                    answers[name] = answer
        rest = [p for p in dict.fromkeys(paths) if p not in answers]
        fetched = self._batched([functools.partial(self.cat_file, p, **kwargs) for p in rest])
        answers.update(zip(rest, fetched, strict=True))
        return [answers[p] for p in paths]

    def cat_ranges(self, paths: list[str], starts: Any, ends: Any, max_gap: int | None = None,
                   on_error: str = "return", **kwargs: Any) -> list[Any]:
        """fsspec's ``cat_ranges`` on ``BATCH_THREADS`` threads."""
        if max_gap is not None:
            raise NotImplementedError
        starts = starts if isinstance(starts, list) else [starts] * len(paths)
        ends = ends if isinstance(ends, list) else [ends] * len(paths)
        if len(starts) != len(paths) or len(ends) != len(paths):
            raise ValueError("paths, starts and ends differ in length")
        results = self._batched([functools.partial(self.cat_file, p, s, e, **kwargs)
                                 for p, s, e in zip(paths, starts, ends, strict=True)])
        for result in results:
            if isinstance(result, BaseException) and on_error != "return":
                raise result
        return results

    def get(self, rpath: Any, lpath: Any, recursive: bool = False, callback: Any = None,
            maxdepth: int | None = None, **kwargs: Any) -> None:
        """fsspec's ``get`` (same path rules), with the downloads run on ``BATCH_THREADS`` threads."""
        deferred: list[tuple[str, str]] = []
        self._local.deferred = deferred
        try:
            super().get(rpath, lpath, recursive=recursive, maxdepth=maxdepth, **kwargs)
        finally:
            self._local.deferred = None
        for result in self._batched([functools.partial(self._get_one, r, lp) for r, lp in deferred]):
            if isinstance(result, BaseException):
                raise result

    def _get_one(self, rpath: str, lpath: str) -> None:
        """A file (from the server's own file when it offers it) or a directory made, as ``get`` found."""
        os.makedirs(os.path.dirname(lpath) or ".", exist_ok=True)
        if self._copy_local(rpath, lpath) is None:
            self.client.download_entry(rpath, lpath)  # one GET: a file's bytes, or a directory made

    def _batched(self, calls: list[Callable[[], Any]]) -> list[Any]:
        """Run ``calls`` on at most ``BATCH_THREADS`` threads; each result or its exception, in order."""
        def run(call: Callable[[], Any]) -> Any:
            try:
                return call()
            except Exception as exc:  # noqa: BLE001 - handed back to the caller's on_error
                return exc

        if len(calls) <= 1:
            return [run(call) for call in calls]
        with ThreadPoolExecutor(max_workers=min(BATCH_THREADS, len(calls)),
                                thread_name_prefix="algofs-batch") as pool:
            return list(pool.map(run, calls))

    def get_file(self, rpath: str, lpath: str, callback: Any = None, **kwargs: Any) -> None:
        deferred = getattr(self._local, "deferred", None)
        if deferred is not None:  # inside ``get``: collected, then downloaded in parallel
            deferred.append((rpath, lpath))
            return
        if self._copy_local(rpath, lpath) is not None:
            return
        if self.isdir(rpath):
            os.makedirs(lpath, exist_ok=True)
            return
        self.download_to(rpath, lpath)

    # -- fsspec: writing --------------------------------------------------------------------------

    def put_file(self, lpath: str | os.PathLike, rpath: str, callback: Any = None,
                 if_match: str | None = None, mode: str = "overwrite",
                 **kwargs: Any) -> dict[str, Any] | None:
        """Upload a local file with one streamed PUT (``DataClient.put_file``: the stored file's info,
        or None when the server's answer lacks its validators); a local directory is made remotely.
        ``mode="create"``: FileExistsError if ``rpath`` exists (race-free with exclusive-create)."""
        if os.path.isdir(lpath):
            self.makedirs(rpath, exist_ok=True)
            return None
        return self.client.put_file(lpath, rpath, if_match=if_match, exclusive=_exclusive(mode))

    def pipe_file(self, path: str, value: bytes, mode: str = "overwrite",
                  **kwargs: Any) -> dict[str, Any] | None:
        """One PUT; ``mode="create"``: FileExistsError if ``path`` exists (as ``put_file``)."""
        return self.client.put_bytes(path, value, exclusive=_exclusive(mode))

    def mkdir(self, path: str, create_parents: bool = True, exist_ok: bool = False, **kwargs: Any) -> None:
        """FileExistsError when anything is at ``path`` (the server's 409), unless ``exist_ok`` and
        it is a directory."""
        try:
            self.client.mkdir(path, create_parents)
        except FileExistsError:
            if not (exist_ok and self.isdir(path)):
                raise

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        """The missing folders down to ``path``; FileExistsError when ``path`` exists, unless ``exist_ok``
        and it is a directory (a file in the way is never ok)."""
        try:
            self.client.makedirs(path, exist_ok=False)
        except FileExistsError:
            if not (exist_ok and self.isdir(path)):
                raise

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        """Copy one entry of fsspec's ``copy`` (which lists a recursive copy's directories too): a file
        server-side when the storage can, else download + upload through a temp file; a directory is
        made at ``path2`` (fsspec's rule, as ``LocalFileSystem`` does: empty directories are copied)."""
        try:
            self.client.copy(path1, path2)
            return
        except IsADirectoryError:
            self.makedirs(path2, exist_ok=True)
            return
        except NotSupported:
            pass
        with tempfile.TemporaryDirectory(prefix="algofs-cp-") as temp:
            local = os.path.join(temp, "entry")
            self.client.download_entry(path1, local)  # one GET: a file's bytes, or a directory made
            if os.path.isdir(local):
                self.makedirs(path2, exist_ok=True)
            else:
                self.put_file(local, path2)

    def mv(self, path1: str, path2: str, recursive: bool = False, maxdepth: int | None = None,
           **kwargs: Any) -> None:
        """One server-side move where the server can (files and directories); else copy + delete."""
        same_storage = isinstance(path1, str) and isinstance(path2, str) \
            and api_paths.split_path(path1)[:1] == api_paths.split_path(path2)[:1]
        if same_storage and self.client.supports("move", path1):
            try:
                self.client.move(path1, path2)
                return
            except FileNotFoundError:
                if not self.client.exists(path1) or not self.auto_mkdir \
                        or not self.client.make_parents(path2):
                    raise
                self.client.move(path1, path2)
                return
            except NotSupported:
                pass
        super().mv(path1, path2, recursive=recursive or self.isdir(path1), maxdepth=maxdepth, **kwargs)

    def rmdir(self, path: str) -> None:
        self.client.delete(path)

    def rm_file(self, path: str) -> None:
        self.client.delete(path)

    def _rm(self, path: str) -> None:
        self.rm_file(path)

    def rm(self, path: str, recursive: bool = False, maxdepth: int | None = None) -> None:
        for p in ([path] if isinstance(path, str) else path):
            self.client.delete(p, recursive=recursive and self.isdir(p))

    def _open(self, path: str, mode: str = "rb", block_size: int | None = None, autocommit: bool = True,
              cache_options: dict | None = None, **kwargs: Any) -> AbstractBufferedFile:
        """``xb`` creates the file at once, empty, with an exclusive PUT (so ``open`` raises
        FileExistsError as Python's does, race-free with exclusive-create); ``close`` uploads the bytes."""
        if mode == "xb":
            self.client.put_bytes(path, b"", exclusive=True)
        return AlgoFile(self, path, mode=mode, block_size=block_size or 8 << 20, autocommit=autocommit,
                        cache_type="readahead", cache_options=cache_options, **kwargs)


def _byte_range(start: int | None, end: int | None, size: int) -> tuple[int, int]:
    """fsspec's ``start``/``end`` (None: the file's ends; negative: from its end) as offsets in a file of
    ``size`` bytes."""
    first = 0 if start is None else (start if start >= 0 else max(size + start, 0))
    last = size if end is None else (end if end >= 0 else max(size + end, 0))
    return first, min(last, size)


def fsspec_info(info: dict[str, Any]) -> dict[str, Any]:
    """A client info as fsspec users know them from ``LocalFileSystem``: the posix extension's metadata
    (a ``Posix`` object) flattened to plain values: ``mode`` (full st_mode), ``uid``/``gid`` (absent when
    nobody set them: fsspec's own ``fsspec.fuse`` reads ``info.get("uid", 1000)`` and fails on None),
    ``mtime``/``atime``/``ctime`` (float seconds, from nanoseconds), ``islink`` and, for a symlink,
    ``destination`` (its target; never followed: its ``type`` stays ``file``, its bytes are the target, as
    the official client shows it). Without the extension the info is unchanged."""
    posix = info.get("posix")
    if not isinstance(posix, Posix):
        return info
    flat = {key: value for key, value in info.items() if key != "posix"}
    flat.update(mode=posix.mode, mtime=seconds(posix.mtime_ns), atime=seconds(posix.atime_ns),
                ctime=seconds(posix.ctime_ns), islink=posix.is_link)
    owners = (("uid", posix.uid), ("gid", posix.gid))
    flat.update({name: value for name, value in owners if value is not None})
    if posix.is_link:
        flat["destination"] = posix.target
    return flat


def _exclusive(mode: str) -> bool:
    """fsspec's ``mode`` of ``put_file``/``pipe_file``: ``overwrite`` (default) or ``create``."""
    if mode not in ("overwrite", "create"):
        raise ValueError(f"mode must be 'overwrite' or 'create', not {mode!r}")
    return mode == "create"


class AlgoFile(AbstractBufferedFile):
    """Reads by ranged GETs; writes spool to a temp file on disk, uploaded with one PUT on close.

    Mode ``ab`` sends only the appended bytes (write-at-offset, with the file's size at open as the
    precondition) when the server can; else it downloads the file into the spool and uploads it whole.
    """

    fs: AlgoFileSystem
    _server_file: LocalFile | None = None
    _server_file_asked = False

    def _fetch_range(self, start: int, end: int) -> bytes:
        end = min(end, self.size)
        local = self._local_file()
        data = local.read(start, end) if local is not None else None
        return data if data is not None else self.fs.read_range(self.path, start, end)

    def _local_file(self) -> LocalFile | None:
        """The server's own file of the version opened (same size, and ETag when known), asked once: a
        server on this machine answers reads with no HTTP (§13). Closed with the file."""
        if not self._server_file_asked:
            self._server_file_asked = True
            found = self.fs.open_local(self.path)
            etag = self.details.get("etag") or ""
            if found is not None and not found.holds(self.size, etag):
                os.close(found.fd)  # another version than the one opened: read over HTTP
                found = None
            self._server_file = found
        return self._server_file

    def close(self) -> None:
        super().close()
        local, self._server_file = self._server_file, None
        if local is not None:
            os.close(local.fd)

    def _initiate_upload(self) -> None:
        self._spool = tempfile.TemporaryFile()  # closed after the final chunk
        self._append_at: int | None = None
        if self.mode == "ab":
            try:
                remote = self.fs.info(self.path)
            except FileNotFoundError:
                return
            if self.fs.supports("write-at-offset", self.path):
                self._append_at = int(remote["size"])
                self._spool.truncate(self._append_at)  # sparse: only the tail is sent
                self._spool.seek(self._append_at)
            else:
                self.fs.download_to(self.path, f"/proc/self/fd/{self._spool.fileno()}")
                self._spool.seek(0, os.SEEK_END)

    def _upload_chunk(self, final: bool = False) -> bool:
        self.buffer.seek(0)
        shutil.copyfileobj(self.buffer, self._spool)
        if final:
            self._spool.flush()
            try:
                name = f"/proc/self/fd/{self._spool.fileno()}"
                if self._append_at is not None:
                    self.fs.write_at(self.path, self._append_at, name, expected_size=self._append_at)
                else:
                    self.fs.put_file(name, self.path)
            finally:
                self._spool.close()
        return True
