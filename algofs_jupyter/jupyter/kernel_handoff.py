"""The hand-off from the server extension to its kernels: a private (0600) JSON file in the runtime dir.

Kernels inherit the server's environment, so the extension puts the file's path in ``ALGOFS_HANDOFF_FILE``.
The file carries the API endpoint (with the key: it is as private as Jupyter's own ``jpserver-*.json``) and
the server's URL and token so kernels can ask the server to mount/unmount instead of fighting over the mount.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..private_dirs import make_private_dirs
from .api_provider import ApiEndpoint

HANDOFF_FILE_ENV = "ALGOFS_HANDOFF_FILE"


@dataclass
class HandoffFile:
    path: Path
    server: dict

    @classmethod
    def for_server(cls, serverapp) -> HandoffFile:
        runtime = Path(serverapp.runtime_dir)
        token = getattr(getattr(serverapp, "identity_provider", None), "token", "") or ""
        server = {
            "pid": os.getpid(),
            "url": serverapp.connection_url,
            "token": token,
            "root_dir": str(Path(serverapp.root_dir).expanduser().resolve()),
        }
        return cls(runtime / f"algofs-{os.getpid()}-{id(serverapp):x}.json", server)

    def write(self, endpoint: ApiEndpoint | None, mountpoint: Path, error: str | None = None) -> None:
        """Publish the endpoint, or (``endpoint=None``) why there is none, so kernels fail fast."""
        payload = {**self.server, "mountpoint_abs": str(mountpoint), "error": error}
        if endpoint is not None:
            payload.update(
                api_address=endpoint.api_address,
                api_key=endpoint.api_key,
                username=endpoint.username,
                embedded_server=endpoint.embedded,
            )
        make_private_dirs(self.path.parent, check_existing=False)  # Jupyter's runtime dir, made 0700 by it
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(payload, handle)
        os.replace(tmp, self.path)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def read_handoff_file(path: str | os.PathLike) -> dict | None:
    """The published hand-off, or None when missing, unreadable or its server process is gone."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    pid = data.get("pid")
    if isinstance(pid, int):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
    return data


def mount_prefix(root_dir: str) -> tuple[str, str] | None:
    """(mount point as an API path relative to ``root_dir``, its absolute path) from the server's hand-off
    file; None when there is none or the mount point lies outside ``root_dir``."""
    handoff_path = os.environ.get(HANDOFF_FILE_ENV)
    handoff = read_handoff_file(handoff_path) if handoff_path else None
    if not handoff or not handoff.get("mountpoint_abs"):
        return None
    mount_abs = str(handoff["mountpoint_abs"])
    try:
        prefix = Path(mount_abs).relative_to(Path(root_dir).resolve()).as_posix()
    except ValueError:
        return None
    return (prefix, mount_abs) if prefix not in ("", ".") else None
