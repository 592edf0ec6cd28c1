"""``DataClient``: the Data API and its extensions (``/v1/algofs/*``), with no fsspec in sight.

Paths use the layout shared with the mount: ``data/<user>/<collection>/…`` (``data/.my`` is the caller)
and ``<connector>/…`` (``s3/…``, ``dropbox+work/…``). Metadata comes from paged listings and HEAD, bytes
from ranged GETs, uploads stream a local file with one PUT. Against ``algofs serve`` the extensions
(docs/api-extensions.md, discovered once by ``capabilities()``) add writes at an offset, server-side
move/copy and mtimes; ``write_at``/``move``/``copy``/``set_mtime`` raise NotSupported without them.

Every request goes through one funnel, ``_call``: layout path → URL and the name errors show, then
``ApiSession.request`` (deadline, retries, fail-fast, status → OSError with an errno: api_session.py,
api_errors.py). Each operation says whether it may be replayed; a replay that finds its first attempt
applied (a 404 after a DELETE, a 409 after a mkdir) is that attempt's success.

A cache reads through one concrete range reader, ``range_reader(path, etag, size)``: fsspec caching.py's
``Fetcher(start, end) -> bytes``, plus ``into`` (the cache's own buffers) and ``stream`` (one GET for many
blocks). ``AlgoFileSystem`` (filesystem.py) is the fsspec face over this client.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from collections.abc import Callable, Iterator
from typing import Any

import requests

from . import api_paths, read_many
from .api_capabilities import EXCLUSIVE_CREATE, Capabilities
from .api_errors import NotSupported, PreconditionFailed, StaleFile
from .api_session import DEFAULT_TIMEOUT, ApiSession
from .data_infos import directory_info, parse_http_time, parse_listing_time, stored_info, with_posix
from .http_body import DOWNLOAD_CHUNK, Fill, read_exactly_into, total_size
from .posix_meta import Posix
from .range_reader import RangeReader

#: Bodies up to this size are sent from memory (with the headers, in one write), larger ones streamed.
SMALL_BODY = 1 << 20



def _parts(path: str) -> tuple[str, ...]:
    return api_paths.split_path(path)


class DataClient:
    """The Data API of one address and key: metadata, ranged reads, uploads, folders, extensions."""

    def __init__(self, api_address: str | None = None, api_key: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT, auto_mkdir: bool = True, extensions: bool = True,
                 session: ApiSession | None = None):
        """``auto_mkdir``: writing ``a/b/c.csv`` creates missing folders (as s3fs/gcsfs users expect).
        ``extensions=False`` never uses the API extensions (behaves as against the hosted API)."""
        self.session = session or ApiSession(api_address, api_key, timeout=timeout)
        self.auto_mkdir = auto_mkdir
        self.use_extensions = extensions
        self._capabilities: Capabilities | None = None
        self._username: str | None = None

    # -- the funnel -------------------------------------------------------------------------------

    def _call(self, method: str, target: tuple[str, ...] | str, *, url: str | None = None,
              display: str | None = None, **kwargs: Any) -> requests.Response:
        """Every request of the client. ``target``: layout parts (a Data API URL, named ``data://…`` in
        errors) or an extension's URL path; ``url`` overrides the address (a listing's trailing ``/``).
        The rest is ``ApiSession.request``'s: ``ok``, ``retry``, ``body``, ``json_body``, ``stream``…"""
        if isinstance(target, tuple):
            url = url or api_paths.api_path(target)
            display = display or api_paths.data_uri(target)
        else:
            url = url or target
            display = display or target
        return self.session.request(method, url, display=display, **kwargs)

    def _extension_call(self, operation: str, body: dict[str, Any], display: str) -> dict[str, Any]:
        """``POST /v1/algofs/<operation>`` (replayable): the ``result`` as a file info without a name."""
        response = self._call("POST", f"/v1/algofs/{operation}", json_body=body, display=display, retry=True)
        try:
            result = response.json().get("result")
        except ValueError as exc:
            raise OSError(errno.EIO, f"{display}: malformed {operation} answer") from exc
        finally:
            response.close()
        if not isinstance(result, dict):
            raise OSError(errno.EIO, f"{display}: malformed {operation} answer")
        info = {"type": result.get("type", "file"), "size": int(result.get("size") or 0),
                "mtime": float(int(result.get("last_modified") or 0)),  # whole seconds, as HEAD says
                "etag": response.headers.get("ETag", "")}
        return with_posix(info, Posix.from_json(result.get("posix")))

    # -- the server and the caller ----------------------------------------------------------------

    def capabilities(self) -> Capabilities:
        """The server's extensions, asked once (``GET /v1/algofs/capabilities``; anything but a 200 with
        a JSON object, including a transport error, means none; a failed probe is asked again later)."""
        if self._capabilities is not None:
            return self._capabilities
        if not self.use_extensions:
            self._capabilities = Capabilities.none()
            return self._capabilities
        try:
            response = self._call("GET", "/v1/algofs/capabilities", display="capabilities")
        except (FileNotFoundError, PermissionError, NotSupported):
            self._capabilities = Capabilities.none()
            return self._capabilities
        except OSError:
            return Capabilities.none()  # the API is down: ask again next time
        try:
            self._capabilities = Capabilities.from_json(response.json())
        except ValueError:
            self._capabilities = Capabilities.none()
        return self._capabilities

    def forget_capabilities(self) -> None:
        """The server may have restarted (a local-reads socket went away): ask again at the next use."""
        self._capabilities = None

    @property
    def known_capabilities(self) -> Capabilities | None:
        """What ``capabilities()`` found, without asking (None: not asked yet, or the API was down)."""
        return self._capabilities

    def supports(self, extension: str, path: str) -> bool:
        """True when the storage holding ``path`` offers ``extension`` (a name of capabilities.py)."""
        parts = _parts(path)
        return bool(parts) and self.capabilities().supports(extension, parts[0])

    def username(self) -> str:
        """The caller: the first folder of the data root listing (as the official client does)."""
        if self._username is None:
            for entry in self.iter_dir("data"):
                self._username = entry["name"].rsplit("/", 1)[-1]
                break
            else:
                raise PermissionError(errno.EACCES, "the data root lists no user")
        return self._username

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

    # -- metadata ---------------------------------------------------------------------------------

    def head(self, path: str) -> dict[str, Any]:
        """HEAD ``path``: ``{"name","type","size","mtime","etag"}``; 403 raises PermissionError."""
        parts = _parts(path)
        response = self._call("HEAD", parts)
        response.close()
        name = api_paths.join_path(parts)
        posix = Posix.from_headers(response.headers)  # the posix extension's; folders' too if sent
        if response.headers.get("X-Data-Type") == "directory":
            return with_posix(directory_info(name), posix)
        size = int(response.headers.get("Content-Length") or 0)
        return with_posix({"name": name, "type": "file", "size": size,
                            "mtime": parse_http_time(response.headers.get("Last-Modified")),
                            "etag": response.headers.get("ETag", "")}, posix)

    def info(self, path: str) -> dict[str, Any]:
        """``head``, except for the layout's root and ``data`` (directories no request is needed for)."""
        parts = _parts(path)
        if not parts or parts == ("data",):
            return directory_info(api_paths.join_path(parts))
        return self.head(path)

    def exists(self, path: str) -> bool:
        try:
            self.info(path)
            return True
        except FileNotFoundError:
            return False

    def iter_dir(self, path: str) -> Iterator[dict[str, Any]]:
        """The entries of a directory, one API page (≤ 1000 entries) at a time."""
        parts = _parts(path)
        url = api_paths.api_path(parts)
        base = api_paths.join_path(parts)
        marker: str | None = None
        while True:
            params = {"marker": marker} if marker else None
            response = self._call("GET", parts, url=url if url.endswith("/") else url + "/", params=params)
            if response.headers.get("X-Data-Type") == "file":
                response.close()
                raise NotADirectoryError(errno.ENOTDIR, f"{api_paths.data_uri(parts)}: not a directory")
            try:
                body = json.loads(response.content or b"{}")
            except ValueError as exc:
                raise OSError(errno.EIO, f"{api_paths.data_uri(parts)}: malformed listing") from exc
            for folder in body.get("folders") or []:
                mtime = parse_listing_time(folder.get("last_modified"))
                yield with_posix(directory_info(f"{base}/{folder['name']}", mtime),
                                  Posix.from_json(folder.get("posix")))
            for item in body.get("files") or []:
                yield with_posix({"name": f"{base}/{item['filename']}", "type": "file",
                                   "size": int(item.get("size", 0)),
                                   "mtime": parse_listing_time(item.get("last_modified")), "etag": ""},
                                  Posix.from_json(item.get("posix"), item.get("target")))
            marker = body.get("marker") or None
            if not marker:
                return

    # -- reading ----------------------------------------------------------------------------------

    def range_reader(self, path: str, etag: str = "", size: int = -1) -> RangeReader:
        """The reader a cache fetches one file version's blocks with (see ``RangeReader``)."""
        return RangeReader(self, path, etag, size)

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
    def open_range(self, path: str, start: int, end: int, etag: str = "", size: int = -1) -> Iterator[Fill]:
        """One ranged GET of ``[start, end)``; yields ``fill(out) -> count`` that reads the next bytes of
        the body into ``out`` (short only at the end of the body).

        Sequential readers fetch many blocks with one request: per-request costs (a round trip, TCP slow
        start after idle, the server's set-up) halve single-stream throughput at 8 MiB per request.
        With ``etag``, raises StaleFile if the file changed on the server; with ``size`` (the file's size
        as a listing gave it, when no ETag is known), if the server's copy has another size.
        """
        parts = _parts(path)
        response = self._call("GET", parts, headers={"Range": f"bytes={start}-{end - 1}"}, ok=(200, 206),
                              stream=True)
        try:
            if etag and response.headers.get("ETag") and response.headers["ETag"] != etag:
                raise StaleFile(f"{api_paths.data_uri(parts)} changed on the server while being read")
            if size >= 0 and total_size(response) not in (None, size):
                raise StaleFile(f"{api_paths.data_uri(parts)} changed on the server (size)")
            skip = start if response.status_code == 200 else 0  # server ignored the range
            direct = skip == 0

            def fill(out: memoryview) -> int:
                nonlocal skip
                count = read_exactly_into(response, out, skip, direct)
                skip = 0
                return count

            yield fill
        finally:
            response.close()

    def read_whole(self, path: str, etag: str = "") -> tuple[bytes, str]:
        """One GET of the whole file: its bytes and the ETag the server answered ("" if none).

        With ``etag``, raises StaleFile if the server holds another version.
        """
        parts = _parts(path)
        response = self._call("GET", parts)
        answered = response.headers.get("ETag", "")
        if etag and answered and answered != etag:
            raise StaleFile(f"{api_paths.data_uri(parts)} changed on the server")
        return response.content, answered

    def read_many(self, paths: list[str]) -> read_many.ManyResult:
        """Small files with one request (the ``read-many`` extension: at most 256, 2 MiB in all, §12):
        each path's bytes and ETag, or the error a GET of it would have raised."""
        uris = {api_paths.data_uri(_parts(path)): path for path in paths}
        response = self._call("POST", "/v1/algofs/read-many", json_body={"paths": list(uris)},
                              display=f"{len(paths)} files", retry=True)
        return read_many.decode(response.content, uris)

    def download_to(self, path: str, destination: str | os.PathLike) -> int:
        """Stream a whole file into ``destination``; returns the byte count."""
        parts = _parts(path)
        response = self._call("GET", parts, stream=True)
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

    def download_entry(self, path: str, local: str) -> None:
        """One GET: a file is written to ``local``, a directory (the server answers its listing) made."""
        response = self._call("GET", _parts(path), stream=True)
        try:
            if response.headers.get("X-Data-Type") == "directory":
                os.makedirs(local, exist_ok=True)
                return
            os.makedirs(os.path.dirname(local) or ".", exist_ok=True)
            with open(local, "wb") as out:
                for chunk in response.iter_content(DOWNLOAD_CHUNK):
                    out.write(chunk)
        finally:
            response.close()

    # -- writing ----------------------------------------------------------------------------------

    def put_file(self, lpath: str | os.PathLike, rpath: str, if_match: str | None = None,
                 exclusive: bool = False) -> dict[str, Any] | None:
        """Upload a local file with one streamed PUT (the server replaces the file atomically).

        Returns the stored file's info when the server's answer carries its validators (``ETag`` and
        ``Last-Modified``, as ``algofs serve`` sends), else None (ask with ``head``). The PUT is replayed
        on transient errors (the body is reopened from ``lpath``). ``if_match``: only replace that version
        (PreconditionFailed otherwise; a server without the extension ignores it). ``exclusive``: see
        ``_put``.
        """
        size = os.path.getsize(lpath)

        def body() -> Any:  # requests sizes a real file itself; an empty one must be b"" (not chunked)
            if size <= SMALL_BODY:  # sent with the headers in one write: no Nagle/delayed-ACK stall
                with open(lpath, "rb") as small:
                    return small.read()
            return open(lpath, "rb")  # closed by the session

        headers = {"If-Match": if_match} if if_match else {}
        return self._put(rpath, body, size, headers=headers, exclusive=exclusive)

    def put_bytes(self, path: str, value: bytes, exclusive: bool = False) -> dict[str, Any] | None:
        """``put_file`` of bytes in memory."""
        return self._put(path, lambda: value, len(value), exclusive=exclusive)

    def _put(self, path: str, body: Callable[[], Any], size: int, headers: dict[str, str] | None = None,
             params: dict[str, str] | None = None, exclusive: bool = False) -> dict[str, Any] | None:
        """One replayable PUT; a missing parent folder is created first when ``auto_mkdir`` is on.

        ``exclusive``: create only, FileExistsError if anything is at ``path``. With the exclusive-create
        extension one ``If-None-Match: *`` PUT, race-free, never replayed (a replay could not tell its own
        first attempt from another writer's file: a lost answer is EIO); without it a HEAD first, racy.
        """
        parts = _parts(path)
        all_headers = {"Content-Type": "application/octet-stream", **(headers or {})}
        replay = True
        if exclusive:
            if self.supports(EXCLUSIVE_CREATE, path):
                all_headers["If-None-Match"] = "*"
                replay = False
            elif self.exists(path):
                raise FileExistsError(errno.EEXIST, f"{api_paths.data_uri(parts)}: file exists")
        try:
            response = self._call("PUT", parts, body=body, headers=all_headers, params=params, retry=replay)
        except FileNotFoundError:
            if not self.auto_mkdir or (params and params.get("offset") not in (None, "0")) \
                    or not self.make_parents(path):
                raise
            response = self._call("PUT", parts, body=body, headers=all_headers, params=params, retry=replay)
        response.close()
        return stored_info(api_paths.join_path(parts), response, size)

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

    # -- folders, deletes -------------------------------------------------------------------------

    def mkdir(self, path: str, create_parents: bool = True, mode: int | None = None) -> None:
        """Create a folder (a collection directly under ``data/<user>``); FileExistsError if it exists.

        Replayed on transient errors; "already exists" after a replay is the first attempt's success.
        ``mode``: its permission bits (posix extension; a server without it ignores the field).
        """
        parts = _parts(path)
        if len(parts) < 2:
            raise PermissionError(errno.EACCES, f"{path}: can't create a directory here")
        parent = api_paths.api_path(parts[:-1])
        body: dict[str, Any] = {"name": parts[-1]}
        if mode is not None:
            body["mode"] = mode & 0o7777
        try:
            response = self._call("POST", parts, url=parent if parent.endswith("/") else parent + "/",
                                  json_body=body, retry=True)
        except FileExistsError as exc:
            if getattr(exc, "retried", False):
                return
            raise
        except FileNotFoundError:
            if not create_parents or not self.make_parents(path):
                raise
            self.mkdir(path, create_parents=False, mode=mode)
            return
        response.close()

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        parts = _parts(path)
        start = 3 if parts and parts[0] == "data" else 2
        for depth in range(start, len(parts) + 1):
            try:
                self.mkdir(api_paths.join_path(parts[:depth]), create_parents=False)
            except FileExistsError:
                if depth == len(parts) and not exist_ok:
                    raise

    def make_parents(self, path: str) -> bool:
        """Create the missing folders above ``path``; False when there is nothing that could be made."""
        parts = _parts(path)
        parent = parts[:-1]
        if len(parent) < (3 if parts[0] == "data" else 2):
            return False
        try:
            self.makedirs(api_paths.join_path(parent), exist_ok=True)
        except (FileNotFoundError, PermissionError):
            return False
        return True

    def delete(self, path: str, recursive: bool = False) -> None:
        """One DELETE (of a file, an empty folder, or with ``recursive`` a whole folder), replayed on
        transient errors; "not found" after a replay is the first attempt's success."""
        try:
            response = self._call("DELETE", _parts(path), params={"force": "true"} if recursive else None,
                                  retry=True)
        except FileNotFoundError as exc:
            if getattr(exc, "retried", False):
                return
            raise
        response.close()

    # -- server-side operations (extensions) ------------------------------------------------------

    def move(self, path1: str, path2: str, overwrite: bool = True) -> dict[str, Any]:
        """Server-side move of a file or a whole directory (atomic within one storage).

        Raises NotSupported without the extension, OSError(EXDEV) across storages. A replayed move that
        finds its source gone and its destination present was the first attempt's success.
        """
        src, dst = _parts(path1), _parts(path2)
        if not self.supports("move", path1):
            raise NotSupported(f"{path1}: the server has no move")
        try:
            body = {"from": api_paths.data_uri(src), "to": api_paths.data_uri(dst), "overwrite": overwrite}
            info = self._extension_call("move", body, api_paths.data_uri(src))
        except FileNotFoundError as exc:
            if getattr(exc, "retried", False) and self.exists(path2) and not self.exists(path1):
                return self.info(path2)
            raise
        info["name"] = api_paths.join_path(dst)
        return info

    def copy(self, path1: str, path2: str) -> None:
        """Server-side copy of one file within one storage (replacing ``path2``); missing folders above
        ``path2`` are made when ``auto_mkdir`` is on. NotSupported where the storage can't."""
        if not (self.supports("copy", path1) and _parts(path1)[:1] == _parts(path2)[:1]):
            raise NotSupported(f"{path1}: the server can't copy to {path2}")
        source = api_paths.data_uri(_parts(path1))
        body = {"from": source, "to": api_paths.data_uri(_parts(path2)), "overwrite": True}
        try:
            self._extension_call("copy", body, source)
        except FileNotFoundError:
            if not self.auto_mkdir or not self.make_parents(path2):
                raise
            self._extension_call("copy", body, source)

    def set_mtime(self, path: str, mtime: float) -> dict[str, Any]:
        """Set a file's or folder's modification time on the server (set-mtime extension)."""
        parts = _parts(path)
        if not self.supports("set-mtime", path):
            raise NotSupported(f"{path}: the server can't set mtimes")
        info = self._extension_call("utime", {"path": api_paths.data_uri(parts), "mtime": float(mtime)},
                                    api_paths.data_uri(parts))
        info["name"] = api_paths.join_path(parts)
        return info

    def create_empty(self, path: str, mode: int, exclusive: bool = False) -> dict[str, Any] | None:
        """Create an empty file with permission bits ``mode`` (posix extension; kept only when this PUT
        creates the file). ``exclusive``: only if nothing exists at ``path``, atomically on the server
        (exclusive-create extension, ``If-None-Match: *``), else FileExistsError. Replayed on transient
        errors like every PUT; a replay that finds an empty file can't tell its own first attempt from
        another writer's and takes it as its own (the one window of the race, after a fault only)."""
        parts = _parts(path)
        headers = {"Content-Type": "application/octet-stream", "X-Algofs-Mode": f"{mode & 0o7777:o}"}
        if exclusive:
            if not self.supports("exclusive-create", path):
                raise NotSupported(f"{path}: the server has no exclusive create")
            headers["If-None-Match"] = "*"
        try:
            response = self._call("PUT", parts, body=lambda: b"", headers=headers, retry=True)
        except (PreconditionFailed, FileExistsError) as exc:
            if getattr(exc, "retried", False):
                info = self.head(path)
                if info["type"] == "file" and info["size"] == 0:
                    return info
            raise FileExistsError(errno.EEXIST, f"{api_paths.data_uri(parts)}: exists") from exc
        response.close()
        return stored_info(api_paths.join_path(parts), response, 0)

    def setattr(self, path: str, *, mode: int | None = None, uid: int | None | bool = False,
                gid: int | None | bool = False, mtime_ns: int | None = None,
                atime_ns: int | None = None) -> dict[str, Any]:
        """Change mode bits (0..0o7777), owner (an int, or None = unknown; ``False`` = leave) and times of
        a file, folder or symlink, never following one (posix extension). The info with its ``posix``."""
        parts = _parts(path)
        if not self.supports("posix", path):
            raise NotSupported(f"{path}: the server keeps no POSIX metadata")
        body: dict[str, Any] = {"path": api_paths.data_uri(parts)}
        if mode is not None:
            body["mode"] = mode & 0o7777
        if uid is not False:
            body["uid"] = uid
        if gid is not False:
            body["gid"] = gid
        if mtime_ns is not None:
            body["mtime_ns"] = int(mtime_ns)
        if atime_ns is not None:
            body["atime_ns"] = int(atime_ns)
        info = self._extension_call("setattr", body, api_paths.data_uri(parts))
        info["name"] = api_paths.join_path(parts)
        return info

    def symlink(self, path: str, target: str) -> dict[str, Any]:
        """Create a symlink at ``path`` pointing to ``target`` (stored, never followed by the server);
        FileExistsError when the name exists (posix extension)."""
        parts = _parts(path)
        if not self.supports("posix", path):
            raise NotSupported(f"{path}: the server has no symlinks")
        body = {"path": api_paths.data_uri(parts), "target": target}
        try:
            info = self._extension_call("symlink", body, api_paths.data_uri(parts))
        except FileExistsError as exc:
            if getattr(exc, "retried", False) and self.readlink(path) == target:
                return self.head(path)  # our own first attempt
            raise
        info["name"] = api_paths.join_path(parts)
        return info

    def readlink(self, path: str) -> str:
        """A symlink's target (the ``X-Algofs-Link-Target`` of a HEAD); EINVAL when ``path`` is none."""
        posix = self.head(path).get("posix")
        if not isinstance(posix, Posix) or not posix.is_link or posix.target is None:
            raise OSError(errno.EINVAL, f"{path}: not a symlink")
        return posix.target

    def close(self) -> None:
        self.session.close()
