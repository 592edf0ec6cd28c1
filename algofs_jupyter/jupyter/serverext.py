"""The Jupyter server extension: owns the API provider and the FUSE mount for the server's lifetime.

An ``ExtensionApp`` (not a module-style extension) because only those get ``stop_extension``, which the server
awaits on shutdown, SIGTERM and SIGINT alike: that is where the mount is taken down and the embedded API
server stopped, so no stale mount is left in the user's home.
"""

from __future__ import annotations

import asyncio
import os

from jupyter_server.extension.application import ExtensionApp
from traitlets import Bool, Float, Int, List, Unicode, default

from ..mount.options import JUPYTER_DEFAULTS
from .api_provider import DEMO_USERS, ApiEndpoint, ApiProvider, default_data_dir
from .busy_unmount import BusyUnmount
from .checkpoints import install_mount_checkpoints
from .handlers import route_table
from .kernel_handoff import HANDOFF_FILE_ENV, HandoffFile
from .mount_deletes import install_delete_wording, install_mount_deletes
from .mount_manager import MountManager
from .mount_names import install_name_rules


class AlgofsApp(ExtensionApp):
    name = "algofs_jupyter"
    description = "AlgoFS: Algorithmia data and algorithms as files in Jupyter"
    load_other_extensions = True

    mountpoint = Unicode("algofs", help="Mount point, relative to the server root dir (or absolute).").tag(
        config=True
    )
    api_address = Unicode(
        help="Algorithmia API address. Empty: $ALGORITHMIA_API, else start the embedded demo server."
    ).tag(config=True)
    api_key_env = Unicode("ALGORITHMIA_API_KEY", help="Environment variable holding the API key.").tag(
        config=True
    )
    api_key_file = Unicode("", help="File holding the API key (wins over the environment variable).").tag(
        config=True
    )
    username = Unicode("", help="Algorithmia user name (for the algorithm list); empty = unknown.").tag(
        config=True
    )
    cache_dir = Unicode(
        "", help="Block cache directory; empty = per-user cache dir, one per mount point."
    ).tag(config=True)
    cache_size = Int(JUPYTER_DEFAULTS.cache_size, help="Block cache size limit in bytes.").tag(config=True)
    auto_mount = Bool(True, help="Mount when the server starts.").tag(config=True)
    embedded_server = Bool(True, help="Start `algofs serve --demo` when no API address is configured.").tag(
        config=True
    )
    embedded_root = Unicode("", help="Content root of the embedded server; empty = per-user data dir.").tag(
        config=True
    )
    mount_timeout = Float(30.0, help="Seconds to wait for a mount to become ready.").tag(config=True)
    max_restarts = Int(5, help="Consecutive crash restarts before giving up.").tag(config=True)
    algorithm_owners = List(
        Unicode(), help="Users whose algorithms the panel lists; empty = the API user (+ demo users)."
    ).tag(config=True)

    @default("api_address")
    def _default_api_address(self) -> str:
        return os.environ.get("ALGORITHMIA_API", "")

    # ----- lifecycle ---------------------------------------------------------------------------------
    def initialize_settings(self) -> None:
        if self.serverapp is None:  # jupyter_server links the app to its server before this is called
            raise RuntimeError("AlgofsApp.initialize_settings called before the server app was linked")
        self.api_provider = ApiProvider(
            api_address=self.api_address or None,
            api_key_file=self.api_key_file or None,
            api_key_env=self.api_key_env,
            username=self.username or None,
            embedded_root=self.embedded_root or default_data_dir() / "demo-server",
            allow_embedded=self.embedded_server,
        )
        self.mount_manager = MountManager(
            self.api_provider,
            root_dir=self.serverapp.root_dir,
            mountpoint=self.mountpoint,
            cache_dir=self.cache_dir or None,
            cache_size=self.cache_size,
            start_timeout=self.mount_timeout,
            max_restarts=self.max_restarts,
        )
        self.busy_unmount = BusyUnmount(self.mount_manager, self.serverapp)
        self.handoff_file = HandoffFile.for_server(self.serverapp)
        # JupyterLab checkpoints every file it opens: keep those of files on the mount on local disk
        install_mount_checkpoints(self.serverapp.contents_manager, self.log)
        # and deletes files on the mount permanently: a trash there would fail (mount_deletes.py)
        if install_mount_deletes(self.serverapp.contents_manager, self.log):
            install_delete_wording(self.serverapp.web_app.settings)  # and JupyterLab says which delete
        # and refuses names and places the API can't hold naming the rule, not an errno (mount_names.py)
        install_name_rules(self.serverapp.contents_manager, self.log)
        self._startup_task: asyncio.Task | None = None

    def initialize_handlers(self) -> None:
        self.handlers.extend(route_table())

    async def _start_jupyter_server_extension(self, serverapp) -> None:
        """Resolve the API endpoint and auto-mount in the background, so the server answers at once."""
        self._startup_task = asyncio.ensure_future(self.startup())

    async def startup(self) -> None:
        try:
            endpoint = await asyncio.to_thread(self.api_provider.endpoint)
            self.publish_handoff(endpoint)
            if self.auto_mount:
                status = await self.mount_manager.amount()
                self.log.info("%s", startup_summary(status))
        except Exception as exc:  # the server must come up even when the API doesn't
            self.log.error("algofs: start-up failed: %s", exc)
            self.publish_handoff(None, error=f"AlgoFS start-up failed: {exc}")

    def publish_handoff(self, endpoint: ApiEndpoint | None, error: str | None = None) -> None:
        """Tell this server's kernels (through their environment) where the API and the mount are."""
        self.handoff_file.write(endpoint, self.mount_manager.mountpoint, error)
        os.environ[HANDOFF_FILE_ENV] = str(self.handoff_file.path)

    async def stop_extension(self) -> None:
        task = self._startup_task
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        try:  # kernels still run (extensions stop first): move them out so the mount stops at once
            await self.busy_unmount.aclose()
        finally:
            await asyncio.to_thread(self.api_provider.close)
            self.handoff_file.remove()
            if os.environ.get(HANDOFF_FILE_ENV) == str(self.handoff_file.path):
                del os.environ[HANDOFF_FILE_ENV]

    # ----- helpers for handlers ----------------------------------------------------------------------
    def algorithm_owner_list(self, endpoint: ApiEndpoint) -> list[str]:
        if self.algorithm_owners:
            return list(self.algorithm_owners)
        owners = [endpoint.username] if endpoint.username else []
        if endpoint.embedded:
            owners.extend(DEMO_USERS)
        return owners


def startup_summary(status: dict) -> str:
    """The start-up log line: where the mount is, or why there is none (``reason`` is None when mounted)."""
    where = status["mountpoint_abs"]
    if status["mode"] == "fuse":
        return f"algofs: mounted {status.get('api_address') or 'the API'} at {where} (FUSE)"
    if status["mode"] == "fallback":
        return f"algofs: fallback mode, nothing mounted at {where}: {status['reason']}"
    reason = status["reason"] or "no reason given"
    return f"algofs: not mounted at {where} ({status['mode']}): {reason}"
