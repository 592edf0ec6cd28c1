"""Host header allow-list: a defence against DNS rebinding.

A web page the notebook user opens can make the browser send requests to ``127.0.0.1:<port>`` under its own
domain name (rebinding the name to 127.0.0.1). The browser then sends ``Host: evil.example``; answering
only requests whose Host is a loopback name, the listen address or a configured name keeps such pages
out. Deployments behind a proxy or a Kubernetes Service name their public host with ``--allowed-host``
(``*`` turns the check off).
"""

from __future__ import annotations

from collections.abc import Iterable

from .errors import ApiError
from .handler_base import ApiHandler

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def host_name(header: str) -> str:
    """``Host`` without its port, brackets or trailing dot, lower-cased: ``[::1]:80`` -> ``::1``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    if header.count(":") == 1:
        header = header.partition(":")[0]
    return header.rstrip(".")


class HostAllowList:
    def __init__(self, listen_host: str, extra: Iterable[str] = ()):
        extra = [host_name(h) for h in extra if h.strip()]
        self.allow_any = "*" in extra
        self.names = LOOPBACK_HOSTS | {host_name(listen_host)} | set(extra)

    def allows(self, header: str | None) -> bool:
        if self.allow_any:
            return True
        if not header:
            return False
        return host_name(header) in self.names


class ForbiddenHostHandler(ApiHandler):
    """Every request with a Host outside the allow-list: 403 with a JSON body, before authentication."""

    requires_auth = False

    def prepare(self) -> None:
        raise ApiError(403, "Host header not allowed (DNS rebinding protection; see algofs serve "
                            "--allowed-host)", code=2003)
