"""Calling algorithms and listing them, through the official ``algorithmia`` client.

Shared by the REST handlers, the magics and the widget so all three parse input and report errors alike.
"""

from __future__ import annotations

import base64
import json
import re
import time
from dataclasses import dataclass
from typing import Any

import requests

from .backend import ApiEndpoint

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


def client_for(endpoint: ApiEndpoint):
    import Algorithmia

    return Algorithmia.client(endpoint.api_key or None, endpoint.api_address)


def pipe(endpoint: ApiEndpoint, ref: str, value: Any, timeout: float | None = None) -> PipeResult:
    """Run ``ref`` on ``value`` (already decoded with :func:`decode_input`)."""
    from Algorithmia.errors import AlgorithmException

    owner, name, version = parse_algorithm(ref)
    path = f"{owner}/{name}" + (f"/{version}" if version else "")
    algorithm = client_for(endpoint).algo(path)
    if timeout is not None:
        if timeout <= 0:
            raise UsageProblem("timeout must be a positive number of seconds")
        algorithm.set_options(timeout=int(max(1, round(timeout))))
    started = time.monotonic()
    try:
        response = algorithm.pipe(value)
    except AlgorithmException as exc:
        message = getattr(exc, "message", None) or str(exc)
        raise AlgorithmFailed(message, getattr(exc, "error_type", None)) from None
    except Exception as exc:  # the client raises bare Exception for non-2xx answers
        raise AlgorithmFailed(f"{path}: {exc}", "ApiError") from None
    metadata = response.metadata
    duration = getattr(metadata, "duration", None)
    content_type = getattr(metadata, "content_type", None) or "json"
    return PipeResult(
        response.result, content_type, float(duration if duration is not None else time.monotonic() - started)
    )


def list_algorithms(endpoint: ApiEndpoint, owners: list[str], timeout: float = 10.0) -> list[dict]:
    """``{"user", "name", "versions": [..., "latest"]}`` for each algorithm of ``owners``."""
    found = []
    headers = {"Authorization": endpoint.api_key} if endpoint.api_key else {}
    with requests.Session() as session:
        for owner in dict.fromkeys(owners):
            response = session.get(
                f"{endpoint.api_address}/v1/algorithms/{owner}", headers=headers, timeout=timeout
            )
            if response.status_code in (403, 404):
                continue
            response.raise_for_status()
            for item in response.json().get("results", []):
                versions = [str(version) for version in item.get("versions", [])]
                found.append({"user": owner, "name": item["name"], "versions": [*versions, "latest"]})
    found.sort(key=lambda algo: (algo["user"], algo["name"].lower()))
    return found
