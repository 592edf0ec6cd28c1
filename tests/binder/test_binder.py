"""Play Binder: the binder/ files build and launch a working AlgoFS Jupyter as a non-root user without FUSE.

``test_binder_launch`` follows repo2docker's order on a clean clone: a fresh venv, ``pip install -r
binder/requirements.txt``, ``binder/postBuild``, then ``binder/start jupyter lab`` as an unprivileged user.
The getting-started notebook then runs in a kernel of that server and ``/api/contents/algofs/...`` lists
through the fallback contents manager. ``test_repo2docker_accepts_binder`` asks repo2docker itself.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest
from jupyter_process import JupyterProcess
from remote_kernel import run_notebook_on_server

from algofs_jupyter.testing.ports import free_ports

REPO = Path(__file__).resolve().parents[2]
BINDER_USER = "algofsbinder"
PYTHON = "/usr/bin/python3.11" if os.path.exists("/usr/bin/python3.11") else sys.executable


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, (
        f"{command} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result


def clone_repo(destination: Path) -> Path:
    """The committed tree (what Binder sees), plus the local JupyterLab extension build if there is one."""
    run(["git", "clone", "--quiet", "--no-hardlinks", str(REPO), str(destination)])
    built = REPO / "algofs_jupyter/labextension/static/style.js"
    if built.exists():  # gitignored; without it postBuild's pip install builds the extension with node
        shutil.copytree(REPO / "algofs_jupyter/labextension", destination / "algofs_jupyter/labextension",
                        dirs_exist_ok=True)  # fmt: skip
    return destination


def binder_user() -> tuple[int, int]:
    if os.geteuid() != 0:
        return os.getuid(), os.getgid()  # already unprivileged
    try:
        entry = pwd.getpwnam(BINDER_USER)
    except KeyError:
        run(["useradd", "--no-create-home", "--shell", "/bin/bash", BINDER_USER])
        entry = pwd.getpwnam(BINDER_USER)
    return entry.pw_uid, entry.pw_gid


@pytest.fixture
def binder_dir():
    """World-traversable scratch dir (pytest's tmp dirs are 0700 root), removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="algofs-binder-", dir="/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def fuse_usable_by_others() -> bool:
    mode = os.stat("/dev/fuse").st_mode if os.path.exists("/dev/fuse") else 0
    return bool(mode & stat.S_IROTH and mode & stat.S_IWOTH)


def leftover_pids(uid: int) -> list[int]:
    if uid == os.getuid():
        return []
    listing = subprocess.run(["ps", "-o", "pid=", "-u", str(uid)], capture_output=True, text=True).stdout
    return [int(pid) for pid in listing.split()]


@pytest.mark.slow
def test_binder_launch(binder_dir):
    repo = clone_repo(binder_dir / "repo")
    venv, home = binder_dir / "venv", binder_dir / "home"
    home.mkdir()
    run([PYTHON, "-m", "venv", str(venv)])
    env = {"PATH": f"{venv}/bin:/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8",
           "VIRTUAL_ENV": str(venv), "TMPDIR": str(binder_dir)}  # fmt: skip
    # pip runs as root to reuse this machine's warm pip cache; Binder runs these as the notebook user.
    run([f"{venv}/bin/pip", "install", "-q", "-r", "binder/requirements.txt"], cwd=repo,
        env={**env, "HOME": os.environ.get("HOME", "/root")})  # fmt: skip
    post = run(
        ["bash", "binder/postBuild"],
        cwd=repo,
        env={**env, "PIP_CACHE_DIR": os.path.expanduser("~/.cache/pip")},
    )
    assert "postBuild: algofs-jupyter installed" in post.stdout
    assert (home / ".algofs/demo-server/data/demo/datasets/cities.csv").exists()
    uid, gid = binder_user()
    run(["chown", "-R", f"{uid}:{gid}", str(binder_dir)])

    port, demo_port = free_ports(2)
    launch_env = {**env, "ALGOFS_DEMO_PORT": str(demo_port), "ALGOFS_DEMO_LARGE_MB": "8"}
    if fuse_usable_by_others():
        # This host's /dev/fuse is world-writable; on mybinder.org there is none. Force what Binder gets.
        launch_env["ALGOFS_DISABLE_FUSE"] = "1"
    command = [str(repo / "binder/start"), f"{venv}/bin/jupyter", "lab", "--no-browser",
               "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
               "--IdentityProvider.token=binder-token"]  # fmt: skip
    server = JupyterProcess(command, port, "binder-token", launch_env, binder_dir / "jupyter.log",
                            preexec_user=(uid, gid), cwd=str(repo))  # fmt: skip
    server.start(timeout=180)
    try:
        status = server.wait_for(
            lambda: (s := server.get("/algofs/status").json()).get("api_address") and s, what="AlgoFS status"
        )
        assert status["mode"] == "fallback", status
        assert status["api_address"] == f"http://127.0.0.1:{demo_port}" and not status["embedded_server"]
        assert "sim-demo-key" not in server.log()

        listing = server.get("/api/contents/algofs/data/demo")
        assert listing.status_code == 200, listing.text
        assert {"datasets", "images", "large"} <= {child["name"] for child in listing.json()["content"]}

        notebook = run_notebook_on_server(server, "notebooks/01-getting-started.ipynb")
        texts = ["".join(o.get("text", "") or o.get("data", {}).get("text/plain", "") for o in cell.outputs)
                 for cell in notebook.cells if cell.cell_type == "code"]  # fmt: skip
        joined = "\n".join(texts)
        assert "AlgoFS mode: fallback (" in joined
        assert "rows: 25 columns:" in joined and "wrote 6 rows; read back 6 rows; first: Tokyo" in joined
        assert (home / ".algofs/demo-server/data/demo/scratch/big-cities.csv").exists()
        assert "sim-demo-key" not in joined
        # The notebook's write shows in the file browser through the fallback contents manager.
        scratch = server.get("/api/contents/algofs/data/demo/scratch").json()
        assert [child["name"] for child in scratch["content"]] == ["big-cities.csv"]
        # Everything binder/start launched runs as the unprivileged user.
        started = [" ".join(p.cmdline()) for p in psutil.Process(server.process.pid).children(recursive=True)]
        started.append(" ".join(psutil.Process(server.process.pid).cmdline()))
        assert any(" serve --demo" in line for line in started) and any("jupyter" in line for line in started)
        for pid in leftover_pids(uid) or [server.process.pid]:
            assert psutil.Process(pid).uids().real == uid
    finally:
        server.stop()  # SIGTERM to the launch's process group: jupyter and the `algofs serve` start left
        deadline = time.monotonic() + 15
        while (leftovers := leftover_pids(uid)) and time.monotonic() < deadline:
            time.sleep(0.3)
        described = [" ".join(psutil.Process(pid).cmdline()) for pid in leftovers if psutil.pid_exists(pid)]
        for pid in leftovers:
            os.kill(pid, 9)
    assert not leftovers, f"binder/start's processes outlived the server: {described}"


@pytest.mark.slow
def test_repo2docker_accepts_binder(binder_dir):
    tools = binder_dir / "r2d"
    run([PYTHON, "-m", "venv", str(tools)])
    install = subprocess.run(
        [f"{tools}/bin/pip", "install", "-q", "jupyter-repo2docker"], capture_output=True, text=True
    )
    if install.returncode != 0:
        pytest.skip(f"jupyter-repo2docker could not be installed: {install.stderr[-500:]}")
    repo = binder_dir / "repo"
    run(["git", "clone", "--quiet", str(REPO), str(repo)])
    result = run([f"{tools}/bin/jupyter-repo2docker", "--no-build", "--debug", "--user-id", "1000",
                  "--user-name", "jovyan", str(repo)])  # fmt: skip
    dockerfile = result.stdout + result.stderr
    assert "fuse3" in dockerfile and "nodejs" in dockerfile
    assert "binder/requirements.txt" in dockerfile
    assert "binder/postBuild" in dockerfile
    assert "binder/start" in dockerfile
    assert "3.11" in dockerfile
