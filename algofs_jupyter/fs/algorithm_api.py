"""The Algorithm API on the client side: list an owner's algorithms and versions, call one, manage one.

Every user of algorithms goes through here, with the session's auth, retries and deadlines: the mount's
pipe files (``mount/pipes.py``, which turns bytes into input and answers into bytes), the Jupyter
layer (``jupyter/algorithm_calls.py``: REST handlers, magics, widget) and publishing from a notebook
(``publish.py``: :func:`algorithm_info`, :func:`create_algorithm`, :func:`upload_source`,
:func:`publish_version`). Errors are the session's OSErrors, named ``algo://user/name``.
"""

from __future__ import annotations

import http.client
import json
import select
import threading
import urllib.parse
from dataclasses import dataclass
from typing import Any

from .api_errors import BackendUnavailable, error_for_status
from .api_session import CONNECT_TIMEOUT, ApiSession, error_details

#: Algorithm errors arrive as JSON with any status: read them all.
ANY_STATUS = tuple(range(200, 600))
#: The API's own limit on a call when the caller names none (seconds).
DEFAULT_CALL_TIMEOUT = 300.0
#: Time allowed on top of the algorithm's timeout for the request itself.
CALL_MARGIN = 10.0
#: Deadline of a publish: the server builds the source first (its build limit is 60 s).
PUBLISH_TIMEOUT = 120.0


class AlgorithmError(Exception):
    """The call reached the API and failed there: the algorithm raised, or the API refused the call.

    ``str()`` names the target (``user/algo/1.0: AlgorithmError: boom``); ``message`` and ``error_type``
    are the API's own words (``error_type`` None when it gave none).
    """

    def __init__(self, target: str, message: str, error_type: str | None = None):
        self.target = target
        self.message = message
        self.error_type = error_type
        super().__init__(f"{target}: {error_type}: {message}" if error_type else f"{target}: {message}")


@dataclass(frozen=True)
class AlgorithmReply:
    result: Any  # decoded JSON; base64 text for binary answers
    content_type: str | None  # the answer's metadata: text, json, binary, void
    duration: float | None  # seconds the algorithm ran, as the API reports it


def _version_name(version: Any) -> str:
    return version if isinstance(version, str) else str(version.get("version", ""))


def list_algorithms(session: ApiSession, owner: str) -> dict[str, list[str]]:
    """``{name: [version, …]}`` of ``owner``'s algorithms; a missing owner raises FileNotFoundError."""
    response = session.request("GET", f"/v1/algorithms/{owner}", display=f"algo://{owner}", ok=(200,))
    body = response.json()
    return {item["name"]: [_version_name(v) for v in item.get("versions", [])]
            for item in body.get("results", [])}


def algorithm_info(session: ApiSession, owner: str, name: str) -> dict[str, Any]:
    """The algorithm object of ``owner/name`` (id, details, settings; ``versions`` on our server).

    The way to ask whether it exists: a missing one raises FileNotFoundError, a private one of another
    user PermissionError. A GET, so transient failures (transport, 429/5xx) are retried in the deadline.
    """
    return _object_of(session.request("GET", f"/v1/algorithms/{owner}/{name}",
                                      display=f"algo://{owner}/{name}", ok=(200,)))


def algorithm_versions(session: ApiSession, owner: str, name: str) -> list[str] | None:
    """The published versions of ``owner/name``; None when the answer has no list (the hosted API's
    shape: ask ``list_algorithms`` of the owner)."""
    versions = algorithm_info(session, owner, name).get("versions")
    return None if versions is None else [_version_name(v) for v in versions]


class BuildFailed(Exception):
    """The server built the uploaded source and the build failed, so nothing was published.

    Not an OSError: the API worked, the code didn't; ``logs`` is the build's output (the traceback of
    importing algorithm.py) for the author to read; ``build_id`` names the build for
    ``GET .../builds/<id>/logs`` (the client's ``get_build_logs``) later.
    """

    def __init__(self, target: str, logs: str, build_id: str | None = None):
        self.target = target
        self.logs = logs
        self.build_id = build_id
        super().__init__(f"{target}: build failed")


@dataclass(frozen=True)
class PublishedVersion:
    semantic_version: str | None  # e.g. "0.1.0"
    git_hash: str | None  # the commit published (the source's SHA, docs/algorithm-source.md)


def _object_of(response: Any) -> dict[str, Any]:
    """The JSON object a management call answers with ({} for anything else)."""
    body = response.json()
    return body if isinstance(body, dict) else {}


def create_algorithm(session: ApiSession, owner: str, name: str, *, private: bool = False) -> dict[str, Any]:
    """Create ``owner/name`` (label = name; callable by anyone unless ``private``); returns its object.

    A POST the session never replays once it may have reached the server (only a connection that
    could not be opened is tried again): a 503 raises OSError rather than risk creating twice. It
    exists already: FileExistsError; not the caller's namespace: PermissionError.
    """
    payload = {"name": name, "details": {"label": name},
               "settings": {"algorithm_callability": "private" if private else "public"}}
    return _object_of(session.request("POST", f"/v1/algorithms/{owner}", json_body=payload,
                                      display=f"algo://{owner}/{name}", ok=(200,)))


def upload_source(session: ApiSession, owner: str, name: str, files: dict[str, str],
                  timeout: float | None = None) -> dict[str, Any]:
    """Replace the working source of ``owner/name`` with ``files`` ({file name: text}, needs
    algorithm.py; the server's extension, docs/algorithm-source.md). Returns ``commit_sha`` and ``files``.

    The whole source in one PUT, so sending it twice leaves the same source: it is retried on transport
    errors and 429/5xx within ``timeout`` (default: the session's deadline).
    """
    return _object_of(session.request("PUT", f"/v1/algorithms/{owner}/{name}/source",
                                      json_body={"files": files}, display=f"algo://{owner}/{name}",
                                      ok=(200,), timeout=timeout, retry=True))


def publish_version(session: ApiSession, owner: str, name: str, version_type: str = "minor",
                    release_notes: str = "", timeout: float = PUBLISH_TIMEOUT) -> PublishedVersion:
    """Build the uploaded source if needed and publish it as the next ``version_type`` version.

    Raises BuildFailed (with the log) when the code does not build, OSError when the API refuses or
    can't be reached. Never replayed once it may have reached the server (a second POST would publish a
    second version); ``timeout`` leaves room for the server's build.
    """
    display = f"algo://{owner}/{name}"
    payload = {"version_info": {"version_type": version_type, "release_notes": release_notes}}
    response = session.request("POST", f"/v1/algorithms/{owner}/{name}/versions", json_body=payload,
                               display=display, ok=(200, 400), timeout=timeout)
    if response.status_code == 400:  # a failed build is a 400 with error_type BuildFailed and the logs
        message, details = error_details(response)
        response.close()
        if details.get("error_type") == "BuildFailed":
            build_id = details.get("build_id")
            raise BuildFailed(f"{owner}/{name}", str(details.get("logs", "")),
                              build_id if isinstance(build_id, str) else None)
        raise error_for_status(400, message, display, details)
    info = response.json().get("version_info") or {}
    return PublishedVersion(info.get("semantic_version"), info.get("git_hash"))


class _LeanPost:
    """Algorithm calls over a kept-alive ``http.client`` connection per thread, for a plain-HTTP API
    without proxies (the embedded server on 127.0.0.1, the mount's pipe files).

    Profiled (py-spy on the mount daemon, warm ``demo/echo``): ``requests``+``urllib3`` spent about as
    long in Python around each call as the server took to answer. This sends the same request with the
    session's Authorization header and keeps the session's health counters; anything else (HTTPS,
    proxies) takes ``session.request``. A POST is not retried once sent, as in ``session.request``.
    """

    def __init__(self) -> None:
        self._local = threading.local()

    @staticmethod
    def usable(session: ApiSession) -> bool:
        return session.api_address.startswith("http://") and not session.http.proxies

    def _connection(self, session: ApiSession) -> tuple[http.client.HTTPConnection, bool]:
        """(connection, reused): a fresh one when there is none or the server closed the kept one."""
        kept = getattr(self._local, "kept", None)
        if kept is not None and kept[0] == session.api_address:
            connection = kept[1]
            sock = connection.sock
            if sock is not None and not select.select([sock], [], [], 0)[0]:  # readable = closed (EOF)
                return connection, True
            connection.close()
        address = urllib.parse.urlsplit(session.api_address)
        connection = http.client.HTTPConnection(address.hostname or "127.0.0.1", address.port or 80,
                                                timeout=CONNECT_TIMEOUT)
        self._local.kept = (session.api_address, connection)
        return connection, False

    def post(self, session: ApiSession, path: str, content_type: str, body: bytes,
             timeout: float, display: str) -> tuple[int, bytes]:
        headers = {"Content-Type": content_type, "Content-Length": str(len(body))}
        if session._auth_header:
            headers["Authorization"] = session._auth_header
        prefix = urllib.parse.urlsplit(session.api_address).path.rstrip("/")
        for attempt in (1, 2):
            connection, reused = self._connection(session)
            sent = False
            try:
                if connection.sock is None:
                    connection.connect()
                connection.sock.settimeout(timeout)
                session.requests_sent += 1
                connection.request("POST", prefix + path, body=body, headers=headers)
                sent = True
                response = connection.getresponse()
                data = response.read()
                if response.will_close:
                    connection.close()
            except (OSError, http.client.HTTPException) as exc:
                connection.close()
                # a kept connection the server dropped as we sent: nothing reached it, send once more
                if attempt == 1 and reused and not sent:
                    continue
                session._note_failure(f"{type(exc).__name__}: {exc}")
                raise BackendUnavailable(f"{display}: API unreachable ({type(exc).__name__})") from exc
            session._note_success()
            return response.status, data
        raise AssertionError("unreachable")


_LEAN = _LeanPost()


def call_algorithm(session: ApiSession, target: str, content_type: str, body: bytes,
                   timeout: float | None = None) -> AlgorithmReply:
    """POST ``body`` to ``user/algo[/version]``. Raises AlgorithmError for a failed call, OSError when the
    API can't be reached. ``timeout`` (seconds, default the API's) bounds the algorithm's run."""
    limit = DEFAULT_CALL_TIMEOUT if timeout is None else timeout
    params = {"timeout": str(int(max(1, round(limit))))} if timeout is not None else None
    display = f"algo://{target}"
    path = f"/v1/algo/{target}"
    if _LEAN.usable(session):
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        status, raw = _LEAN.post(session, path + query, content_type, body, limit + CALL_MARGIN, display)
    else:
        response = session.request("POST", path, headers={"Content-Type": content_type}, params=params,
                                   body=lambda: body, timeout=limit + CALL_MARGIN, display=display,
                                   ok=ANY_STATUS)
        status, raw = response.status_code, response.content
    try:
        reply = json.loads(raw)
    except ValueError:
        raise AlgorithmError(target, f"the API answered HTTP {status} with a body that is not JSON") from None
    if not isinstance(reply, dict):
        raise AlgorithmError(target, "unexpected answer from the API")
    if "error" in reply:
        error = reply["error"]
        if isinstance(error, dict):
            raise AlgorithmError(target, str(error.get("message", "failed")),
                                 error.get("error_type") or "AlgorithmError")
        raise AlgorithmError(target, str(error))
    if status >= 400:
        raise AlgorithmError(target, f"HTTP {status}")
    metadata = reply.get("metadata") or {}
    return AlgorithmReply(reply.get("result"), metadata.get("content_type"), metadata.get("duration"))
