"""The HTTP session of the data-access layer: auth from the official client, bounded time, retries.

Configuration (API address, API key or bearer token, CA bundle) is resolved by ``Algorithmia.client`` so
``ALGORITHMIA_API``/``ALGORITHMIA_API_KEY`` behave exactly as for the official client. Requests go through
our own ``requests.Session`` because the client has no ranged GETs, HEAD metadata or streamed uploads.

Time is bounded per operation: every call gets a deadline (``timeout`` seconds); attempts use a short
connect timeout and a read timeout that never runs past the deadline. Retries (exponential backoff, or
the server's ``Retry-After`` when it fits in the deadline) are made on transport errors and on 429 and
502/503/504 for requests the caller declares replayable (``retry=True``: GET/HEAD always; PUT with a
body factory that reopens the bytes, DELETE, mkdir, move, copy, utime), and for any request whose
connection could not even be opened (nothing was sent). A replayed request may find its first attempt
applied (a 404 after a DELETE, a 409 after a mkdir): the raised error then carries ``retried=True`` so
the caller can take it as success. After a transport failure the session fails fast (one attempt, no
retries) for ``FAIL_FAST_SECONDS`` so an API that is down costs one timeout per operation, not one per
retry; the first success ends that window.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from typing import IO, Any

import Algorithmia
import requests
from requests.adapters import HTTPAdapter

from .api_errors import BackendUnavailable, error_for_status

IDEMPOTENT = frozenset({"GET", "HEAD"})
RETRY_STATUSES = frozenset({429, 502, 503, 504})
#: Longest ``Retry-After`` pause honoured (a longer one ends the retries: the deadline decides).
MAX_RETRY_AFTER = 2.0
CONNECT_TIMEOUT = 3.0
FAIL_FAST_SECONDS = 2.0
DEFAULT_TIMEOUT = 8.0


class ApiSession:
    """Authenticated, bounded HTTP calls against one Algorithmia API address."""

    def __init__(self, api_address: str | None = None, api_key: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT, bearer_token: str | None = None, pool_size: int = 32):
        client = Algorithmia.client(api_key=api_key, api_address=api_address, bearer_token=bearer_token)
        self.api_address: str = str(client.apiAddress).rstrip("/")
        self.timeout = float(timeout)
        self._auth_header = self._authorization(client.apiKey, client.bearerToken)
        self.http = requests.Session()
        self.http.verify = client.requestSession.verify
        self.http.trust_env = client.requestSession.trust_env
        if self.http.trust_env:
            # What requests would read from the environment on every call (proxies and no_proxy for this
            # one address, REQUESTS_CA_BUNDLE, .netrc), read once: per call it was ~0.2 ms of a 1.2 ms
            # small-file upload. Credentials always come from the Authorization header, never .netrc.
            settings = self.http.merge_environment_settings(self.api_address, {}, None, self.http.verify,
                                                            None)
            self.http.proxies, self.http.verify = settings["proxies"], settings["verify"]
            self.http.trust_env = False
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
        self.http.mount("http://", adapter)
        self.http.mount("https://", adapter)
        self._state_lock = threading.Lock()
        self._fail_fast_until = 0.0
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.last_success_at: float | None = None
        self.requests_sent = 0
        self.bytes_sent = 0  # request body bytes handed to the transport (unguarded: a statistic)

    @property
    def authorization(self) -> str | None:
        """The Authorization header's value, for a channel beside HTTP to the same server (local_reads.py)."""
        return self._auth_header

    @staticmethod
    def _authorization(api_key: str | None, bearer: str | None) -> str | None:
        if api_key:
            return f"Simple {api_key}"
        if bearer:
            return f"Bearer {bearer}"
        return None

    def __repr__(self) -> str:  # never show the key
        return f"ApiSession({self.api_address!r})"

    @property
    def reachable(self) -> bool:
        return time.monotonic() >= self._fail_fast_until

    def request(self, method: str, path: str, *, headers: dict[str, str] | None = None,
                params: dict[str, str] | None = None, body: Callable[[], IO[bytes] | bytes] | None = None,
                json_body: Any = None, stream: bool = False, display: str = "", ok: tuple[int, ...] = (200,),
                timeout: float | None = None, retry: bool | None = None) -> requests.Response:
        """One API call with retries; returns a response whose status is in ``ok`` or raises OSError.

        ``body`` is a factory so a retry can reopen a file; ``json_body`` instead sends that value as JSON.
        ``display`` names the object in errors.
        ``timeout`` overrides the session's per-operation deadline (algorithm calls run for minutes).
        ``retry`` says the request may be replayed (default: GET/HEAD only).
        """
        replayable = method in IDEMPOTENT if retry is None else retry
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        all_headers = dict(headers or {})
        if json_body is not None:
            encoded = json.dumps(json_body).encode("utf-8")

            def body() -> bytes:  # the same bytes for every attempt
                return encoded

            all_headers["Content-Type"] = "application/json"
        if self._auth_header:
            all_headers["Authorization"] = self._auth_header
        url = self.api_address + path
        attempt = 0
        while True:
            attempt += 1
            remaining = deadline - time.monotonic()
            data = body() if body is not None else None
            try:
                self.requests_sent += 1
                self.bytes_sent += _body_size(data)
                response = self.http.request(
                    method, url, headers=all_headers, params=params, data=data, stream=stream,
                    timeout=(min(CONNECT_TIMEOUT, max(remaining, 0.05)), max(remaining, 0.05)),
                    allow_redirects=False)
            except requests.RequestException as exc:
                _close_body(data)
                sent_nothing = isinstance(exc, (requests.ConnectTimeout,)) or _is_connect_error(exc)
                if (replayable or sent_nothing) and self._may_retry(attempt, deadline):
                    continue
                self._note_failure(f"{type(exc).__name__}: {exc}")
                name = display or path
                raise BackendUnavailable(f"{name}: API unreachable ({type(exc).__name__})") from exc
            _close_body(data)
            if response.status_code in RETRY_STATUSES and replayable \
                    and self._may_retry(attempt, deadline, _retry_after(response)):
                response.close()
                continue
            self._note_success()
            if response.status_code in ok:
                return response
            message, details = error_details(response)
            response.close()
            error = error_for_status(response.status_code, message, display or path, details)
            error.retried = attempt > 1  # type: ignore[attr-defined]
            raise error

    def _may_retry(self, attempt: int, deadline: float, retry_after: float | None = None) -> bool:
        if not self.reachable:  # failing fast after a transport failure (see the module docstring)
            return False
        pause = min(0.05 * (2 ** (attempt - 1)), 1.0) if retry_after is None else retry_after
        if time.monotonic() + pause >= deadline:
            return False
        time.sleep(pause)
        return True

    def _note_failure(self, message: str) -> None:
        with self._state_lock:
            self._fail_fast_until = time.monotonic() + FAIL_FAST_SECONDS
            self.last_error = message
            self.last_error_at = time.time()

    def _note_success(self) -> None:
        with self._state_lock:
            self._fail_fast_until = 0.0
            self.last_success_at = time.time()

    def health(self) -> dict[str, Any]:
        return {"reachable": self.reachable, "last_error": self.last_error,
                "last_error_at": self.last_error_at, "last_success_at": self.last_success_at,
                "requests_sent": self.requests_sent, "bytes_sent": self.bytes_sent}

    def close(self) -> None:
        self.http.close()


def _is_connect_error(exc: BaseException) -> bool:
    """True when the TCP connection was never established (so the request was not sent)."""
    if not isinstance(exc, requests.ConnectionError):
        return False
    text = repr(exc)
    return "NewConnectionError" in text or "Connection refused" in text


def _body_size(data: object) -> int:
    """Bytes a request body will send: its length, or for an open file what is left after its offset."""
    if data is None:
        return 0
    if isinstance(data, (bytes, bytearray, memoryview)):
        return len(data)
    try:
        return os.fstat(data.fileno()).st_size - data.tell()  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return 0


def _close_body(data: object) -> None:
    close = getattr(data, "close", None)
    if callable(close):
        close()


def _retry_after(response: requests.Response) -> float | None:
    """The server's ``Retry-After`` in seconds (capped at ``MAX_RETRY_AFTER``), None if absent/a date."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return min(max(float(value), 0.0), MAX_RETRY_AFTER)
    except ValueError:
        return None


def error_details(response: requests.Response) -> tuple[str, dict[str, Any]]:
    """``(message, error object)``: the JSON ``error`` (``errno``, ``size``, ``etag``… of the extensions,
    docs/api-extensions.md §7) or ``{}``; the message falls back to ``X-Error-Message``, then the reason."""
    try:
        if response.request.method != "HEAD" and response.content:
            body = response.json()
            error = body.get("error") if isinstance(body, dict) else None
            if isinstance(error, dict) and error.get("message"):
                return str(error["message"]), error
            if isinstance(error, str):
                return error, {}
    except (ValueError, requests.RequestException):
        pass
    return response.headers.get("X-Error-Message") or response.reason or "", {}
