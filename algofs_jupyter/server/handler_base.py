"""Behaviour shared by every API handler: authentication, JSON bodies, JSON errors."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from tornado.ioloop import IOLoop
from tornado.web import HTTPError, RequestHandler

from .access_log import bounded_uri
from .errors import ApiError, api_error_for, bad_request
from .storage import StorageError
from .users import Identity, UserRegistry

storage_log = logging.getLogger("algofs.serve.storage")

T = TypeVar("T")


def header_safe(text: str) -> str:
    """A header value tornado accepts: printable ASCII, non-ASCII escaped, no line breaks."""
    text = text.replace("\r", " ").replace("\n", " ")
    return text.encode("ascii", "backslashreplace").decode("ascii")[:500]


def parse_json_object(raw: bytes) -> dict:
    """A request body that must be a JSON object; anything else (including nesting so deep the parser
    gives up) is a 400."""
    try:
        body = json.loads(raw or b"null")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad_request(f"malformed JSON body: {exc}") from exc
    except RecursionError as exc:
        raise bad_request("malformed JSON body: nested too deeply") from exc
    if not isinstance(body, dict):
        raise bad_request("expected a JSON object")
    return body


class ApiHandler(RequestHandler):
    """Base handler: every error, including tornado's own (405, 404 …), has a JSON body."""

    requires_auth = True
    identity: Identity

    @property
    def users(self) -> UserRegistry:
        return self.application.settings["users"]

    def authenticate(self) -> None:
        identity = self.users.authenticate(self.request.headers.get("Authorization"))
        if identity is None:
            if self.request.headers.get("Authorization"):
                raise ApiError(401, "Unknown or invalid API key", code=2002)
            raise ApiError(401, "authorization required", code=2001)
        self.identity = identity

    def prepare(self) -> None:
        if self.requires_auth:
            self.authenticate()

    deferred_error: ApiError | None = None

    def has_request_body(self) -> bool:
        headers = self.request.headers
        return headers.get("Content-Length", "0") not in ("", "0") or "Transfer-Encoding" in headers

    def defer_if_body_follows(self, error: ApiError, always: bool = False) -> None:
        """Answer ``error`` only after the request body was read (and discarded), else raise it now.

        Answering while a body is still arriving makes tornado close the connection with unread data,
        which the kernel turns into a reset that can reach the client before our JSON error does.
        The handler method is swapped for one that raises the error once the body is drained.
        ``always``: for streaming handlers, where even an empty body counts as unread until prepare()
        returned; answering from prepare() closes the keep-alive connection, and the client's next
        request on it meets a reset.
        """
        if not always and not self.has_request_body():
            raise error
        self.deferred_error = error

        def raise_deferred(*_args: object, **_kwargs: object) -> None:
            raise error

        setattr(self, self.request.method.lower(), raise_deferred)

    def _handle_request_exception(self, e: BaseException) -> None:
        """A storage backend's error becomes its HTTP error (``errors.api_error_for``), not a 500."""
        if isinstance(e, StorageError):
            try:
                raise api_error_for(e) from e
            except ApiError as translated:
                if translated.status_code >= 500:  # the storage failed, not the request: say why, once
                    storage_log.error("%s %s: %s", self.request.method, bounded_uri(self.request.uri), e,
                                      exc_info=e.__cause__ or e)
                super()._handle_request_exception(translated)
                return
        super()._handle_request_exception(e)

    async def offload(self, function: Callable[..., T], *args: Any) -> T:
        """Run a storage call off the event loop when the storage blocks on the network (S3), inline
        otherwise (local disk: a thread hop per call would only add latency)."""
        threads = self.application.settings.get("storage_threads")
        if threads is None:
            return function(*args)
        return await IOLoop.current().run_in_executor(threads, function, *args)

    def compute_etag(self) -> str | None:
        return None  # file handlers set their own cheap ETag; JSON bodies need none

    def write_json(self, body: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        extra: dict = {}
        if isinstance(exc, ApiError):
            message, extra = exc.message, exc.extra
            for name, value in exc.headers.items():
                self.set_header(name, value)
        elif isinstance(exc, HTTPError):
            message = exc.log_message % exc.args if exc.log_message else self._reason
        else:
            message = "internal server error"
        self.set_header("X-Error-Message", header_safe(message))
        self.set_header("Content-Type", "application/json")
        if self.request.method == "HEAD":
            self.finish()
        else:
            self.finish(json.dumps({"error": {"message": message, **extra}}))


class NotFoundHandler(ApiHandler):
    """Unknown routes: 404 with a JSON body (before authentication, like the hosted API)."""

    requires_auth = False

    def prepare(self) -> None:
        raise ApiError(404, f"no API endpoint at {self.request.path}")


class HealthHandler(ApiHandler):
    """``GET /healthz``: unauthenticated readiness probe (extension). ``warnings``: what the server said
    at start that its operator must act on (the application setting of that name), when there is any;
    ``details.algorithms``: what isolates algorithms here and whether they run at all (``algo_box.py``)."""

    requires_auth = False

    def get(self) -> None:
        warnings = self.application.settings.get("warnings")
        box = self.application.settings.get("algorithm_box")
        details = {"algorithms": box.report()} if box is not None else {}
        self.write_json({"status": "ok", **({"warnings": list(warnings)} if warnings else {}),
                         **({"details": details} if details else {})})

    head = get
