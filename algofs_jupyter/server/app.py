"""Assembling and running the tornado application behind ``algofs serve``."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
from pathlib import Path

from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import Application, RequestHandler

from .algo_handlers import AlgoCallHandler, AlgorithmListHandler
from .algorithms import AlgorithmStore
from .base import HealthHandler, NotFoundHandler
from .connectors import load_connectors
from .data_handlers import DataHandler
from .executor import AlgorithmExecutor
from .extension_handlers import CapabilitiesHandler, CopyHandler, MoveHandler, UtimeHandler
from .namespace import Namespace, hosted_data_backend
from .users import UserRegistry

log = logging.getLogger("algofs.serve")
access_log = logging.getLogger("algofs.serve.access")
#: Bodies of non-streaming requests are capped; uploads raise their own limit per request.
MAX_BUFFERED_BODY = 16 * 1024 * 1024


def log_request(handler: RequestHandler) -> None:
    """Access log: method, path, status, time and user. Never headers, so never a key."""
    request = handler.request
    user = getattr(getattr(handler, "identity", None), "username", "-")
    access_log.info("%d %s %s %s %.1fms", handler.get_status(), request.method, request.uri, user,
                    1000.0 * request.request_time())


def make_app(root: Path, users: dict[str, str]) -> Application:
    root.mkdir(parents=True, exist_ok=True)
    connectors = load_connectors(root, default_owner=next(iter(users)) if len(users) == 1 else None)
    shared = sorted(cid for cid, c in connectors.items() if c.owner is None)
    if shared and len(users) > 1:
        log.warning("connectors without an owner (%s): every user may replace and delete their data; "
                    "set \"owner\" in %s (docs/server.md)", ", ".join(shared), root / "connectors.json")
    namespace = Namespace(hosted_data_backend(root), connectors, sorted(users))
    removed = sum(backend.sweep() for backend in namespace.backends().values())
    if removed:
        log.info("removed %d partial uploads left by an earlier run", removed)
    routes = [
        (r"/healthz", HealthHandler),
        (r"/v1/data(?:/.*)?", DataHandler, {"prefix": "/v1/data/"}),
        (r"/v1/connector/.*", DataHandler, {"prefix": "/v1/connector/"}),
        (r"/v1/algofs/capabilities", CapabilitiesHandler),
        (r"/v1/algofs/move", MoveHandler),
        (r"/v1/algofs/copy", CopyHandler),
        (r"/v1/algofs/utime", UtimeHandler),
        (r"/v1/algo/.*", AlgoCallHandler),
        (r"/v1/algorithms/(\w+)/?", AlgorithmListHandler),
        (r"/v1/algorithms/(\w+)/([\w.-]+)/?", AlgorithmListHandler),
    ]
    return Application(
        routes,
        default_handler_class=NotFoundHandler,
        log_function=log_request,
        users=UserRegistry(users),
        namespace=namespace,
        algorithms=AlgorithmStore(root),
        executor=AlgorithmExecutor(),
    )


async def serve_forever(root: Path, users: dict[str, str], host: str, port: int,
                        ready_file: Path | None = None) -> None:
    app = make_app(root, users)
    sockets = bind_sockets(port, address=host)
    server = HTTPServer(app, max_body_size=MAX_BUFFERED_BODY, idle_connection_timeout=300)
    server.add_sockets(sockets)
    actual_port = sockets[0].getsockname()[1]
    url = f"http://{host if ':' not in host else f'[{host}]'}:{actual_port}"
    app.settings["executor"].api_address = url
    log.info("algofs serve: listening on %s (root %s, users: %s)", url, root, ", ".join(sorted(users)))
    if ready_file is not None:
        tmp = ready_file.with_name(ready_file.name + ".tmp")
        tmp.write_text(json.dumps({"url": url, "port": actual_port, "pid": os.getpid()}))
        os.replace(tmp, ready_file)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("algofs serve: shutting down")
        server.stop()
        app.settings["executor"].kill_all()
        await asyncio.wait_for(server.close_all_connections(), 5)
        if ready_file is not None:
            ready_file.unlink(missing_ok=True)
