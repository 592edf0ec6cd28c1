"""The server's log: access lines with bounded URIs, written to a size-bounded rotating file.

One request with a 60 KB URI must not add 60 KB to the log, and a long-running server must not fill the
disk: URIs are cut to ``MAX_LOGGED_URI`` characters and ``--log-file`` rotates at ``--log-max-bytes``.
"""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

from tornado.web import RequestHandler

access_log = logging.getLogger("algofs.serve.access")
MAX_LOGGED_URI = 256
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
DEFAULT_LOG_MAX_BYTES = 10 * 1024 * 1024
LOG_BACKUPS = 3


def bounded_uri(uri: str, limit: int = MAX_LOGGED_URI) -> str:
    if len(uri) <= limit:
        return uri
    return f"{uri[:limit]}...[{len(uri)} chars]"


def log_request(handler: RequestHandler) -> None:
    """Access log: method, path, status, time and user. Never headers, so never a key."""
    request = handler.request
    user = getattr(getattr(handler, "identity", None), "username", "-")
    access_log.info("%d %s %s %s %.1fms", handler.get_status(), request.method, bounded_uri(request.uri),
                    user, 1000.0 * request.request_time())


def configure_logging(level: str, log_file: Path | None, max_bytes: int = DEFAULT_LOG_MAX_BYTES) -> None:
    """Log to stderr, or to ``log_file`` rotated at ``max_bytes``, keeping ``LOG_BACKUPS`` old files."""
    if log_file is None:
        handler: logging.Handler = logging.StreamHandler()
    else:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(log_file, maxBytes=max_bytes, backupCount=LOG_BACKUPS,
                                                       encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
