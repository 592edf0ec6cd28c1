"""An `algofs serve` started by EmbeddedServer goes away with its owner (a killed Jupyter server or kernel
used to leave it running for good: seen after the notebook tests)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

OWNER = """
import sys, time
from algofs_jupyter.server.embedded_server import EmbeddedServer
server = EmbeddedServer(sys.argv[1], large_file_mb=0).start(60)
print(server.pid, flush=True)
time.sleep(600)
"""


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGINT])
def test_embedded_server_stops_when_its_owner_dies(tmp_path, signum):
    owner = subprocess.Popen([sys.executable, "-c", OWNER, str(tmp_path / "root")], stdout=subprocess.PIPE,
                             text=True)
    server_pid = None
    try:
        server_pid = int(owner.stdout.readline())
        assert not gone(server_pid)
        owner.send_signal(signum)
        owner.wait(30)
        deadline = time.monotonic() + 30
        while not gone(server_pid):
            assert time.monotonic() < deadline, "algofs serve outlived the process that started it"
            time.sleep(0.1)
    finally:
        owner.kill()
        owner.wait()
        if server_pid and not gone(server_pid):
            os.kill(server_pid, signal.SIGKILL)
