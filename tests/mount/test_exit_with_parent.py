"""A mount started by MountProcess goes away with its owner (a SIGKILLed or SIGINTed Jupyter server);
the background `algofs mount` command's daemon does not (it outlives the command by design)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import psutil
import pytest

from algofs_jupyter.mount.mount_process import is_mounted

pytestmark = [pytest.mark.fuse, pytest.mark.skipif(
    not (os.path.exists("/dev/fuse") and shutil.which("fusermount3")), reason="needs /dev/fuse")]

OWNER = """
import os, sys, time
from algofs_jupyter.mount.mount_process import MountProcess
key = os.environ.pop("ALGORITHMIA_API_KEY")
process = MountProcess(sys.argv[1], sys.argv[2], key, cache_dir=sys.argv[3]).start(60)
print(process.pid, flush=True)
time.sleep(600)
"""


def eventually(condition, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGINT])
def test_mount_goes_away_when_its_owner_dies(api_server, tmp_path, signum):
    mountpoint = tmp_path / "mnt"
    env = dict(os.environ, ALGORITHMIA_API_KEY=api_server.api_key)
    owner = subprocess.Popen([sys.executable, "-c", OWNER, str(mountpoint), api_server.url,
                              str(tmp_path / "cache")], env=env, stdout=subprocess.PIPE, text=True)
    daemon_pid = None
    try:
        daemon_pid = int(owner.stdout.readline())
        assert is_mounted(str(mountpoint))
        owner.send_signal(signum)
        owner.wait(30)
        assert eventually(lambda: not is_mounted(str(mountpoint))), "the mount outlived its owner"
        assert eventually(lambda: not psutil.pid_exists(daemon_pid) or
                          psutil.Process(daemon_pid).status() == psutil.STATUS_ZOMBIE)
    finally:
        owner.kill()
        owner.wait()
        if daemon_pid and psutil.pid_exists(daemon_pid):
            os.kill(daemon_pid, signal.SIGTERM)
        subprocess.run(["fusermount3", "-u", "-z", str(mountpoint)], capture_output=True)


def test_background_mount_command_leaves_the_daemon_running(api_server, tmp_path):
    mountpoint = tmp_path / "mnt"
    env = dict(os.environ, ALGORITHMIA_API_KEY=api_server.api_key)
    done = subprocess.run([sys.executable, "-m", "algofs_jupyter", "mount", str(mountpoint), "--api-address",
                           api_server.url, "--cache-dir", str(tmp_path / "cache")],
                          env=env, capture_output=True, text=True, timeout=90)
    try:
        assert done.returncode == 0, done.stderr
        time.sleep(1.5)  # longer than the watcher's poll: it must not be watching this command
        assert is_mounted(str(mountpoint))
    finally:
        subprocess.run([sys.executable, "-m", "algofs_jupyter", "unmount", str(mountpoint)],
                       capture_output=True, timeout=60)
    assert eventually(lambda: not is_mounted(str(mountpoint)))
