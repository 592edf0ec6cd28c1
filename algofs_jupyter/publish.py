"""Publish Python source that defines ``apply(input)`` as an algorithm, from a notebook or a script.

``publish("demo/double", source, version="minor")`` creates the algorithm if needed, uploads the source
(the server's source-upload extension, docs/algorithm-source.md) and publishes a new semantic version;
the server builds it first (imports it in a sandboxed worker). A failed build is a result, not an
exception: :class:`PublishResult` with ``ok=False`` and the build log, shown readably by the
``%%algofs publish`` magic. Problems that are not the code's (no such user, not the owner, server
unreachable) raise :class:`PublishError`, which IPython shows as one line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import requests

VERSION_TYPES = ("major", "minor", "revision")
_REF = re.compile(r"^(?:algo://)?(\w+)/([A-Za-z_]\w{0,63})$")


class PublishError(Exception):
    """Publishing failed for a reason other than the code itself."""

    def _render_traceback_(self) -> list[str]:
        return [f"PublishError: {self}"]


@dataclass
class PublishResult:
    algorithm: str
    ok: bool
    version: str | None = None
    commit: str | None = None
    logs: str = ""
    api_address: str = field(default="", repr=False)

    def __str__(self) -> str:
        if self.ok:
            return (f"Published algo://{self.algorithm}/{self.version}\n"
                    f"  call it:  client.algo('{self.algorithm}').pipe(...)\n"
                    f"  pipe it:  algofs/algorithms/{self.algorithm}/latest")
        return f"Build failed for {self.algorithm}; nothing was published.\n\n{self.logs.strip()}"

    def _repr_pretty_(self, printer, cycle: bool) -> None:
        printer.text(str(self))


def _endpoint(api_address: str | None, api_key: str | None) -> tuple[str, str]:
    if api_address and api_key:
        return api_address.rstrip("/"), api_key
    from . import get_session

    endpoint = get_session().endpoint()
    return (api_address or endpoint.api_address).rstrip("/"), api_key or endpoint.api_key


def _error_message(response: requests.Response) -> str:
    try:
        error = response.json().get("error")
    except ValueError:
        return f"HTTP {response.status_code}"
    if isinstance(error, dict):
        return str(error.get("message") or f"HTTP {response.status_code}")
    return str(error or f"HTTP {response.status_code}")


def publish(algorithm: str, source: str, version: str = "minor", *, files: dict[str, str] | None = None,
            release_notes: str = "", private: bool = False, api_address: str | None = None,
            api_key: str | None = None, timeout: float = 120.0) -> PublishResult:
    """Create ``user/name`` if needed, upload ``source`` as algorithm.py (plus ``files``), publish it."""
    match = _REF.match(algorithm.strip())
    if not match:
        raise PublishError(f"expected user/name (name: letters, digits, _), got {algorithm!r}")
    if version not in VERSION_TYPES:
        raise PublishError(f"version must be one of {', '.join(VERSION_TYPES)}, got {version!r}")
    owner, name = match.groups()
    address, key = _endpoint(api_address, api_key)
    session = requests.Session()
    session.headers["Authorization"] = key
    base = f"{address}/v1/algorithms/{owner}/{name}"

    def call(method: str, url: str, **kwargs) -> requests.Response:
        try:
            return session.request(method, url, timeout=timeout, **kwargs)
        except requests.RequestException as exc:
            raise PublishError(f"cannot reach the API at {address}: {type(exc).__name__}") from None

    found = call("GET", base)
    if found.status_code == 404:
        created = call("POST", f"{address}/v1/algorithms/{owner}", json={
            "name": name, "details": {"label": name},
            "settings": {"algorithm_callability": "private" if private else "public"}})
        if created.status_code != 200:
            raise PublishError(f"cannot create {owner}/{name}: {_error_message(created)}")
    elif found.status_code != 200:
        raise PublishError(f"cannot publish {owner}/{name}: {_error_message(found)}")
    uploaded = call("PUT", f"{base}/source", json={"files": {**(files or {}), "algorithm.py": source}})
    if uploaded.status_code != 200:
        raise PublishError(f"cannot upload the source of {owner}/{name}: {_error_message(uploaded)}")
    published = call("POST", f"{base}/versions",
                     json={"version_info": {"version_type": version, "release_notes": release_notes}})
    if published.status_code == 200:
        info = published.json().get("version_info", {})
        return PublishResult(f"{owner}/{name}", True, info.get("semantic_version"), info.get("git_hash"),
                             api_address=address)
    try:
        error = published.json().get("error", {})
    except ValueError:
        error = {}
    if isinstance(error, dict) and error.get("error_type") == "BuildFailed":
        return PublishResult(f"{owner}/{name}", False, logs=str(error.get("logs", "")), api_address=address)
    raise PublishError(f"cannot publish {owner}/{name}: {_error_message(published)}")
