"""``/v1/algofs/*``: server-side operations the hosted API lacked (docs/api-extensions.md).

Clients discover them with ``GET /v1/algofs/capabilities`` and fall back to plain Data API calls
(download + upload, whole-file PUT) against a server that answers 404 there. Operations name their
objects by data URI (``data://.my/coll/x``, ``s3://bucket/key``), as the official client does.
"""

from __future__ import annotations

from collections.abc import Callable

from tornado.ioloop import IOLoop

from . import http_files, posix_wire
from .errors import ApiError, bad_request
from .handler_base import ApiHandler, parse_json_object
from .namespace import Namespace, Target
from .paths import BadPath, parse_data_path
from .quota import QUOTA
from .storage import (
    COPY,
    EXCLUSIVE_CREATE,
    FOLDER_MTIME,
    KEEP,
    LOCAL_READS,
    MOVE,
    NAME_MAX,
    PATH_MAX,
    POSIX,
    SET_MTIME,
    WRITE_AT_OFFSET,
    AttrChange,
    CrossBackend,
    EntryInfo,
    InvalidOperation,
    NotFound,
    check_key,
)

#: ``POST /v1/algofs/read-many`` (read_many.py)
READ_MANY = "read-many"
#: extension name -> version; bump a version when its wire format changes incompatibly
EXTENSIONS = {WRITE_AT_OFFSET: 1, MOVE: 1, COPY: 1, SET_MTIME: 1, FOLDER_MTIME: 1, "errno": 1, QUOTA: 1,
              "whoami": 1, POSIX: 1, EXCLUSIVE_CREATE: 1, READ_MANY: 1, LOCAL_READS: 1}
#: Extensions every backend has: they only use a backend's required operations.
EVERY_BACKEND = frozenset({"errno", READ_MANY})
API_VERSION = 1


class ExtensionHandler(ApiHandler):
    @property
    def namespace(self) -> Namespace:
        return self.application.settings["namespace"]

    def body(self) -> dict:
        return parse_json_object(self.request.body)

    def target_of(self, body: dict, field: str) -> Target:
        uri = body.get(field)
        if not isinstance(uri, str) or "://" not in uri:
            raise bad_request(f"{field!r} must be a data URI such as data://.my/collection/file")
        try:  # a URI in a JSON body is not percent-encoded: '%' is an ordinary character there
            address = parse_data_path(uri.replace("%", "%25"))
        except BadPath as exc:
            raise bad_request(f"{field}: {exc}") from exc
        target = self.namespace.resolve(address, self.identity)
        if target.level != "path" or not target.key:
            raise ApiError(403, f"{field}: a data root, user folder or connector root can't be changed",
                           errno="EPERM")
        check_key(target.key)
        return target

    def move_or_copy_targets(self, body: dict,
                             require_source: Callable[[Target], None]) -> tuple[Target, Target, bool]:
        """``from``, ``to`` and ``overwrite`` of a move or copy, checked: one storage, the caller's rights
        (``require_source`` on the source, write on the destination, delete on what it replaces), layout."""
        source, destination = self.target_of(body, "from"), self.target_of(body, "to")
        overwrite = self.flag(body, "overwrite")
        same_backend(source, destination)
        require_source(source)
        Namespace.require_write(destination)
        Namespace.require_manage(destination)  # a collection made by a move: an org's admins only
        layout_check(source.backend.info(source.key), destination)
        if overwrite and exists(destination):
            Namespace.require_replace(destination)
        return source, destination, overwrite

    def flag(self, body: dict, field: str) -> bool:
        value = body.get(field, False)
        if not isinstance(value, bool):
            raise bad_request(f"{field!r} must be true or false")
        return value

    answered: tuple[Target, EntryInfo] | None = None

    async def post(self) -> None:
        """``run`` does the work (on a storage thread for network storage) and names the result."""
        await self.offload(self.run)
        if self.answered is not None:
            self.answer(*self.answered)

    def run(self) -> None:
        raise NotImplementedError

    def result(self, target: Target, info: EntryInfo) -> None:
        self.answered = (target, info)

    def answer(self, target: Target, info: EntryInfo) -> None:
        if info.etag:
            self.set_header("ETag", info.etag)
        self.set_header("Last-Modified", http_files.last_modified_for(info))
        kind = "directory" if info.is_dir else "file"
        self.write_json({"result": {"uri": target.address.uri(), "type": kind, "size": info.size,
                                    "last_modified": info.mtime}})


class CapabilitiesHandler(ExtensionHandler):
    """``GET /v1/algofs/capabilities``: which extensions this server and each backend support."""

    def get(self) -> None:
        local_reads = self.application.settings.get("local_reads")  # server/local_reads.py, once it listens
        offered = EXTENSIONS if local_reads is not None else {
            name: version for name, version in EXTENSIONS.items() if name != LOCAL_READS}
        backends = {name: sorted(set(backend.capabilities) & set(offered) | EVERY_BACKEND)
                    for name, backend in self.namespace.backends().items()}
        body = {"algofs": API_VERSION, "extensions": offered, "backends": backends,
                "limits": {"name_max": NAME_MAX, "path_max": PATH_MAX}}
        if local_reads is not None:
            body["local_reads"] = local_reads.advertised()
        self.write_json(body)


class QuotaHandler(ExtensionHandler):
    """``GET /v1/algofs/quota``: the caller's storage quota of the hosted data and what they use of it
    (``quota.QuotaBook.report``; the first ask counts their data)."""

    async def get(self) -> None:
        # a thread whatever the storage: the first ask may count a large folder
        report = self.application.settings["quotas"].report
        threads = self.application.settings.get("storage_threads")
        self.write_json(await IOLoop.current().run_in_executor(threads, report, self.identity.username))


def same_backend(source: Target, destination: Target) -> None:
    if source.backend is not destination.backend:
        raise CrossBackend(f"{source.backend_name}:// and {destination.backend_name}:// are different "
                           "storages: copy through the client instead")


def exists(target: Target) -> bool:
    try:
        target.backend.info(target.key)
        return True
    except NotFound:
        return False


def layout_check(source_info: EntryInfo, destination: Target) -> None:
    """Hosted data keeps files inside collections: a file can't land directly in a user folder."""
    if destination.connector is None and len(destination.key) < 3 and not source_info.is_dir:
        raise bad_request("files can only be stored inside a collection")


class MoveHandler(ExtensionHandler):
    """``POST /v1/algofs/move {"from", "to", "overwrite"}``: rename a file or a whole directory."""

    def run(self) -> None:
        source, destination, overwrite = self.move_or_copy_targets(self.body(), Namespace.require_delete)
        moved = source.backend.move(source.key, destination.key, overwrite=overwrite)
        acl = self.namespace.acl
        if source.is_collection and source.key != destination.key:
            if destination.is_collection:
                acl.move(*source.collection_id, destination.collection_id[1])
            else:
                acl.forget(*source.collection_id)
        self.result(destination, moved)


class CopyHandler(ExtensionHandler):
    """``POST /v1/algofs/copy {"from", "to", "overwrite"}``: copy a file inside one storage."""

    async def post(self) -> None:
        # a thread whatever the storage: copying a large file takes a while, and the event loop serves
        # everyone else meanwhile
        threads = self.application.settings.get("storage_threads")
        await IOLoop.current().run_in_executor(threads, self.run)
        if self.answered is not None:
            self.answer(*self.answered)

    def run(self) -> None:
        source, destination, overwrite = self.move_or_copy_targets(self.body(), Namespace.require_read)
        self.result(destination, source.backend.copy(source.key, destination.key, overwrite=overwrite))


class UtimeHandler(ExtensionHandler):
    """``POST /v1/algofs/utime {"path", "mtime"}``: set a file's or directory's modification time."""

    def run(self) -> None:
        body = self.body()
        target = self.target_of(body, "path")
        mtime = body.get("mtime")
        if isinstance(mtime, bool) or not isinstance(mtime, (int, float)) or not 0 <= mtime < 2**34:
            raise bad_request("mtime must be seconds since the epoch (a number from 0 to 2**34)")
        Namespace.require_delete(target)
        self.result(target, target.backend.set_mtime(target.key, float(mtime)))


class PosixHandler(ExtensionHandler):
    """What setattr and symlink answer: the entry's URI and its metadata."""

    def answer(self, target: Target, info: EntryInfo) -> None:
        self.write_json({"result": {"path": target.address.uri(), "posix": posix_wire.posix_of(info).wire()}})


class SetattrHandler(PosixHandler):
    """``POST /v1/algofs/setattr {"path", "mode"?, "uid"?, "gid"?, "mtime_ns"?, "atime_ns"?}``: change the
    mode bits, owner or times of a file, folder or symlink (never following it). Needs *delete*, as
    utime: it changes existing data. uid/gid are stored as given (the mount decides what its caller may)."""

    FIELDS = ("path", "mode", "uid", "gid", "mtime_ns", "atime_ns")

    def run(self) -> None:
        body = self.body()
        unknown = sorted(set(body) - set(self.FIELDS))
        if unknown:
            raise posix_wire.invalid(f"unknown fields: {', '.join(unknown)}")
        target = self.target_of(body, "path")
        try:
            change = AttrChange(body.get("mode"), body.get("uid", KEEP), body.get("gid", KEEP),
                                body.get("mtime_ns"), body.get("atime_ns"))
        except InvalidOperation as exc:
            raise posix_wire.invalid(exc.message) from exc
        Namespace.require_delete(target)
        self.result(target, target.backend.set_attributes(target.key, change))


class SymlinkHandler(PosixHandler):
    """``POST /v1/algofs/symlink {"path", "target"}``: create a symlink (an entry holding ``target``,
    never followed by the server). Needs *write*, as any create."""

    def run(self) -> None:
        body = self.body()
        target = self.target_of(body, "path")
        link = body.get("target")
        if not isinstance(link, str):
            raise posix_wire.invalid('"target" must be a string')
        Namespace.require_write(target)
        layout_check(EntryInfo(target.key[-1], False), target)
        self.result(target, target.backend.symlink(target.key, link))
