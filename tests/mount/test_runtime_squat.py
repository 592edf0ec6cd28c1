"""Issue 22, finding 6: another local account creates ``<tmp>/algofs-<uid>`` (a directory, or a symbolic link
to a directory) before the victim's first ``algofs mount``. The mount must still work, ``algofs status`` must
still find its control socket, and nothing may be created in, or chmodded on, the squatter's path.

Real parts: a second local account (``useradd``, removed with ``userdel`` also on failure), a world-writable
sticky directory standing in for ``/tmp`` (``TMPDIR``: the real ``/tmp/algofs-0`` is used by other tests'
mounts), the real ``algofs mount`` / ``status`` / ``unmount`` commands and a real ``algofs serve``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hub.hub_deployment import Account, local_accounts, run_as
from waiting import wait_until

from algofs_jupyter.mount.mount_process import fusermount, is_mounted
from algofs_jupyter.server.embedded_server import EmbeddedServer

from .conftest import fuse_available

SQUATTER = "algofssquat1"

pytestmark = [
    pytest.mark.fuse,
    pytest.mark.skipif(os.geteuid() != 0, reason="creates a local account: needs root"),
    pytest.mark.skipif(not shutil.which("useradd"), reason="needs useradd"),
    pytest.mark.skipif(not fuse_available(), reason="needs /dev/fuse and fusermount3"),
]


@pytest.fixture(scope="module")
def squatter() -> Iterator[Account]:
    with local_accounts([SQUATTER]) as accounts:
        yield accounts[SQUATTER]


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A directory like ``/tmp``: root's, mode 1777 (every account may create names in it)."""
    path = Path(tempfile.mkdtemp(prefix="algofs-shared-tmp-", dir="/tmp"))
    os.chmod(path, 0o1777)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)  # rmtree removes links, never follows them


def as_squatter(account: Account, *cmd: str) -> None:
    done = run_as(account, *cmd)
    assert done.returncode == 0, done.stderr


def snapshot(path: Path) -> dict:
    """What the squatter's name is and holds: the link itself, and the directory it ends at."""
    link = os.lstat(path)
    target = os.stat(path)
    return {"link_mode": link.st_mode, "link_uid": link.st_uid,
            "points_to": os.readlink(path) if stat.S_ISLNK(link.st_mode) else None,
            "target_mode": target.st_mode, "target_uid": target.st_uid,
            "target_entries": sorted(os.listdir(path))}


def algofs(env: dict[str, str], *args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "algofs_jupyter", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.parametrize("squat", ["directory", "link-to-squatters-directory", "link-to-root-directory"])
def test_a_squatted_runtime_directory_neither_stops_the_mount_nor_is_touched(
        squat: str, squatter: Account, shared_tmp: Path, local_api_server: EmbeddedServer,
        tmp_path: Path) -> None:
    stable = shared_tmp / f"algofs-{os.getuid()}"
    if squat == "directory":
        as_squatter(squatter, "mkdir", "-m", "0777", str(stable))
    elif squat == "link-to-squatters-directory":
        as_squatter(squatter, "mkdir", "-m", "0755", str(shared_tmp / "squatters"))
        as_squatter(squatter, "ln", "-s", str(shared_tmp / "squatters"), str(stable))
    else:  # a public directory of root's: following the link would chmod it and put the socket there
        public = shared_tmp / "public"
        public.mkdir()
        os.chmod(public, 0o755)
        as_squatter(squatter, "ln", "-s", str(public), str(stable))
    before = snapshot(stable)

    env = {k: v for k, v in os.environ.items()
           if k not in ("XDG_RUNTIME_DIR", "ALGOFS_RUNTIME_DIR", "ALGORITHMIA_API_KEY")}
    env.update(TMPDIR=str(shared_tmp), XDG_CACHE_HOME=str(tmp_path / "xdg-cache"),
               ALGORITHMIA_API_KEY=local_api_server.api_key)
    mountpoint = tmp_path / "mnt"
    daemon_pid = None
    try:
        mounted = algofs(env, "mount", str(mountpoint), "--api-address", str(local_api_server.url),
                         "--cache-dir", str(tmp_path / "cache"), "--log-file", str(tmp_path / "mount.log"))
        assert mounted.returncode == 0, mounted.stderr + (tmp_path / "mount.log").read_text(errors="replace")
        assert "demo" in os.listdir(mountpoint / "data")

        status = algofs(env, "status", str(mountpoint), "--json")
        assert status.returncode == 0, status.stdout + status.stderr
        answer = json.loads(status.stdout)
        assert answer["state"] == "mounted" and answer["username"] in (None, "demo")
        daemon_pid = answer["pid"]

        # The socket went to a fresh private directory, recorded in the user's own cache directory.
        record = tmp_path / "xdg-cache" / "algofs" / "runtime-dir"
        fallback = Path(record.read_text().strip())
        assert fallback.parent == shared_tmp and fallback.name.startswith(f"algofs-{os.getuid()}-")
        info = os.lstat(fallback)
        assert stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid()
        assert stat.S_IMODE(info.st_mode) == 0o700
        assert [p.suffix for p in fallback.iterdir()] == [".sock"]
        assert stat.S_IMODE(os.stat(record).st_mode) == 0o600

        assert snapshot(stable) == before, "the squatter's path was changed"

        unmounted = algofs(env, "unmount", str(mountpoint))
        assert unmounted.returncode == 0, unmounted.stderr
        assert wait_until(lambda: list(fallback.iterdir()) == [], 20), "the socket outlived its daemon"
        daemon_pid = None  # gone by itself
        assert snapshot(stable) == before, "the squatter's path was changed"
    finally:
        if is_mounted(mountpoint):
            fusermount(mountpoint, lazy=True)
        if daemon_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(daemon_pid, signal.SIGKILL)
