"""Unmount with a kernel inside ``algofs/`` (issue 25, item 3): explained, and recoverable.

A notebook opened inside the mount runs a kernel whose working directory is in it. Before: the unmount
hung ~20 s on the lazily detached mount, and the kernel failed with ENOTCONN on ``os.getcwd()`` even after
Mount, until it was restarted. Now: a plain unmount is refused with who holds the mount; "Unmount anyway"
moves the kernel out and the next Mount moves it back; a non-kernel holder is named.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from jupyter_test_utils import wait_for


async def _kernel_cwd(jp_serverapp, kernel_id: str, out: Path) -> str:
    """The kernel's working directory, as the kernel itself reports it (or the error it gets)."""
    client = jp_serverapp.kernel_manager.get_kernel(kernel_id).client()
    client.start_channels()
    try:
        out.unlink(missing_ok=True)
        code = ("import os\ntry:\n    answer = os.getcwd()\n"
                "except OSError as exc:\n    answer = 'error: ' + str(exc)\n"
                f"open({str(out)!r}, 'w').write(answer)\n")
        msg_id = client.execute(code, silent=True, store_history=False)
        while True:
            reply = await client.get_shell_msg(timeout=60)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        assert reply["content"]["status"] == "ok", reply["content"]
        return out.read_text()
    finally:
        client.stop_channels()


@pytest.mark.fuse
async def test_a_kernel_inside_the_mount_is_named_moved_out_and_back(
    jp_serverapp, jp_fetch, algofs_app, call, requires_fuse, no_stale_mounts, jp_root_dir, tmp_path
):
    code, status = await call("POST", "mount", {})
    assert code == 200 and status["mounted"], status
    mountpoint = Path(status["mountpoint_abs"])
    response = await jp_fetch("api", "sessions", method="POST", body=json.dumps(
        {"path": "algofs/data/demo/busy.ipynb", "type": "notebook", "name": "busy.ipynb",
         "kernel": {"name": "python3"}}))
    session = json.loads(response.body)
    kernel_id = session["kernel"]["id"]
    inside = str(mountpoint / "data" / "demo")
    report = tmp_path / "cwd.txt"
    assert await _kernel_cwd(jp_serverapp, kernel_id, report) == inside

    # A plain unmount is refused, naming the notebook whose kernel holds the mount; nothing changes.
    code, status = await call("POST", "unmount", {})
    assert code == 200 and status["mounted"], status
    [held] = [b for b in status["busy"] if b["kernel"]]
    assert held["kernel"]["id"] == kernel_id and held["cwd"] == "algofs/data/demo"
    assert "busy.ipynb" in status["busy_message"] and "Unmount anyway" in status["busy_message"]
    assert os.listdir(inside)

    # "Unmount anyway": the kernel is moved to the server's root and keeps working.
    code, status = await call("POST", "unmount", {"force": True})
    assert code == 200 and not status["mounted"], status
    assert not os.path.ismount(mountpoint)
    assert await _kernel_cwd(jp_serverapp, kernel_id, report) == str(Path(jp_root_dir).resolve())

    # Mount again: the kernel is back where its notebook is.
    code, status = await call("POST", "mount", {})
    assert code == 200 and status["mounted"], status
    assert await _kernel_cwd(jp_serverapp, kernel_id, report) == inside
    await jp_fetch("api", "sessions", session["id"], method="DELETE")


@pytest.mark.fuse
async def test_a_shell_inside_the_mount_is_named_and_told_what_happens(
    jp_serverapp, algofs_app, call, requires_fuse, no_stale_mounts
):
    code, status = await call("POST", "mount", {})
    assert code == 200 and status["mounted"], status
    mountpoint = Path(status["mountpoint_abs"])
    shell = subprocess.Popen(["sleep", "300"], cwd=mountpoint / "data" / "demo")
    try:
        async def busy():
            return (await call("POST", "unmount", {}))[1].get("busy")

        [held] = await wait_for(busy, 30, "the shell to be seen as a holder")
        assert held == {"pid": shell.pid, "command": "sleep", "cwd": "algofs/data/demo", "files": [],
                        "kernel": None}
        code, status = await call("POST", "unmount", {"force": True})
        assert code == 200 and not status["mounted"], status
        assert f"sleep (pid {shell.pid})" in status["busy_message"]
        assert not os.path.ismount(mountpoint)
    finally:
        shell.kill()
        shell.wait()


async def test_force_must_be_a_boolean(jp_serverapp, algofs_app, call):
    code, body = await call("POST", "unmount", {"force": "yes"})
    assert code == 400 and "force" in json.dumps(body)
