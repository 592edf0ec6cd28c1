"""Calling algorithms and listing them for the REST handlers, the magics and the widget, so all three parse
input and report errors alike. The requests themselves are ``fs/algorithm_api`` (shared with the mount's
pipe files): the same retries and deadlines, and the official client's input encoding (``encode_value``).
"""

from __future__ import annotations

import base64
import json
import re
import time
from dataclasses import dataclass
from typing import Any

from ..fs.algorithm_api import DEFAULT_CALL_TIMEOUT, AlgorithmError, call_algorithm
from ..fs.algorithm_api import list_algorithms as list_owner_algorithms
from ..fs.api_session import ApiSession
from .api_provider import ApiEndpoint

CONTENT_TYPES = ("text", "json", "binary")
_ALGORITHM_REF = re.compile(r"^(?:algo://)?(\w[\w.-]*)/([\w.-]+)(?:/([\w.*-]+))?$")


class UsageProblem(ValueError):
    """Bad input from the caller (algorithm name, content type): one line, shown as is."""


class AlgorithmFailed(RuntimeError):
    """The algorithm ran and raised; ``error_type`` comes from the API (e.g. ``AlgorithmError``)."""

    def __init__(self, message: str, error_type: str | None = None):
        super().__init__(message)
        self.message = message
        self.error_type = error_type or "AlgorithmError"


@dataclass
class PipeResult:
    result: Any
    content_type: str
    duration: float

    def to_json(self) -> dict:
        result = self.result
        if isinstance(result, (bytes, bytearray)):
            result = base64.b64encode(bytes(result)).decode("ascii")
        return {"result": result, "content_type": self.content_type, "duration": self.duration}


def parse_algorithm(ref: str) -> tuple[str, str, str | None]:
    """``user/algo[/version]`` → parts; ``latest`` means "no version" (the server's newest)."""
    match = _ALGORITHM_REF.match((ref or "").strip())
    if not match:
        raise UsageProblem(f"expected an algorithm like user/algo or user/algo/1.0.0, got {ref!r}")
    owner, name, version = match.groups()
    if version == "latest":
        version = None
    return owner, name, version


def decode_input(data: str | bytes, content_type: str) -> Any:
    """The Python value to hand to ``Algorithm.pipe`` so the client sends the right Content-Type."""
    if content_type not in CONTENT_TYPES:
        raise UsageProblem(f"content type must be one of {', '.join(CONTENT_TYPES)}, got {content_type!r}")
    if content_type == "binary":
        return bytes(data) if isinstance(data, (bytes, bytearray)) else data.encode()
    text = data.decode() if isinstance(data, (bytes, bytearray)) else data
    if content_type == "json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise UsageProblem(f"input is not valid JSON: {exc.msg} (line {exc.lineno})") from None
    return text


def encode_value(value: Any) -> tuple[str, bytes]:
    """The Content-Type and body the official client's ``Algorithm.pipe`` sends for ``value``."""
    if isinstance(value, (bytes, bytearray)):
        return "application/octet-stream", bytes(value)
    if isinstance(value, str):
        return "text/plain", value.encode("utf-8")
    return "application/json", json.dumps(value).encode("utf-8")


def _session(endpoint: ApiEndpoint, timeout: float | None = None) -> ApiSession:
    if timeout is None:
        return ApiSession(endpoint.api_address, endpoint.api_key or None)
    return ApiSession(endpoint.api_address, endpoint.api_key or None, timeout=timeout)


def pipe(endpoint: ApiEndpoint, ref: str, value: Any, timeout: float | None = None) -> PipeResult:
    """Run ``ref`` on ``value`` (already decoded with :func:`decode_input`)."""
    owner, name, version = parse_algorithm(ref)
    path = f"{owner}/{name}" + (f"/{version}" if version else "")
    if timeout is not None and timeout <= 0:
        raise UsageProblem("timeout must be a positive number of seconds")
    content_type, body = encode_value(value)
    started = time.monotonic()
    session = _session(endpoint)
    try:
        reply = call_algorithm(session, path, content_type, body,
                               DEFAULT_CALL_TIMEOUT if timeout is None else timeout)
    except AlgorithmError as exc:
        if exc.error_type:  # the algorithm (or the API on its behalf) raised
            raise AlgorithmFailed(exc.message, exc.error_type) from None
        raise AlgorithmFailed(f"{path}: {exc.message}", "ApiError") from None
    except OSError as exc:  # the API could not be reached, or refused the request
        raise AlgorithmFailed(f"{path}: {exc}", "ApiError") from None
    finally:
        session.close()
    content_type = reply.content_type or "json"
    result = base64.b64decode(reply.result or "") if content_type == "binary" else reply.result
    duration = reply.duration if reply.duration is not None else time.monotonic() - started
    return PipeResult(result, content_type, float(duration))


def caller_memberships(session: ApiSession) -> list[dict]:
    """``{"name", "role"}`` of each of the caller's organizations (``GET /v1/algofs/whoami``); none from a
    server without that extension."""
    try:
        body = session.request("GET", "/v1/algofs/whoami", display="whoami", ok=(200,)).json()
    except (OSError, ValueError):
        return []
    orgs = body.get("organizations") if isinstance(body, dict) else None
    return [{"name": o["name"], "role": o.get("role") if isinstance(o.get("role"), str) else None}
            for o in orgs or [] if isinstance(o, dict) and isinstance(o.get("name"), str)]


def caller_organizations(session: ApiSession) -> list[str]:
    """The names of the caller's organizations (see ``caller_memberships``)."""
    return [membership["name"] for membership in caller_memberships(session)]


def list_organizations(endpoint: ApiEndpoint, timeout: float = 10.0) -> list[dict]:
    """The caller's organizations for the panel: ``{"name", "role"}`` each, by name."""
    session = _session(endpoint, timeout)
    try:
        return sorted(caller_memberships(session), key=lambda org: org["name"])
    finally:
        session.close()


def list_algorithms(endpoint: ApiEndpoint, owners: list[str], timeout: float = 10.0) -> list[dict]:
    """``{"user", "name", "versions": [..., "latest"]}`` for each algorithm of ``owners`` and of the caller's
    organizations (so the panel shows each organization beside the caller)."""
    found: list[dict] = []
    session = _session(endpoint, timeout)

    def add(owner: str) -> None:
        try:
            listed = list_owner_algorithms(session, owner)
        except (FileNotFoundError, PermissionError):
            return
        for name, versions in listed.items():
            found.append({"user": owner, "name": name, "versions": [*versions, "latest"]})

    try:
        for owner in dict.fromkeys(owners):
            add(owner)
        for org in caller_organizations(session):  # asked once the owners answered (an API down fails first)
            if org not in owners:
                add(org)
    finally:
        session.close()
    found.sort(key=lambda algo: (algo["user"], algo["name"].lower()))
    return found
