"""A kernel's access to AlgoFS (API endpoint, mount, algorithms), shared by the magics and the widget.

* Inside a Jupyter server with the extension: :class:`ServerAccess` uses the hand-off file the extension
  published (API endpoint) and the server's REST API for mount state, so the server stays the only owner.
* Otherwise (``jupyter execute``, plain IPython): :class:`LocalAccess` owns an :class:`ApiProvider` (remote
  from ``ALGORITHMIA_API``/``ALGORITHMIA_API_KEY``/``ALGOFS_API_KEY_FILE``, else the embedded demo server) and
  a :class:`MountManager` whose mount lives as long as the kernel.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from pathlib import Path

import requests

from . import algorithm_calls
from .api_provider import DEMO_USERS, ApiEndpoint, ApiProvider
from .kernel_handoff import HANDOFF_FILE_ENV, read_handoff_file
from .mount_manager import MountManager


class AccessError(RuntimeError):
    pass


class KernelAccess:
    """What magics and the widget need; subclasses decide who owns the mount."""

    def endpoint(self) -> ApiEndpoint:
        raise NotImplementedError

    def status(self) -> dict:
        raise NotImplementedError

    def mount(self, path: str | None = None) -> dict:
        raise NotImplementedError

    def unmount(self, force: bool = False) -> dict:
        """Unmount; while processes hold the mount only with ``force`` (the status names them)."""
        raise NotImplementedError

    def cache_stats(self) -> dict:
        raise NotImplementedError

    def clear_cache(self) -> dict:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def mounted_path(self) -> Path | None:
        status = self.status()
        return Path(status["mountpoint_abs"]) if status.get("mounted") else None

    def filesystem(self):
        """An :class:`AlgoFileSystem` for reads when nothing is mounted (no FUSE, or not mounted yet)."""
        from algofs_jupyter.fs.filesystem import AlgoFileSystem

        endpoint = self.endpoint()
        return AlgoFileSystem(api_address=endpoint.api_address, api_key=endpoint.api_key)

    #: users whose algorithms are listed; None = the API user (+ the demo users on the embedded server)
    owners: list[str] | None = None

    def algorithm_owners(self) -> list[str]:
        if self.owners:
            return list(self.owners)
        endpoint = self.endpoint()
        owners = [endpoint.username] if endpoint.username else []
        if endpoint.embedded:
            owners.extend(DEMO_USERS)
        return owners

    def list_algorithms(self) -> list[dict]:
        return algorithm_calls.list_algorithms(self.endpoint(), self.algorithm_owners())

    def pipe(self, ref: str, value, timeout: float | None = None) -> algorithm_calls.PipeResult:
        return algorithm_calls.pipe(self.endpoint(), ref, value, timeout)


class LocalAccess(KernelAccess):
    def __init__(
        self,
        api_provider: ApiProvider | None = None,
        root_dir: str | os.PathLike | None = None,
        algorithm_owners: list[str] | None = None,
        **mount_options,
    ):
        owners_env = os.environ.get("ALGOFS_ALGORITHM_OWNERS", "")
        self.owners = algorithm_owners or [owner for owner in owners_env.split(",") if owner.strip()] or None
        self.api_provider = api_provider or ApiProvider(
            api_address=os.environ.get("ALGORITHMIA_API") or None,
            api_key_file=os.environ.get("ALGOFS_API_KEY_FILE") or None,
            username=os.environ.get("ALGOFS_USERNAME") or None,
        )
        self.manager = MountManager(self.api_provider, root_dir or os.getcwd(), **mount_options)
        self._closed = False

    def endpoint(self) -> ApiEndpoint:
        return self.api_provider.endpoint()

    def status(self) -> dict:
        return self.manager.status()

    def mount(self, path: str | None = None) -> dict:
        return self.manager.mount(path)

    def unmount(self, force: bool = False) -> dict:
        return self.manager.unmount(force)

    def cache_stats(self) -> dict:
        return self.manager.cache_stats()

    def clear_cache(self) -> dict:
        return self.manager.clear_cache()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.manager.close()
        finally:
            self.api_provider.close()


class ServerAccess(KernelAccess):
    """Attached to the Jupyter server that started this kernel; mount operations go through its REST API."""

    def __init__(self, handoff_path: str | os.PathLike, wait_for_endpoint: float = 60.0):
        self.handoff_path = Path(handoff_path)
        self.wait_for_endpoint = wait_for_endpoint
        data = read_handoff_file(self.handoff_path)
        if data is None:
            raise AccessError(f"no live AlgoFS server hand-off at {self.handoff_path}")
        self._http = requests.Session()
        if data.get("token"):
            self._http.headers["Authorization"] = f"token {data['token']}"
        self.base_url = data["url"].rstrip("/") + "/algofs/"

    def _data(self) -> dict:
        data = read_handoff_file(self.handoff_path)
        if data is None:
            raise AccessError("the Jupyter server that owned the AlgoFS mount is gone")
        return data

    def endpoint(self) -> ApiEndpoint:
        deadline = time.monotonic() + self.wait_for_endpoint
        while True:
            data = self._data()
            if data.get("error"):
                raise AccessError(data["error"])
            if data.get("api_address"):
                return ApiEndpoint(
                    data["api_address"],
                    data.get("api_key") or "",
                    data.get("username"),
                    bool(data.get("embedded_server")),
                )
            if time.monotonic() > deadline:
                raise AccessError("the Jupyter server has not connected to an Algorithmia API yet")
            time.sleep(0.2)

    def _call(self, method: str, route: str, timeout: float = 120.0, json: dict | None = None) -> dict:
        body = (json or {}) if method != "GET" else None
        response = self._http.request(method, self.base_url + route, json=body, timeout=timeout)
        if response.status_code >= 400:
            try:
                message = response.json().get("message")
            except ValueError:
                message = response.text[:200]
            raise AccessError(f"Jupyter server answered {response.status_code}: {message}")
        return response.json()

    def status(self) -> dict:
        return self._call("GET", "status", timeout=30)

    def mount(self, path: str | None = None) -> dict:
        if path is None:
            return self._call("POST", "mount")
        # The kernel's paths are relative to its cwd; the REST API's to the server root dir.
        target = Path(os.path.normpath(Path.cwd() / Path(path).expanduser()))
        try:
            relative = target.relative_to(self._data()["root_dir"]).as_posix()
        except ValueError:
            raise AccessError(f"{target} is outside the Jupyter server's root directory") from None
        response = self._http.post(self.base_url + "mount", json={"path": relative}, timeout=120)
        if response.status_code >= 400:
            raise AccessError(
                f"Jupyter server answered {response.status_code}: {response.json().get('message')}"
            )
        return response.json()

    def unmount(self, force: bool = False) -> dict:
        return self._call("POST", "unmount", json={"force": force})

    def cache_stats(self) -> dict:
        return self._call("GET", "cache", timeout=30)

    def clear_cache(self) -> dict:
        return self._call("DELETE", "cache")

    def list_algorithms(self) -> list[dict]:
        """The server's list, so its ``algorithm_owners`` setting applies to notebooks too."""
        return self._call("GET", "algorithms", timeout=60)["algorithms"]


_access: KernelAccess | None = None
_access_lock = threading.Lock()


def get_access() -> KernelAccess:
    """This kernel's access: through the extension's server when there is one, else self-contained."""
    global _access
    with _access_lock:
        if _access is None:
            path = os.environ.get(HANDOFF_FILE_ENV)
            if path and read_handoff_file(path) is not None:
                _access = ServerAccess(path)
            else:
                _access = LocalAccess()
            atexit.register(close_access)
        return _access


def set_access(access: KernelAccess | None) -> None:
    """Replace the kernel's access (tests; or a custom API provider)."""
    global _access
    with _access_lock:
        _access = access


def close_access() -> None:
    global _access
    with _access_lock:
        access, _access = _access, None
    if access is not None:
        access.close()
