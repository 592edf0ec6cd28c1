"""``algofs demo`` end to end: JupyterLab comes up with the demo mounted; Ctrl-C/SIGTERM stops it all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import requests

from algofs_jupyter.mount.mount_table import is_algofs_mount


def demo_env(tmp_path: Path) -> dict:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("ALGORITHMIA_", "ALGOFS_"))}
    for name in ("home", "data", "runtime", "config", "cache"):
        (tmp_path / name).mkdir()
    env.update(
        HOME=str(tmp_path / "home"),
        JUPYTER_DATA_DIR=str(tmp_path / "data"),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
        JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
    )
    env.pop("DISPLAY", None)
    return env


@pytest.mark.fuse
@pytest.mark.parametrize(
    ("stop_signal", "sigint_ignored"),
    [(signal.SIGINT, False), (signal.SIGTERM, False), (signal.SIGINT, True)],
    ids=["ctrl-c", "sigterm", "sigint-after-background-shell-start"],
)
def test_demo_mounts_and_stops_cleanly(
    tmp_path, free_port, stop_signal, sigint_ignored, requires_fuse, no_stale_mounts
):
    root = tmp_path / "lab"
    log = open(tmp_path / "demo.log", "wb")  # closed in finally
    command = [sys.executable, "-m", "algofs_jupyter", "demo", "--port", str(free_port)]
    command += ["--root-dir", str(root)]
    # `cmd &` in a non-interactive shell starts the command with SIGINT ignored.
    ignore_sigint = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint_ignored else None
    demo = subprocess.Popen(
        command, env=demo_env(tmp_path), stdout=log, stderr=subprocess.STDOUT, preexec_fn=ignore_sigint
    )
    family: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 120
        while not is_algofs_mount(root / "algofs"):
            assert demo.poll() is None, (tmp_path / "demo.log").read_text()[-3000:]
            assert time.monotonic() < deadline, (tmp_path / "demo.log").read_text()[-3000:]
            time.sleep(0.3)
        assert (root / "algofs" / "data" / "demo" / "datasets" / "cities.csv").is_file()
        # The REST API is there, behind Jupyter's authentication.
        response = requests.get(f"http://127.0.0.1:{free_port}/algofs/status", timeout=10)
        assert response.status_code == 403
        family = psutil.Process(demo.pid).children(recursive=True)
        assert len(family) >= 3  # JupyterLab, `algofs serve`, `algofs mount`

        demo.send_signal(stop_signal)
        demo.wait(60)
        assert not is_algofs_mount(root / "algofs")
        _gone, alive = psutil.wait_procs(family, timeout=15)
        assert not alive, f"left running: {[process.cmdline() for process in alive]}"
    finally:
        log.close()
        leftovers = family + ([psutil.Process(demo.pid)] if demo.poll() is None else [])
        for process in leftovers:
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass
