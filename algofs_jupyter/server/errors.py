"""The one exception type handlers raise; turned into a JSON error body (and X-Error-Message)."""

from __future__ import annotations

from tornado.web import HTTPError


class ApiError(HTTPError):
    """An HTTP error answered with ``{"error": {"message": ..., **extra}}`` and an X-Error-Message header.

    ``headers`` survive tornado's ``send_error`` (which clears the response) and are set on the error
    response, e.g. ``Content-Range`` on a 416.
    """

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None, **extra: object):
        super().__init__(status)  # no log_message: expected client errors are not logged as warnings
        self.message = message
        self.headers = headers or {}
        self.extra = extra

    def __str__(self) -> str:
        return f"HTTP {self.status_code}: {self.message}"


def not_found(what: str = "path not found") -> ApiError:
    return ApiError(404, what)


def forbidden(message: str = "permission denied") -> ApiError:
    return ApiError(403, message, code=2001)


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)
