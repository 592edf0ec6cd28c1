"""Publish Python source that defines ``apply(input)`` as an algorithm, from a notebook or a script.

``publish("demo/double", source, version="minor")`` creates the algorithm if needed, uploads the source
(the server's source-upload extension, docs/algorithm-source.md) and publishes a new semantic version;
the server builds it first (imports it in a sandboxed worker). A failed build is a result, not an
exception: :class:`PublishResult` with ``ok=False`` and the build log, shown readably by the
``%%algofs publish`` magic. Problems that are not the code's (no such user, not the owner, server
unreachable) raise :class:`PublishError`, which IPython shows as one line.

The requests are ``fs/algorithm_api``'s management calls on an ``ApiSession``: the same auth, deadlines
and retries as the mount's pipe files (a transient 503 on the GET or the source upload is retried; the
POSTs that create and publish are never sent twice once they may have reached the server).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .fs.algorithm_api import (
    PUBLISH_TIMEOUT,
    BuildFailed,
    algorithm_info,
    create_algorithm,
    publish_version,
    upload_source,
)
from .fs.api_errors import BackendUnavailable
from .fs.api_session import DEFAULT_TIMEOUT, ApiSession

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
    build_id: str | None = None  # of a failed build: its log stays at GET .../builds/<id>/logs

    def __str__(self) -> str:
        if self.ok:
            return (f"Published algo://{self.algorithm}/{self.version}\n"
                    f"  call it:  client.algo('{self.algorithm}').pipe(...)\n"
                    f"  pipe it:  algofs/algorithms/{self.algorithm}/latest")
        build = f" (build {self.build_id})" if self.build_id else ""
        return f"Build failed for {self.algorithm}{build}; nothing was published.\n\n{self.logs.strip()}"

    def _repr_pretty_(self, printer, cycle: bool) -> None:
        printer.text(str(self))


def _endpoint(api_address: str | None, api_key: str | None) -> tuple[str, str]:
    if api_address and api_key:
        return api_address.rstrip("/"), api_key
    from . import get_access

    endpoint = get_access().endpoint()
    return (api_address or endpoint.api_address).rstrip("/"), api_key or endpoint.api_key


def _reason(exc: OSError, algorithm: str) -> str:
    """The API's words from a session error (``algo://user/name: <message>``), without the name."""
    text = exc.strerror or str(exc)
    return text.removeprefix(f"algo://{algorithm}").removeprefix(": ").strip() or text


def publish(algorithm: str, source: str, version: str = "minor", *, files: dict[str, str] | None = None,
            release_notes: str = "", private: bool = False, api_address: str | None = None,
            api_key: str | None = None, timeout: float = PUBLISH_TIMEOUT) -> PublishResult:
    """Create ``user/name`` if needed, upload ``source`` as algorithm.py (plus ``files``), publish it.

    ``timeout`` (seconds) bounds the source upload and the build-and-publish call; looking the
    algorithm up and creating it have the session's shorter deadline (at most ``timeout``).
    """
    match = _REF.match(algorithm.strip())
    if not match:
        raise PublishError(f"expected user/name (name: letters, digits, _), got {algorithm!r}")
    if version not in VERSION_TYPES:
        raise PublishError(f"version must be one of {', '.join(VERSION_TYPES)}, got {version!r}")
    owner, name = match.groups()
    address, key = _endpoint(api_address, api_key)
    target = f"{owner}/{name}"
    session = ApiSession(address, key or None, timeout=min(timeout, DEFAULT_TIMEOUT))
    step = "publish"
    try:
        try:
            algorithm_info(session, owner, name)
        except FileNotFoundError:
            step = "create"
            try:
                create_algorithm(session, owner, name, private=private)
            except FileExistsError:
                pass  # created meanwhile (another kernel publishing it): the upload checks the owner
        step = "upload the source of"
        upload_source(session, owner, name, {**(files or {}), "algorithm.py": source}, timeout=timeout)
        step = "publish"
        published = publish_version(session, owner, name, version, release_notes, timeout=timeout)
    except BuildFailed as failed:
        return PublishResult(target, False, logs=failed.logs, api_address=address, build_id=failed.build_id)
    except BackendUnavailable as exc:
        cause = type(exc.__cause__).__name__ if exc.__cause__ is not None else "no answer"
        raise PublishError(f"cannot reach the API at {address}: {cause}") from None
    except OSError as exc:
        raise PublishError(f"cannot {step} {target}: {_reason(exc, target)}") from None
    finally:
        session.close()
    return PublishResult(target, True, published.semantic_version, published.git_hash, api_address=address)
