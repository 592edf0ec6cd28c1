"""The server's log: access lines with bounded URIs, written to a size-bounded rotating file.

One request with a 60 KB URI must not add 60 KB to the log, and a long-running server must not fill the
disk: URIs are cut to ``MAX_LOGGED_URI`` characters and ``--log-file`` rotates at ``--log-max-bytes``.
Every log file and its rotated backups are 0600 whatever the umask: they record users' paths (issue 22).
"""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

from tornado.web import RequestHandler

from ..private_dirs import make_file_private, make_private_dirs, private_file_opener

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


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A ``RotatingFileHandler`` whose files are 0600: the current one is created 0600 (never through a link
    at its name); backups are renamed from it, so they keep that mode. Files an older version left with
    another mode are set to 0600 when the handler starts."""

    def __init__(self, filename: Path, max_bytes: int, backups: int):
        for path in [str(filename), *(f"{filename}.{n}" for n in range(1, backups + 1))]:
            make_file_private(path)
        super().__init__(filename, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")

    def _open(self):  # the stdlib's own signature
        return open(self.baseFilename, self.mode, encoding=self.encoding, errors=self.errors,
                    opener=private_file_opener)


def configure_logging(level: str, log_file: Path | None, max_bytes: int = DEFAULT_LOG_MAX_BYTES) -> None:
    """Log to stderr, or to ``log_file`` rotated at ``max_bytes``, keeping ``LOG_BACKUPS`` old files."""
    if log_file is None:
        handler: logging.Handler = logging.StreamHandler()
    else:
        make_private_dirs(log_file.parent, check_existing=False)  # /var/log/…: used as the operator made it
        handler = PrivateRotatingFileHandler(log_file, max_bytes, LOG_BACKUPS)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
