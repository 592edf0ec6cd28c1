"""Assembling and running the tornado application behind ``algofs serve``."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import signal
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tornado.httpserver import HTTPServer
from tornado.httputil import HTTPServerRequest
from tornado.netutil import bind_sockets
from tornado.web import Application

from ..parent_watch import watch_parent
from .access_log import log_request
from .algo_handlers import AlgoCallHandler
from .algo_lifecycle_handlers import ROUTES as LIFECYCLE_ROUTES
from .algo_manage_handlers import ROUTES as ALGORITHM_ROUTES
from .algo_services import AlgorithmOptions, algorithm_settings
from .call_scope import sweep_scratches
from .connectors import load_connectors, read_only_warning
from .data_handlers import DataHandler
from .extension_handlers import (
    CapabilitiesHandler,
    CopyHandler,
    MoveHandler,
    QuotaHandler,
    SetattrHandler,
    SymlinkHandler,
    UtimeHandler,
)
from .handler_base import HealthHandler, NotFoundHandler
from .hosts import ForbiddenHostHandler, HostAllowList
from .local_reads import LocalReads
from .namespace import Namespace
from .org_handlers import ROUTES as ORGANIZATION_ROUTES
from .organizations import OrganizationStore
from .quota import QuotaTable, quota_warning
from .quota_backend import QuotaBackend
from .read_many import ReadManyHandler
from .storage.select import StorageConfig, hosted_storage
from .users import UserRegistry, multi_user_server

log = logging.getLogger("algofs.serve")
#: Bodies of non-streaming requests are capped; uploads raise their own limit per request.
MAX_BUFFERED_BODY = 16 * 1024 * 1024
#: On storage several servers may share (S3), a data://.session folder this old outlived its call tree
#: (a call lasts at most MAX_TIMEOUT, 50 minutes): swept at start.
SHARED_SCRATCH_AGE = 2 * 3600
#: In the root: the organizations the admin API made, and the users it made (with their keys); both 0600.
ORGANIZATIONS = "organizations.json"
CREATED_USERS = "users-created.json"


class ApiApplication(Application):
    """The routes, behind the Host allow-list: any other Host gets the 403 handler, whatever the path."""

    def find_handler(self, request: HTTPServerRequest, **kwargs: object):
        if not self.settings["allowed_hosts"].allows(request.headers.get("Host")):
            return self.get_handler_delegate(request, ForbiddenHostHandler)
        return super().find_handler(request, **kwargs)


def make_app(root: Path, users: dict[str, str], users_file: Path | None = None,
             allowed_hosts: HostAllowList | None = None,
             algorithm_options: AlgorithmOptions | None = None,
             storage: StorageConfig | None = None, quotas: QuotaTable | None = None,
             admins: frozenset[str] = frozenset(), organizations_file: Path | None = None) -> Application:
    root.mkdir(parents=True, exist_ok=True)
    connectors = load_connectors(root, default_owner=next(iter(users)) if len(users) == 1 else None,
                                 multi_user=multi_user_server(users, users_file))
    warnings: list[str] = []  # what an operator must hear at start: logged, and listed by /healthz
    if (warning := read_only_warning(connectors)) is not None:
        log.warning("%s [%s]", warning, root / "connectors.json")
        warnings.append(warning)
    data = QuotaBackend(hosted_storage(root, storage or StorageConfig()), quotas or QuotaTable())
    if (warning := quota_warning(data.book.table, multi_user_server(users, users_file))) is not None:
        log.warning("%s", warning)
        warnings.append(warning)
    namespace = Namespace(data, connectors, sorted(users))
    registry = UserRegistry(users, users_file, on_new_users=namespace.add_users, admins=admins,
                            created_file=root / CREATED_USERS)
    namespace.add_users(registry.usernames)  # the users the admin API made have folders too
    organizations = OrganizationStore(root / ORGANIZATIONS, organizations_file, registry.is_user,
                                      on_new=namespace.add_folders)
    namespace.organizations = organizations
    data.book.count_in_background(namespace.known_users())  # so first writes under a quota need no count
    removed = sum(backend.sweep() for backend in namespace.backends().values())
    if removed:
        log.info("removed %d partial uploads left by an earlier run", removed)
    # data://.session of calls a stopped server left; storage other servers may share: only old ones
    shared_storage = namespace.data.blocking
    if swept := sweep_scratches(namespace.data, older_than=SHARED_SCRATCH_AGE if shared_storage else 0):
        log.info("removed %d data://.session folders left by an earlier run", swept)
    routes = [
        (r"/healthz", HealthHandler),
        (r"/v1/data(?:/.*)?", DataHandler, {"prefix": "/v1/data/"}),
        (r"/v1/connector/.*", DataHandler, {"prefix": "/v1/connector/"}),
        (r"/v1/algofs/capabilities", CapabilitiesHandler),
        (r"/v1/algofs/move", MoveHandler),
        (r"/v1/algofs/copy", CopyHandler),
        (r"/v1/algofs/utime", UtimeHandler),
        (r"/v1/algofs/setattr", SetattrHandler),
        (r"/v1/algofs/symlink", SymlinkHandler),
        (r"/v1/algofs/quota", QuotaHandler),
        (r"/v1/algofs/read-many", ReadManyHandler),
        (r"/v1/algo/.*", AlgoCallHandler),
        *LIFECYCLE_ROUTES,
        *ALGORITHM_ROUTES,
        *ORGANIZATION_ROUTES,
    ]
    app = ApiApplication(
        routes,
        default_handler_class=NotFoundHandler,
        log_function=log_request,
        allowed_hosts=allowed_hosts or HostAllowList("127.0.0.1"),
        users=registry,
        namespace=namespace,
        organizations=organizations,
        quotas=data.book,
        warnings=warnings,
        **algorithm_settings(root, algorithm_options),
        # network storage (S3) blocks: its calls run on these threads, never on the event loop
        storage_threads=ThreadPoolExecutor(32, thread_name_prefix="storage") if any(
            getattr(b, "blocking", False) for b in namespace.backends().values()) else None,
    )
    app.settings["algorithms"].org_role = organizations.role  # members manage and call <org>/<algo>
    return app


#: How long a thread holding the GIL (a listing, an S3 transfer) keeps the event loop waiting for it after
#: each of the loop's system calls; Python's 5 ms default made requests wait behind a listing thread.
SWITCH_INTERVAL = 0.001


async def serve_forever(root: Path, users: dict[str, str], host: str, port: int,
                        ready_file: Path | None = None, users_file: Path | None = None,
                        allowed_hosts: list[str] | tuple[str, ...] = (),
                        algorithm_options: AlgorithmOptions | None = None,
                        storage: StorageConfig | None = None, quotas: QuotaTable | None = None,
                        admins: frozenset[str] = frozenset(), organizations_file: Path | None = None) -> None:
    app = make_app(root, users, users_file, HostAllowList(host, allowed_hosts), algorithm_options, storage,
                   quotas, admins, organizations_file)
    sockets = bind_sockets(port, address=host)
    server = HTTPServer(app, max_body_size=MAX_BUFFERED_BODY, idle_connection_timeout=300)
    server.add_sockets(sockets)
    box = app.settings["algorithm_box"]
    server.add_socket(box.bind_api_socket())  # what algorithms in their box reach the API through
    local_reads = LocalReads(app.settings["users"], app.settings["namespace"],
                             app.settings.get("storage_threads"))
    local_reads.start()  # a mount on this machine reads files by descriptor (docs/api-extensions.md §13)
    app.settings["local_reads"] = local_reads
    actual_port = sockets[0].getsockname()[1]
    url = f"http://{host if ':' not in host else f'[{host}]'}:{actual_port}"
    app.settings["executor"].api_address = url
    app.settings["registry"].api_address = url
    where = f"root {root}" + (f", storage {storage.url}" if storage and storage.url else "")
    log.info("algofs serve: listening on %s (%s, users: %s)", url, where, ", ".join(sorted(users)))
    # What start-up made (modules, the app) lives as long as the server: out of the collector's sight, a
    # full collection no longer walks it. Measured: 28 ms per gen-2 pass on the event loop under load.
    gc.collect()
    gc.freeze()
    sys.setswitchinterval(SWITCH_INTERVAL)
    if ready_file is not None:
        tmp = ready_file.with_name(ready_file.name + ".tmp")
        tmp.write_text(json.dumps({"url": url, "port": actual_port, "pid": os.getpid()}))
        os.replace(tmp, ready_file)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    watch_parent()  # started by EmbeddedServer: stop (SIGTERM) once that process is gone
    try:
        await stop.wait()
    finally:
        log.info("algofs serve: shutting down")
        server.stop()
        await local_reads.close()
        await app.settings["executor"].close()
        await asyncio.to_thread(box.close)
        await asyncio.wait_for(server.close_all_connections(), 5)
        if ready_file is not None:
            ready_file.unlink(missing_ok=True)
