"""``AlgoFileSystem``: the Data API as an fsspec filesystem (protocol ``algo``).

Paths use the layout shared with the mount: ``data/<user>/<collection>/…`` for hosted data (``data/.my``
is the caller) and ``<connector>/…`` (``s3/…``, ``dropbox+work/…``) for connectors. The root lists
``data`` and the connectors that answer a probe. Metadata comes from paged listings (one request per
1000 entries) and HEAD; file bytes from ranged GETs; uploads stream a local file with one PUT.

Against ``algofs serve`` the optional API extensions (docs/api-extensions.md, discovered once per
filesystem by ``capabilities()``) add writes at an offset (appends send only the new bytes), server-side
move/copy and setting mtimes; without them the same methods fall back to plain Data API calls.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any

from fsspec.spec import AbstractBufferedFile, AbstractFileSystem

from . import api_paths
from .api_capabilities import Capabilities
from .api_errors import NotSupported, PreconditionFailed, StaleFile
from .api_session import DEFAULT_TIMEOUT, ApiSession

DOWNLOAD_CHUNK = 1 << 20
#: Bodies up to this size are sent from memory (with the headers, in one write), larger ones streamed.
SMALL_BODY = 1 << 20
#: Concurrent requests of one batched ``cat``/``get`` (the session's pool holds 32 connections).
BATCH_THREADS = 8


def parse_listing_time(value: str | None) -> float:
    if not value:
        return 0.0
    try:
        moment = datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
        return float(int(moment.timestamp()))  # whole seconds, like Last-Modified: one mtime per version
    except ValueError:
        return 0.0


def parse_http_time(value: str | None) -> float:
    if not value:
        return 0.0
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return 0.0


def directory_info(name: str, mtime: float = 0.0) -> dict[str, Any]:
    return {"name": name, "type": "directory", "size": 0, "mtime": mtime, "etag": ""}


class AlgoFileSystem(AbstractFileSystem):
    protocol = "algo"
    root_marker = ""

    def __init__(self, api_address: str | None = None, api_key: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT, auto_mkdir: bool = True, extensions: bool = True,
                 **storage_options: Any):
        """``auto_mkdir``: writing ``a/b/c.csv`` creates missing folders (as s3fs/gcsfs users expect).
        ``extensions=False`` never uses the API extensions (behaves as against the hosted API)."""
        super().__init__(**storage_options)
        self.session = ApiSession(api_address, api_key, timeout=timeout)
        self.auto_mkdir = auto_mkdir
        self.use_extensions = extensions
        self._capabilities: Capabilities | None = None
        self._local = threading.local()  # per-thread state of a running ``get``
        self._username: str | None = None

    # -- names ------------------------------------------------------------------------------------

    @classmethod
    def _strip_protocol(cls, path: str) -> str:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        return api_paths.join_path(api_paths.split_path(str(path)))

    @staticmethod
    def _parts(path: str) -> tuple[str, ...]:
        return api_paths.split_path(path)

    def username(self) -> str:
        """The caller: the first folder of the data root listing (as the official client does)."""
        if self._username is None:
            for entry in self.iter_dir("data"):
                self._username = entry["name"].rsplit("/", 1)[-1]
                break
            else:
                raise PermissionError(errno.EACCES, "the data root lists no user")
        return self._username

    def capabilities(self) -> Capabilities:
        """The server's extensions, asked once (``GET /v1/algofs/capabilities``; anything but a 200 with
        a JSON object, including a transport error, means none; a failed probe is asked again later)."""
        if self._capabilities is not None:
            return self._capabilities
        if not self.use_extensions:
            self._capabilities = Capabilities.none()
            return self._capabilities
        try:
            response = self.session.request("GET", "/v1/algofs/capabilities", display="capabilities",
                                            ok=(200,))
        except (FileNotFoundError, PermissionError, NotSupported):
            self._capabilities = Capabilities.none()
            return self._capabilities
        except OSError:
            return Capabilities.none()  # backend down: ask again next time
        try:
            self._capabilities = Capabilities.from_json(response.json())
        except ValueError:
            self._capabilities = Capabilities.none()
        return self._capabilities

    @property
    def known_capabilities(self) -> Capabilities | None:
        """What ``capabilities()`` found, without asking (None: not asked yet, or the backend was down)."""
        return self._capabilities

    def supports(self, extension: str, path: str) -> bool:
        """True when the storage holding ``path`` offers ``extension`` (a name of capabilities.py)."""
        parts = self._parts(path)
        return bool(parts) and self.capabilities().supports(extension, parts[0])

    # -- metadata ---------------------------------------------------------------------------------

    def head(self, path: str) -> dict[str, Any]:
        """HEAD ``path``: ``{"name","type","size","mtime","etag"}``; 403 raises PermissionError."""
        parts = self._parts(path)
        response = self.session.request("HEAD", api_paths.api_path(parts), display=api_paths.data_uri(parts))
        response.close()
        name = api_paths.join_path(parts)
        if response.headers.get("X-Data-Type") == "directory":
            return directory_info(name)
        return {"name": name, "type": "file", "size": int(response.headers.get("Content-Length") or 0),
                "mtime": parse_http_time(response.headers.get("Last-Modified")),
                "etag": response.headers.get("ETag", "")}

    def iter_dir(self, path: str) -> Iterator[dict[str, Any]]:
        """The entries of a directory, one API page (≤ 1000 entries) at a time."""
        parts = self._parts(path)
        url = api_paths.api_path(parts)
        if not url.endswith("/"):
            url += "/"
        base = api_paths.join_path(parts)
        marker: str | None = None
        while True:
            params = {"marker": marker} if marker else None
            response = self.session.request("GET", url, params=params, display=api_paths.data_uri(parts))
            if response.headers.get("X-Data-Type") == "file":
                response.close()
                raise NotADirectoryError(errno.ENOTDIR, f"{api_paths.data_uri(parts)}: not a directory")
            try:
                body = json.loads(response.content or b"{}")
            except ValueError as exc:
                raise OSError(errno.EIO, f"{api_paths.data_uri(parts)}: malformed listing") from exc
            for folder in body.get("folders") or []:
                mtime = parse_listing_time(folder.get("last_modified"))
                yield directory_info(f"{base}/{folder['name']}", mtime)
            for item in body.get("files") or []:
                yield {"name": f"{base}/{item['filename']}", "type": "file", "size": int(item.get("size", 0)),
                       "mtime": parse_listing_time(item.get("last_modified")), "etag": ""}
            marker = body.get("marker") or None
            if not marker:
                return

    def connectors(self, candidates: tuple[str, ...] = api_paths.DEFAULT_CONNECTORS) -> list[str]:
        """Connector ids the server knows among ``candidates`` (a 403 still means "configured")."""
        found = []
        for cid in candidates:
            try:
                self.head(cid)
            except PermissionError:
                pass
            except FileNotFoundError:
                continue
            found.append(cid)
        return found

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        parts = self._parts(path)
        if not parts:
            entries = [directory_info(name) for name in ["data", *self.connectors()]]
        else:
            entries = list(self.iter_dir(path))
        return entries if detail else [e["name"] for e in entries]

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        parts = self._parts(path)
        if not parts or parts == ("data",):
            return directory_info(api_paths.join_path(parts))
        return self.head(path)

    def exists(self, path: str, **kwargs: Any) -> bool:
        try:
            self.info(path)
            return True
        except FileNotFoundError:
            return False

    # -- reading ----------------------------------------------------------------------------------

    def read_range(self, path: str, start: int, end: int, etag: str = "") -> bytes:
        """Bytes ``[start, end)``; with ``etag``, raises StaleFile if the file changed meanwhile."""
        return bytes(self.read_block(path, start, end, etag))

    def read_block(self, path: str, start: int, end: int, etag: str = "", size: int = -1) -> bytearray:
        """Like ``read_range`` but returns the receive buffer itself (no extra copy)."""
        out = bytearray(max(end - start, 0))
        with memoryview(out) as view:
            filled = self.read_block_into(path, start, view, etag, size)
        del out[filled:]
        return out

    def read_block_into(self, path: str, start: int, out: memoryview, etag: str = "", size: int = -1) -> int:
        """Fill ``out`` with the bytes from ``start`` on; returns the count (short only at EOF).

        The mount's block cache passes reused, page-aligned buffers: receiving into memory touched once
        avoids the page faults of a fresh multi-MiB object per block (expensive on virtual machines).
        """
        if not len(out):
            return 0
        with self.open_range(path, start, start + len(out), etag, size) as fill:
            return fill(out)

    @contextlib.contextmanager
    def open_range(self, path: str, start: int, end: int, etag: str = "",
                   size: int = -1) -> Iterator[Callable[[memoryview], int]]:
        """One ranged GET of ``[start, end)``; yields ``fill(out) -> count`` that reads the next bytes of
        the body into ``out`` (short only at the end of the body).

        Sequential readers fetch many blocks with one request: per-request costs (a round trip, TCP slow
        start after idle, the server's set-up) halve single-stream throughput at 8 MiB per request.
        With ``etag``, raises StaleFile if the file changed on the server; with ``size`` (the file's size
        as a listing gave it, when no ETag is known), if the server's copy has another size.
        """
        parts = self._parts(path)
        response = self.session.request(
            "GET", api_paths.api_path(parts), headers={"Range": f"bytes={start}-{end - 1}"},
            display=api_paths.data_uri(parts), ok=(200, 206), stream=True)
        try:
            if etag and response.headers.get("ETag") and response.headers["ETag"] != etag:
                raise StaleFile(f"{api_paths.data_uri(parts)} changed on the server while being read")
            if size >= 0 and _total_size(response) not in (None, size):
                raise StaleFile(f"{api_paths.data_uri(parts)} changed on the server (size)")
            skip = start if response.status_code == 200 else 0  # server ignored the range
            direct = skip == 0

            def fill(out: memoryview) -> int:
                nonlocal skip
                count = _read_exactly_into(response, out, skip, direct)
                skip = 0
                return count

            yield fill
        finally:
            response.close()

    def read_whole(self, path: str, etag: str = "") -> tuple[bytes, str]:
        """One GET of the whole file: its bytes and the ETag the server answered ("" if none).

        With ``etag``, raises StaleFile if the server holds another version.
        """
        parts = self._parts(path)
        response = self.session.request("GET", api_paths.api_path(parts), display=api_paths.data_uri(parts))
        answered = response.headers.get("ETag", "")
        if etag and answered and answered != etag:
            raise StaleFile(f"{api_paths.data_uri(parts)} changed on the server")
        return response.content, answered

    def cat_file(self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any) -> bytes:
        if start is None and end is None:
            return self.read_whole(path)[0]
        size = self.info(path)["size"]
        start = 0 if start is None else (start if start >= 0 else max(size + start, 0))
        end = size if end is None else (end if end >= 0 else max(size + end, 0))
        return self.read_range(path, start, min(end, size))

    def cat(self, path: Any, recursive: bool = False, on_error: str = "raise", **kwargs: Any) -> Any:
        """fsspec's ``cat``, with the files of a multi-path call fetched on ``BATCH_THREADS`` threads
        (one whole-file GET each): many small files cost a few round trips' time, not one each."""
        paths_ = self.expand_path(path, recursive=recursive, **kwargs)
        if len(paths_) == 1 and not isinstance(path, list) and paths_[0] == self._strip_protocol(path):
            return self.cat_file(paths_[0], **kwargs)
        results = self._batched([functools.partial(self.cat_file, p, **kwargs) for p in paths_])
        out: dict[str, Any] = {}
        for name, result in zip(paths_, results, strict=True):
            if isinstance(result, BaseException):
                if on_error == "raise":
                    raise result
                if on_error == "omit":
                    continue
            out[name] = result
        return out

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
        """One GET: a file is written to ``lpath``, a directory (the server answers its listing) made."""
        parts = self._parts(rpath)
        response = self.session.request("GET", api_paths.api_path(parts), display=api_paths.data_uri(parts),
                                        stream=True)
        try:
            if response.headers.get("X-Data-Type") == "directory":
                os.makedirs(lpath, exist_ok=True)
                return
            os.makedirs(os.path.dirname(lpath) or ".", exist_ok=True)
            with open(lpath, "wb") as out:
                for chunk in response.iter_content(DOWNLOAD_CHUNK):
                    out.write(chunk)
        finally:
            response.close()

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

    def download_to(self, path: str, destination: str | os.PathLike) -> int:
        """Stream a whole file into ``destination``; returns the byte count."""
        parts = self._parts(path)
        response = self.session.request("GET", api_paths.api_path(parts), display=api_paths.data_uri(parts),
                                        stream=True)
        written = 0
        try:
            with open(destination, "wb") as out:
                for chunk in response.iter_content(DOWNLOAD_CHUNK):
                    out.write(chunk)
                    written += len(chunk)
        except OSError as exc:
            if exc.errno is None:
                raise OSError(errno.EIO, f"{api_paths.data_uri(parts)}: download interrupted") from exc
            raise
        finally:
            response.close()
        expected = response.headers.get("Content-Length")
        if expected is not None and int(expected) != written:
            raise OSError(errno.EIO, f"{api_paths.data_uri(parts)}: download ended after {written} bytes")
        return written

    def get_file(self, rpath: str, lpath: str, callback: Any = None, **kwargs: Any) -> None:
        deferred = getattr(self._local, "deferred", None)
        if deferred is not None:  # inside ``get``: collected, then downloaded in parallel
            deferred.append((rpath, lpath))
            return
        if self.isdir(rpath):
            os.makedirs(lpath, exist_ok=True)
            return
        self.download_to(rpath, lpath)

    # -- writing ----------------------------------------------------------------------------------

    def put_file(self, lpath: str | os.PathLike, rpath: str, callback: Any = None,
                 if_match: str | None = None, **kwargs: Any) -> dict[str, Any] | None:
        """Upload a local file with one streamed PUT (the server replaces the file atomically).

        Returns the stored file's ``info`` when the server's answer carries its validators (``ETag`` and
        ``Last-Modified``, as ``algofs serve`` sends), else None (ask with ``head``). The PUT is replayed
        on transient errors (the body is reopened from ``lpath``). ``if_match``: only replace that version
        (PreconditionFailed otherwise; a server without the extension ignores it).
        """
        if os.path.isdir(lpath):
            self.makedirs(rpath, exist_ok=True)
            return None
        size = os.path.getsize(lpath)

        def body() -> Any:  # requests sizes a real file itself; an empty one must be b"" (not chunked)
            if size <= SMALL_BODY:  # sent with the headers in one write: no Nagle/delayed-ACK stall
                with open(lpath, "rb") as small:
                    return small.read()
            return open(lpath, "rb")  # closed by the session

        headers = {"If-Match": if_match} if if_match else {}
        return self._put(rpath, body, size, headers=headers)

    def pipe_file(self, path: str, value: bytes, **kwargs: Any) -> dict[str, Any] | None:
        return self._put(path, lambda: value, len(value))

    def _put(self, rpath: str, body: Callable[[], Any], size: int, headers: dict[str, str] | None = None,
             params: dict[str, str] | None = None) -> dict[str, Any] | None:
        """One replayable PUT; a missing parent folder is created first when ``auto_mkdir`` is on."""
        parts = self._parts(rpath)
        all_headers = {"Content-Type": "application/octet-stream", **(headers or {})}
        try:
            response = self.session.request("PUT", api_paths.api_path(parts), body=body, headers=all_headers,
                                            params=params, display=api_paths.data_uri(parts), retry=True)
        except FileNotFoundError:
            if not self.auto_mkdir or (params and params.get("offset") not in (None, "0")) \
                    or not self._make_parents(parts):
                raise
            response = self.session.request("PUT", api_paths.api_path(parts), body=body, headers=all_headers,
                                            params=params, display=api_paths.data_uri(parts), retry=True)
        response.close()
        self.invalidate_cache(api_paths.join_path(parts))
        return _stored_info(api_paths.join_path(parts), response, size)

    def _make_parents(self, parts: tuple[str, ...]) -> bool:
        """Create the missing folders above ``parts``; False when there is nothing that could be made."""
        parent = parts[:-1]
        if len(parent) < (3 if parts[0] == "data" else 2):
            return False
        try:
            self.makedirs(api_paths.join_path(parent), exist_ok=True)
        except (FileNotFoundError, PermissionError):
            return False
        return True

    def write_at(self, path: str, offset: int, local: str | os.PathLike, *, expected_size: int | None = None,
                 if_match: str | None = None, truncate: bool = False,
                 at: int | None = None) -> dict[str, Any]:
        """Write the bytes of ``local`` from ``offset`` on to the remote file at ``offset`` (or ``at``)
        (write-at-offset extension): an append sends only the new bytes. ``expected_size``/``if_match`` are
        preconditions (PreconditionFailed, nothing written, when the file changed); ``truncate`` cuts the
        file after the written bytes. Raises NotSupported when the storage lacks the extension.
        """
        remote_offset = offset if at is None else at
        if not self.supports("write-at-offset", path):
            raise NotSupported(f"{path}: the server has no write-at-offset")
        total = os.path.getsize(local)
        length = max(total - offset, 0)

        def body() -> Any:
            if length <= SMALL_BODY:  # one send with the headers: no Nagle/delayed-ACK stall
                with open(local, "rb") as small:
                    small.seek(offset)
                    return small.read(length)
            handle = open(local, "rb")  # closed by the session
            handle.seek(offset)  # requests sends from here to the end (Content-Length = size - offset)
            return handle

        params = {"offset": str(remote_offset)}
        if expected_size is not None:
            params["expected_size"] = str(expected_size)
        if truncate:
            params["truncate"] = "true"
        headers = {"If-Match": if_match} if if_match else {}
        try:
            info = self._put(path, body, remote_offset + length, headers=headers, params=params)
        except PreconditionFailed as exc:
            # a replay may find its own first attempt applied: the file has exactly the new size then
            if getattr(exc, "retried", False) and exc.size == remote_offset + length and not if_match:
                return self.head(path)
            raise
        return info or self.head(path)

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        """Create a folder (a collection directly under ``data/<user>``); FileExistsError if it exists.

        Replayed on transient errors; "already exists" after a replay is the first attempt's success.
        """
        parts = self._parts(path)
        if len(parts) < 2:
            raise PermissionError(errno.EACCES, f"{path}: can't create a directory here")
        parent = api_paths.api_path(parts[:-1])
        try:
            response = self.session.request(
                "POST", parent if parent.endswith("/") else parent + "/", json_body={"name": parts[-1]},
                display=api_paths.data_uri(parts), retry=True)
        except FileExistsError as exc:
            if getattr(exc, "retried", False):
                return
            raise
        except FileNotFoundError:
            if not create_parents or not self._make_parents(parts):
                raise
            self.mkdir(path, create_parents=False)
            return
        response.close()
        self.invalidate_cache(api_paths.join_path(parts))

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        parts = self._parts(path)
        start = 3 if parts and parts[0] == "data" else 2
        for depth in range(start, len(parts) + 1):
            try:
                self.mkdir(api_paths.join_path(parts[:depth]), create_parents=False)
            except FileExistsError:
                if depth == len(parts) and not exist_ok:
                    raise

    # -- server-side operations (extensions, with fallbacks) ---------------------------------------

    def _extension_call(self, operation: str, body: dict[str, Any], display: str) -> dict[str, Any]:
        response = self.session.request(
            "POST", f"/v1/algofs/{operation}", json_body=body, display=display, retry=True)
        try:
            result = response.json().get("result")
        except ValueError as exc:
            raise OSError(errno.EIO, f"{display}: malformed {operation} answer") from exc
        finally:
            response.close()
        if not isinstance(result, dict):
            raise OSError(errno.EIO, f"{display}: malformed {operation} answer")
        return {"type": result.get("type", "file"), "size": int(result.get("size") or 0),
                "mtime": float(int(result.get("last_modified") or 0)),  # whole seconds, as HEAD says
                "etag": response.headers.get("ETag", "")}

    def move(self, path1: str, path2: str, overwrite: bool = True) -> dict[str, Any]:
        """Server-side move of a file or a whole directory (atomic within one storage).

        Raises NotSupported without the extension, OSError(EXDEV) across storages. A replayed move that
        finds its source gone and its destination present was the first attempt's success.
        """
        src, dst = self._parts(path1), self._parts(path2)
        if not self.supports("move", path1):
            raise NotSupported(f"{path1}: the server has no move")
        try:
            body = {"from": api_paths.data_uri(src), "to": api_paths.data_uri(dst), "overwrite": overwrite}
            info = self._extension_call("move", body, api_paths.data_uri(src))
        except FileNotFoundError as exc:
            if getattr(exc, "retried", False) and self.exists(path2) and not self.exists(path1):
                return self.info(path2)
            raise
        self.invalidate_cache(api_paths.join_path(src))
        self.invalidate_cache(api_paths.join_path(dst))
        info["name"] = api_paths.join_path(dst)
        return info

    def set_mtime(self, path: str, mtime: float) -> dict[str, Any]:
        """Set a file's or folder's modification time on the server (set-mtime extension)."""
        parts = self._parts(path)
        if not self.supports("set-mtime", path):
            raise NotSupported(f"{path}: the server can't set mtimes")
        info = self._extension_call("utime", {"path": api_paths.data_uri(parts), "mtime": float(mtime)},
                                    api_paths.data_uri(parts))
        info["name"] = api_paths.join_path(parts)
        return info

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        """Copy one file: server-side when the storage can, else download + upload through a temp file."""
        if self.supports("copy", path1) and self._parts(path1)[:1] == self._parts(path2)[:1]:
            try:
                source = api_paths.data_uri(self._parts(path1))
                body = {"from": source, "to": api_paths.data_uri(self._parts(path2)), "overwrite": True}
                self._extension_call("copy", body, source)
                self.invalidate_cache(self._strip_protocol(path2))
                return
            except FileNotFoundError:
                if not self.auto_mkdir or not self._make_parents(self._parts(path2)):
                    raise
                return self.cp_file(path1, path2)
            except NotSupported:
                pass
        with tempfile.NamedTemporaryFile() as temp:
            self.download_to(path1, temp.name)
            self.put_file(temp.name, path2)

    def mv(self, path1: str, path2: str, recursive: bool = False, maxdepth: int | None = None,
           **kwargs: Any) -> None:
        """One server-side move where the server can (files and directories); else copy + delete."""
        if isinstance(path1, str) and isinstance(path2, str) and self.supports("move", path1) \
                and self._parts(path1)[:1] == self._parts(path2)[:1]:
            try:
                self.move(path1, path2)
                return
            except FileNotFoundError:
                if not self.exists(path1) or not self.auto_mkdir \
                        or not self._make_parents(self._parts(path2)):
                    raise
                self.move(path1, path2)
                return
            except NotSupported:
                pass
        super().mv(path1, path2, recursive=recursive or self.isdir(path1), maxdepth=maxdepth, **kwargs)

    def rmdir(self, path: str) -> None:
        self._delete(path)

    def rm_file(self, path: str) -> None:
        self._delete(path)

    def _delete(self, path: str, params: dict[str, str] | None = None) -> None:
        """One DELETE, replayed on transient errors; "not found" after a replay is the first's success."""
        parts = self._parts(path)
        try:
            response = self.session.request("DELETE", api_paths.api_path(parts), params=params,
                                            display=api_paths.data_uri(parts), retry=True)
        except FileNotFoundError as exc:
            if getattr(exc, "retried", False):
                return
            raise
        response.close()
        self.invalidate_cache(api_paths.join_path(parts))

    def _rm(self, path: str) -> None:
        self.rm_file(path)

    def rm(self, path: str, recursive: bool = False, maxdepth: int | None = None) -> None:
        for p in ([path] if isinstance(path, str) else path):
            if recursive and self.isdir(p):
                self._delete(p, params={"force": "true"})
            else:
                self.rm_file(p)

    def _open(self, path: str, mode: str = "rb", block_size: int | None = None, autocommit: bool = True,
              cache_options: dict | None = None, **kwargs: Any) -> AbstractBufferedFile:
        return AlgoFile(self, path, mode=mode, block_size=block_size or 8 << 20, autocommit=autocommit,
                        cache_type="readahead", cache_options=cache_options, **kwargs)


class AlgoFile(AbstractBufferedFile):
    """Reads by ranged GETs; writes spool to a temp file on disk, uploaded with one PUT on close.

    Mode ``ab`` sends only the appended bytes (write-at-offset, with the file's size at open as the
    precondition) when the server can; else it downloads the file into the spool and uploads it whole.
    """

    fs: AlgoFileSystem

    def _fetch_range(self, start: int, end: int) -> bytes:
        return self.fs.read_range(self.path, start, min(end, self.size))

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


def _stored_info(name: str, response: Any, size: int) -> dict[str, Any] | None:
    """The info of a file just written, from the answer's validators (None when it lacks them)."""
    etag, modified = response.headers.get("ETag"), response.headers.get("Last-Modified")
    if not (etag and modified):
        return None
    stored = response.headers.get("X-Algofs-Size")
    return {"name": name, "type": "file", "size": int(stored) if stored and stored.isdigit() else size,
            "mtime": parse_http_time(modified), "etag": etag}


def _total_size(response: Any) -> int | None:
    """The file's size from ``Content-Range: bytes a-b/TOTAL`` (206) or ``Content-Length`` (200)."""
    if response.status_code == 206:
        total = (response.headers.get("Content-Range") or "").rpartition("/")[2]
        return int(total) if total.isdigit() else None
    length = response.headers.get("Content-Length")
    return int(length) if length and length.isdigit() else None


def _fast_readinto(response: Any) -> Callable[[memoryview], int]:
    """The socket-level ``readinto`` under urllib3 when the body is not content-encoded.

    urllib3 2.x copies every chunk through its own buffer; reading a multi-MiB block straight from the
    ``http.client`` response doubles cold-read throughput here (0.58 -> 1.1 GB/s per stream on loopback).
    Falls back to urllib3's own ``readinto`` whenever that private attribute is missing or decoding applies.
    """
    raw = response.raw
    inner = getattr(raw, "_fp", None)
    if inner is None or response.headers.get("Content-Encoding") or not hasattr(inner, "readinto"):
        return raw.readinto
    return inner.readinto


def _read_exactly_into(response: Any, out: memoryview, skip: int = 0, direct: bool = True) -> int:
    """Read ``len(out)`` body bytes into ``out`` after skipping ``skip``; short only at the body's end."""
    raw = response.raw
    count = len(out)
    filled = 0
    # urllib3 buffers what it read while skipping, so only a body never skipped may bypass it
    readinto = _fast_readinto(response) if direct and skip == 0 else raw.readinto
    try:
        while skip > 0:
            dropped = raw.read(min(skip, DOWNLOAD_CHUNK))
            if not dropped:
                return 0
            skip -= len(dropped)
        while filled < count:
            got = readinto(out[filled:])
            if not got:
                break
            filled += got
    except Exception as exc:  # urllib3 protocol/timeout errors: the transfer broke
        raise OSError(errno.EIO, f"transfer interrupted: {type(exc).__name__}") from exc
    return filled
