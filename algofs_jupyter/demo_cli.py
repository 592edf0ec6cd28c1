"""``algofs demo``: JupyterLab on 127.0.0.1 whose AlgoFS extension mounts the embedded demo server.

JupyterLab runs as a child in its own process session, so Ctrl-C here becomes one SIGTERM to it:
jupyter_server then runs the extension's ``stop_extension`` (unmount, stop the embedded server) instead of
asking "Shutdown this Jupyter server (y/[n])?". JupyterLab runs in the demo root, so its terminals start
there (a terminal opened at the file browser's root gets no ``cwd`` and inherits the server's), where
``ls algofs`` works.

The demo's data (the embedded server's files, collections and published algorithm versions) lives in
``<jupyter data dir>/algofs/demo-server`` and persists between runs; ``--fresh`` deletes it first, so the
server seeds the demo content again.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

STOP_TIMEOUT = 30.0


def add_commands(sub) -> None:
    parser = sub.add_parser("demo", help="JupyterLab with AlgoFS mounted over the embedded demo API server")
    parser.add_argument("--port", type=int, default=8888, help="JupyterLab port on 127.0.0.1 (default 8888)")
    parser.add_argument(
        "--root-dir", default=str(Path.home() / "algofs-demo"), help="JupyterLab root directory (created)"
    )
    parser.add_argument(
        "--fresh", action="store_true",
        help="delete the demo data of earlier runs first (<jupyter data dir>/algofs/demo-server: files, "
        "collections, published algorithm versions); notebooks in the root dir are kept",
    )
    browser = parser.add_mutually_exclusive_group()
    browser.add_argument("--no-browser", dest="no_browser", action="store_true", default=None)
    browser.add_argument("--browser", dest="no_browser", action="store_false", help="open a browser tab")
    parser.set_defaults(func=run_demo)


def lab_command(args: argparse.Namespace) -> list[str]:
    no_browser = args.no_browser if args.no_browser is not None else not os.environ.get("DISPLAY")
    command = [
        sys.executable, "-m", "jupyterlab",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={args.port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={Path(args.root_dir).expanduser().resolve()}",
        # An explicit empty address: the embedded demo server, even if ALGORITHMIA_API is set.
        "--AlgofsApp.api_address=",
        "--AlgofsApp.embedded_server=True",
        "--AlgofsApp.auto_mount=True",
        # Without FUSE the file browser still shows ./algofs, served from the API.
        "--ServerApp.contents_manager_class=algofs_jupyter.jupyter.contents.AlgofsContentsManager",
    ]  # fmt: skip
    if no_browser:
        command.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")
    return command


def demo_data_dir() -> Path:
    """Where the embedded demo server keeps its content (AlgofsApp.embedded_root's default)."""
    from .jupyter.api_provider import default_data_dir  # jupyter_core: only when the demo runs

    return default_data_dir() / "demo-server"


def run_demo(args: argparse.Namespace) -> int:
    root = Path(args.root_dir).expanduser().resolve()
    data = demo_data_dir()
    if args.fresh:
        from .mount.mount_table import is_algofs_mount

        if is_algofs_mount(root / "algofs"):
            print(f"algofs demo: {root / 'algofs'} is mounted: a demo is running; stop it before --fresh",
                  file=sys.stderr)  # fmt: skip
            return 1
        if data.exists():
            shutil.rmtree(data)
            print(f"algofs demo: deleted the demo data of earlier runs ({data})", file=sys.stderr)
    root.mkdir(parents=True, exist_ok=True)
    env = {key: value for key, value in os.environ.items() if key != "ALGORITHMIA_API_KEY"}
    print(f"algofs demo: JupyterLab on http://127.0.0.1:{args.port}/ (root {root}, demo data {data}); "
          "Ctrl-C stops everything", file=sys.stderr)  # fmt: skip
    lab: subprocess.Popen | None = None
    stop_requested: list[int] = []

    def forward(signum, _frame):
        # Installed for SIGINT too: a shell starting us in the background leaves SIGINT ignored.
        if not stop_requested and lab is not None and lab.poll() is None:
            lab.send_signal(signal.SIGTERM)
        stop_requested.append(signum)

    stop_signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, forward) for sig in stop_signals}
    deadline = None
    try:
        # cwd: terminals opened at the file browser's root start where the server runs
        lab = subprocess.Popen(lab_command(args), env=env, cwd=root, start_new_session=True)
        if stop_requested:  # a signal arrived while starting
            lab.send_signal(signal.SIGTERM)
        while True:
            try:
                code = lab.wait(0.5)
                break
            except subprocess.TimeoutExpired:
                if stop_requested and deadline is None:
                    deadline = time.monotonic() + STOP_TIMEOUT
                if deadline is not None and time.monotonic() > deadline:
                    print("algofs demo: JupyterLab did not stop in time; killing it", file=sys.stderr)
                    lab.kill()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if lab is not None and lab.poll() is None:  # an unexpected exception above
            lab.kill()
            lab.wait()
    return 130 if signal.SIGINT in stop_requested else code
