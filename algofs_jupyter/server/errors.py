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


def _storage_statuses() -> dict[type, int]:
    from . import storage as s

    return {
        s.NotFound: 404, s.AlreadyExists: 409, s.NotADirectory: 400, s.IsADirectory: 409,
        s.DirectoryNotEmpty: 400, s.NameTooLong: 400, s.InvalidOperation: 400, s.OffsetBeyondEnd: 416,
        s.Unsatisfiable: 416,
        s.PreconditionFailed: 412, s.OutsideRoot: 403, s.CrossBackend: 400, s.Unsupported: 501,
        s.QuotaExceeded: 403,  # a 4xx: the caller's request is refused, the server is fine (not 507)
    }


def api_error_for(exc: Exception) -> ApiError:
    """The one place a storage backend's error becomes an HTTP status (docs/api-extensions.md §Errors).

    The body carries ``errno`` (``ENOENT``, ``ENAMETOOLONG``, ``EXDEV`` …) so a file system client maps
    it without parsing messages, plus the error's details (e.g. the current ``size`` and ``etag`` on 412).
    """
    from .storage import StorageError

    assert isinstance(exc, StorageError)
    status = next((code for kind, code in _storage_statuses().items() if isinstance(exc, kind)), 500)
    extra: dict[str, object] = {"errno": exc.errno, **exc.details}
    if exc.errno == "ENOTEMPTY":
        extra.setdefault("deleted", 0)
    error = ApiError(status, exc.message)
    error.extra = extra
    return error
