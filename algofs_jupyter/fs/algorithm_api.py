"""The Algorithm API on the client side: list an owner's algorithms and versions, call one.

Both users of algorithms go through here, with the session's auth, retries and deadlines: the mount's
pipe files (``mount/pipes.py``, which turns bytes into input and answers into bytes) and the Jupyter
layer (``jupyter/algorithm_calls.py``: REST handlers, magics, widget).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .api_session import ApiSession

#: Algorithm errors arrive as JSON with any status: read them all.
ANY_STATUS = tuple(range(200, 600))
#: The API's own limit on a call when the caller names none (seconds).
DEFAULT_CALL_TIMEOUT = 300.0
#: Time allowed on top of the algorithm's timeout for the request itself.
CALL_MARGIN = 10.0


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


def algorithm_versions(session: ApiSession, owner: str, name: str) -> list[str] | None:
    """The published versions of ``owner/name``; None when the answer has no list (the hosted API's
    shape: ask ``list_algorithms`` of the owner)."""
    response = session.request("GET", f"/v1/algorithms/{owner}/{name}", display=f"algo://{owner}/{name}",
                               ok=(200,))
    versions = response.json().get("versions")
    return None if versions is None else [_version_name(v) for v in versions]


def call_algorithm(session: ApiSession, target: str, content_type: str, body: bytes,
                   timeout: float | None = None) -> AlgorithmReply:
    """POST ``body`` to ``user/algo[/version]``. Raises AlgorithmError for a failed call, OSError when the
    API can't be reached. ``timeout`` (seconds, default the API's) bounds the algorithm's run."""
    limit = DEFAULT_CALL_TIMEOUT if timeout is None else timeout
    params = {"timeout": str(int(max(1, round(limit))))} if timeout is not None else None
    response = session.request(
        "POST", f"/v1/algo/{target}", headers={"Content-Type": content_type}, params=params,
        body=lambda: body, timeout=limit + CALL_MARGIN, display=f"algo://{target}", ok=ANY_STATUS)
    try:
        reply = response.json()
    except ValueError:
        raise AlgorithmError(target, f"the API answered HTTP {response.status_code} "
                                     "with a body that is not JSON") from None
    if not isinstance(reply, dict):
        raise AlgorithmError(target, "unexpected answer from the API")
    if "error" in reply:
        error = reply["error"]
        if isinstance(error, dict):
            raise AlgorithmError(target, str(error.get("message", "failed")),
                                 error.get("error_type") or "AlgorithmError")
        raise AlgorithmError(target, str(error))
    if response.status_code >= 400:
        raise AlgorithmError(target, f"HTTP {response.status_code}")
    metadata = reply.get("metadata") or {}
    return AlgorithmReply(reply.get("result"), metadata.get("content_type"), metadata.get("duration"))
