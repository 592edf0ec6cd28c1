"""Unmounting a mount that processes hold: say who holds it, move kernels out, move them back after Mount.

A notebook opened inside ``algofs/`` runs a kernel whose working directory is in the mount. Unmounted under
it, the kernel fails with ``ENOTCONN`` on ``os.getcwd()`` even after the next Mount (it sits on the detached
old tree) until it is restarted. So an unmount first lists the mount's holders (``mount/holders.py``): when
any exist and the user did not insist, nothing is unmounted and the answer says who holds it and what
"Unmount anyway" will do. Insisting moves each holding kernel's working directory to the server's root
directory (a silent ``os.chdir`` executed in the kernel), unmounts (lazily for what still holds it) and
remembers where the kernel was, so the next Mount puts it back. Other processes (a terminal's shell) are
named but cannot be moved: they must ``cd`` again.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import dataclass
from typing import Any

from ..mount.holders import Holder
from .mount_manager import MountManager

log = logging.getLogger(__name__)

#: Seconds a kernel gets to run the chdir (a kernel busy with a cell runs it after the cell).
CHDIR_REPLY_SECONDS = 3.0


@dataclass
class _MovedKernel:
    original_cwd: str
    moved_to: str


class BusyUnmount:
    """The extension's unmount: ``unmount(force)`` and ``after_mount()`` around one ``MountManager``.

    ``serverapp`` gives the server's kernel and session managers (read when used: they may be created after
    the extension) and its root directory, where moved kernels wait."""

    def __init__(self, manager: MountManager, serverapp: Any):
        self.manager = manager
        self.serverapp = serverapp
        self.safe_dir = os.path.abspath(os.path.expanduser(serverapp.root_dir))
        self._moved: dict[str, _MovedKernel] = {}  # kernel id -> where it was; only the event loop touches it

    async def unmount(self, force: bool = False) -> dict:
        held = await asyncio.to_thread(self.manager.holders)
        if not held:
            return await self.manager.aunmount()
        kernels = await self._kernels_by_pid()
        if not force:
            status = await self.manager.astatus()
            status["busy"] = [self._busy_entry(h, kernels) for h in held]
            status["busy_message"] = self._explain(held, kernels)
            return status
        for holder in held:
            kernel = kernels.get(holder.pid)
            if kernel is not None and holder.cwd is not None:
                await self._move_out(kernel["id"], holder)
        still = await asyncio.to_thread(self.manager.holders)
        status = await self.manager.aunmount(force=True)
        if still:
            status["busy_message"] = ("Unmounted. These processes still had their working directory or files "
                                      "in it and must cd again or reopen them: "
                                      + "; ".join(h.describe() for h in still))
        return status

    async def after_mount(self) -> None:
        """Put kernels moved out by an unmount back where they were (if they did not move on meanwhile)."""
        moved, self._moved = self._moved, {}
        for kernel_id, where in moved.items():
            back = where.original_cwd
            code = (f"import os as _algofs_os\n"
                    f"if _algofs_os.getcwd() == {where.moved_to!r} and _algofs_os.path.isdir({back!r}):\n"
                    f"    _algofs_os.chdir({back!r})\n"
                    f"del _algofs_os")
            await self._run_silently(kernel_id, code)

    async def aclose(self) -> None:
        """At server shutdown: move kernels out, so stopping the mount does not wait on them."""
        try:
            await self.unmount(force=True)
        finally:
            await self.manager.aclose()

    # ----- kernels -----------------------------------------------------------------------------------
    async def _kernels_by_pid(self) -> dict[int, dict]:
        """pid → {"id", "notebook"} for this server's running kernels."""
        notebooks: dict[str, str] = {}
        try:
            for session in await self.serverapp.session_manager.list_sessions():
                kernel = session.get("kernel") or {}
                notebooks[kernel.get("id", "")] = session.get("path", "")
        except Exception as exc:  # a broken sessions database must not block an unmount
            log.debug("algofs: cannot list sessions: %s", exc)
        found: dict[int, dict] = {}
        kernel_manager = self.serverapp.kernel_manager
        for kernel_id in list(kernel_manager.list_kernel_ids()):
            try:
                pid = kernel_manager.get_kernel(kernel_id).provisioner.pid
            except (KeyError, AttributeError):
                continue
            if isinstance(pid, int):
                found[pid] = {"id": kernel_id, "notebook": notebooks.get(kernel_id) or None}
        return found

    async def _move_out(self, kernel_id: str, holder: Holder) -> None:
        original = os.path.join(os.path.dirname(str(self.manager.mountpoint)), holder.cwd or "")
        code = f"import os as _algofs_os\n_algofs_os.chdir({self.safe_dir!r})\ndel _algofs_os"
        if await self._run_silently(kernel_id, code):
            self._moved[kernel_id] = _MovedKernel(os.path.normpath(original), self.safe_dir)
            log.info("algofs: moved kernel %s out of %s for the unmount", kernel_id, holder.cwd)

    async def _run_silently(self, kernel_id: str, code: str) -> bool:
        """Execute ``code`` in the kernel without output or history; True once it answered ``ok``."""
        try:
            client = self.serverapp.kernel_manager.get_kernel(kernel_id).client()
        except KeyError:
            return False
        client.start_channels()
        try:
            msg_id = client.execute(code, silent=True, store_history=False)
            deadline = asyncio.get_running_loop().time() + CHDIR_REPLY_SECONDS
            while (left := deadline - asyncio.get_running_loop().time()) > 0:
                reply = await client.get_shell_msg(timeout=left)
                if reply.get("parent_header", {}).get("msg_id") == msg_id:
                    return bool(reply["content"].get("status") == "ok")
        except Exception as exc:  # queue.Empty on timeout, a dead kernel …: the unmount goes on
            log.info("algofs: kernel %s did not change directory in time: %s", kernel_id, exc)
        finally:
            client.stop_channels()
        return False

    # ----- what the user reads -----------------------------------------------------------------------
    @staticmethod
    def _busy_entry(holder: Holder, kernels: dict[int, dict]) -> dict:
        return {**holder.as_dict(), "kernel": kernels.get(holder.pid)}

    def _explain(self, held: list[Holder], kernels: dict[int, dict]) -> str:
        parts = []
        for holder in held:
            kernel = kernels.get(holder.pid)
            who = (f"the kernel of {kernel['notebook']}" if kernel and kernel["notebook"]
                   else "a kernel" if kernel else holder.command)
            parts.append(f"{who} (pid {holder.pid}) — {holder.describe().split(': ', 1)[1]}")
        movable = any(h.pid in kernels and h.cwd is not None for h in held)
        others = [h for h in held if h.pid not in kernels]
        advice = "Unmount anyway"
        if movable:
            advice += (f" moves kernels' working directory to {self.safe_dir} and back after the next Mount")
        if others:
            advice += ("; other processes see 'Transport endpoint is not connected' in algofs/ until they cd "
                       "again or reopen their files")
        return f"{self.manager.relative_mountpoint()} is in use: " + "; ".join(parts) + f". {advice}."
