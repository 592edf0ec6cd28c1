"""A download's body straight from a local file to the response's socket with ``sendfile(2)``.

Why: on a 2-core machine the server and the mount share the CPU of a cold sequential read, and the
server's ``read`` + ``send`` of each 1 MiB chunk (two copies through Python, the event loop woken per
chunk) took ~0.6 core-s per GiB (perf, issue 26). With ``sendfile`` the kernel hands page-cache pages
to the socket: no copy through user space.

When: plain HTTP (not TLS), a body of at least ``SENDFILE_MIN`` bytes whose length the response's
``Content-Length`` announced, on the event loop (local storage). Anything else is sent as chunks by
the caller. ``tornado`` counts the body bytes its ``write`` sends against ``Content-Length``; the bytes
sent here are counted into the same tally, so ``finish`` still checks the length and a short body
(a file cut while it was sent) still closes the connection.
"""

from __future__ import annotations

import asyncio
import logging

from tornado.http1connection import HTTP1Connection
from tornado.iostream import SSLIOStream, StreamClosedError
from tornado.web import RequestHandler

from .storage.local_files import FileSpan

log = logging.getLogger(__name__)

#: Smaller bodies go as one or two chunks, where the set-up of a sendfile loop buys nothing.
SENDFILE_MIN = 256 << 10
#: tornado's HTTP/1 connection's count of the body bytes still owed (tested: tests/server/test_send_file.py).
_REMAINING = "_expected_content_remaining"


def _connection_owing(handler: RequestHandler, length: int) -> HTTP1Connection | None:
    """The HTTP/1 connection if it still owes exactly ``length`` body bytes on a plain socket."""
    connection = handler.request.connection
    if not isinstance(connection, HTTP1Connection) or isinstance(connection.stream, SSLIOStream):
        return None
    if getattr(connection, _REMAINING, None) != length:
        return None
    return connection


async def send(handler: RequestHandler, span: FileSpan) -> bool:
    """Send ``span`` as the rest of the body with ``sendfile``, after the headers; False (nothing sent,
    the caller sends chunks) where it does not apply. Raises StreamClosedError when the client goes."""
    length = span.remaining
    if length < SENDFILE_MIN or span.fd < 0:
        return False
    await handler.flush()  # the headers: the connection's tally is set from Content-Length here
    connection = _connection_owing(handler, length)
    if connection is None:
        return False
    stream = connection.stream
    loop = asyncio.get_running_loop()
    with open(span.fd, "rb", buffering=0, closefd=False) as file:
        try:
            sent = await loop.sock_sendfile(stream.socket, file, span.offset, length, fallback=False)
        except asyncio.SendfileNotAvailableError:
            return False  # raised only before a byte is sent
        except OSError as exc:  # the headers are out: all that is left is to close
            if not isinstance(exc, ConnectionError):
                log.warning("%s: sendfile failed: %s", handler.request.path, exc)
            stream.close()
            raise StreamClosedError(real_error=exc) from exc
    span.advance(sent)
    setattr(connection, _REMAINING, getattr(connection, _REMAINING) - sent)
    if sent < length:  # the file was cut shorter under us: finish() closes the connection
        log.info("%s: file shorter than announced (%d of %d bytes sent)", handler.request.path, sent,
                 length)
    return True
