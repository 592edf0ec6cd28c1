"""``algofs demo`` end to end: JupyterLab comes up with the demo mounted; Ctrl-C/SIGTERM stops it all."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import requests

from algofs_jupyter.mount.mount_table import is_algofs_mount


def demo_env(tmp_path: Path) -> dict:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("ALGORITHMIA_", "ALGOFS_"))}
    for name in ("home", "data", "runtime", "config", "cache"):
        (tmp_path / name).mkdir(exist_ok=True)  # a second run in the same tmp_path
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
        leftovers = family + processes_mentioning(tmp_path) + (
            [psutil.Process(demo.pid)] if demo.poll() is None else [])
        for process in leftovers:
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass



@contextlib.contextmanager
def running_demo(tmp_path: Path, port: int, root: Path, *flags: str) -> Iterator[tuple[psutil.Process, str]]:
    """``algofs demo`` started from another directory (as ./dev.sh starts it from the repository), mounted:
    its JupyterLab process and token. Stopped as Ctrl-C stops it (unmount first), also after a failure."""
    log_path = tmp_path / "demo.log"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(exist_ok=True)
    command = [sys.executable, "-m", "algofs_jupyter", "demo", "--port", str(port), "--root-dir", str(root)]
    env = demo_env(tmp_path)
    for old in Path(env["JUPYTER_RUNTIME_DIR"]).glob("jpserver-*"):
        old.unlink()
    with open(log_path, "ab") as log:
        demo = subprocess.Popen(
            [*command, *flags], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=elsewhere
        )
    try:
        token = wait_for_token(Path(env["JUPYTER_RUNTIME_DIR"]), demo, log_path)
        deadline = time.monotonic() + 120
        while not is_algofs_mount(root / "algofs"):
            assert demo.poll() is None and time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.3)
        yield psutil.Process(demo.pid).children()[0], token
    finally:
        family = psutil.Process(demo.pid).children(recursive=True) if demo.poll() is None else []
        demo.send_signal(signal.SIGTERM)
        try:
            demo.wait(60)
        except subprocess.TimeoutExpired:
            pass
        _gone, alive = psutil.wait_procs(family, timeout=15)
        # a demo that died early leaves its JupyterLab (and that one's server) orphaned: find them by path
        for process in alive + processes_mentioning(tmp_path) + (
                [psutil.Process(demo.pid)] if demo.poll() is None else []):
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass
    assert not is_algofs_mount(root / "algofs")


def processes_mentioning(path: Path) -> list[psutil.Process]:
    """Processes whose command line names ``path`` (a test's own temporary directory)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if process.pid != os.getpid() and any(str(path) in part for part in process.info["cmdline"] or []):
            found.append(process)
    return found


def wait_for_token(runtime: Path, demo: subprocess.Popen, log: Path) -> str:
    """The token of the demo's JupyterLab, from its runtime file (``jpserver-PID.json``)."""
    deadline = time.monotonic() + 120
    while True:
        for info in runtime.glob("jpserver-*.json"):
            try:
                return json.loads(info.read_text())["token"]
            except (ValueError, KeyError):
                pass  # being written
        assert demo.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.3)


def new_children(parent: psutil.Process, before: set[int], timeout: float = 60) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fresh = [child for child in parent.children() if child.pid not in before]
        if fresh:
            return fresh
        time.sleep(0.2)
    raise AssertionError("no new child process")


@pytest.mark.fuse
def test_terminals_and_kernels_start_in_the_demo_root(tmp_path, free_port, requires_fuse, no_stale_mounts):
    """Issue 25, item 2: Launcher → Terminal (no ``cwd`` when the file browser is at the root) started in
    the directory ``algofs demo`` was started from (the repository under ``./dev.sh demo``), so the README's
    ``ls algofs/data/demo`` failed there."""
    root = (tmp_path / "lab").resolve()
    with running_demo(tmp_path, free_port, root) as (lab, token):
        api = f"http://127.0.0.1:{free_port}/api"
        headers = {"Authorization": f"token {token}"}

        before = {child.pid for child in lab.children()}
        # what Launcher → Terminal sends while the file browser shows the root: no cwd
        response = requests.post(f"{api}/terminals", json={}, headers=headers, timeout=30)
        assert response.status_code == 200, response.text
        shell = new_children(lab, before)[0]
        assert Path(shell.cwd()) == root
        assert (Path(shell.cwd()) / "algofs" / "data" / "demo" / "datasets").is_dir()  # `ls algofs/data/demo`

        before = {child.pid for child in lab.children()}
        body = {"path": "probe.ipynb", "name": "probe.ipynb", "type": "notebook"}
        body["kernel"] = {"name": "python3"}
        response = requests.post(f"{api}/sessions", json=body, headers=headers, timeout=60)
        assert response.status_code == 201, response.text
        kernel = [child for child in new_children(lab, before) if "ipykernel" in " ".join(child.cmdline())]
        assert Path(kernel[0].cwd()) == root


@pytest.mark.fuse
def test_fresh_starts_from_the_demo_content(tmp_path, free_port, requires_fuse, no_stale_mounts):
    """The demo data persists between runs (a file written in one run is there in the next); ``--fresh``
    deletes it, and the server seeds the demo content again."""
    root = (tmp_path / "lab").resolve()
    written = root / "algofs" / "data" / "demo" / "datasets" / "mine.txt"
    with running_demo(tmp_path, free_port, root):
        written.write_text("from an earlier run\n")
    data = tmp_path / "data" / "algofs" / "demo-server"
    assert data.is_dir()
    with running_demo(tmp_path, free_port, root, "--fresh"):
        assert not written.exists()
        assert (root / "algofs" / "data" / "demo" / "datasets" / "cities.csv").is_file()
    assert "deleted the demo data of earlier runs" in (tmp_path / "demo.log").read_text()
