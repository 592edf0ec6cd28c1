"""The built wheel alone gives JupyterLab an enabled, OK ``algofs-jupyter`` extension.

Builds the wheel from a clean copy of the sources (no prebuilt ``algofs_jupyter/labextension``, no
``node_modules``), so the hatch-jupyter-builder hook really runs ``jlpm install`` + ``build:prod``;
then does a plain ``pip install <wheel>`` (with its dependencies, from pip's cache/PyPI) into a
fresh venv and runs that venv's ``jupyter labextension list``. Measured here: ~20 s wheel build,
~25 s install (a ``.pth`` onto the shared venv would save ~20 s but would not be a plain install).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="needs node to build the extension")


def _source_files() -> list[str]:
    """Tracked and untracked-but-not-ignored files, i.e. what a fresh clone plus local edits holds."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    skip = ("labextension/ui-tests/", "bench/", "notebooks/", "tests/")
    return [name for name in listed if not name.startswith(skip) and (REPO / name).is_file()]


def _clean_copy(dest: Path) -> Path:
    for name in _source_files():
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target)
    assert not (dest / "algofs_jupyter" / "labextension").exists()
    return dest


def _clean_env(home: Path, venv_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTER", "PIP_", "VIRTUAL_ENV"))}
    env["HOME"] = str(home)  # no user-level labextensions can leak in
    env["PATH"] = f"{venv_dir / 'bin'}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["VIRTUAL_ENV"] = str(venv_dir)
    return env


def _listing_sections(output: str) -> dict[str, str]:
    """`jupyter labextension list` prints one block per data dir: the path line, then its extensions."""
    sections: dict[str, str] = {}
    current = None
    for line in output.splitlines():
        stripped = line.strip()
        if stripped.startswith("/") and stripped.endswith("labextensions"):
            current = stripped
            sections[current] = ""
        elif current:
            sections[current] += line + "\n"
    return sections


@pytest.mark.slow
def test_wheel_installs_an_enabled_labextension(tmp_path: Path) -> None:
    src = _clean_copy(tmp_path / "src")
    wheels = tmp_path / "wheels"
    home = tmp_path / "home"
    home.mkdir()
    venv_dir = tmp_path / "fresh-venv"
    env = _clean_env(home, venv_dir)
    # Keep the yarn download cache warm across HOME changes: the registry is the slow part.
    env["YARN_CACHE_FOLDER"] = str(Path.home() / ".yarn" / "berry" / "cache")

    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "-w", str(wheels)],
        cwd=src,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-4000:]
    (wheel,) = wheels.glob("algofs_jupyter-*.whl")
    assert (src / "algofs_jupyter" / "labextension" / "static" / "style.js").is_file(), "hook did not build"

    venv.EnvBuilder(with_pip=True).create(venv_dir)
    fresh_python = venv_dir / "bin" / "python"
    install = subprocess.run(
        [fresh_python, "-m", "pip", "install", "-q", str(wheel)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stdout[-4000:] + install.stderr[-4000:]
    assert not (venv_dir / "share/jupyter/labextensions/algofs-jupyter").is_symlink()
    assert (venv_dir / "share/jupyter/labextensions/algofs-jupyter/install.json").is_file()

    listing = subprocess.run(
        [venv_dir / "bin" / "jupyter", "labextension", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = re.sub(r"\x1b\[[0-9;]*m", "", listing.stdout + listing.stderr)
    assert listing.returncode == 0, output
    sections = _listing_sections(output)
    fresh_dir = str(venv_dir / "share" / "jupyter" / "labextensions")
    assert fresh_dir in sections, output
    assert re.search(r"algofs-jupyter v\S+ enabled\s+OK", sections[fresh_dir]), output
    # Only the fresh venv provides it: not the shared dev venv's symlink, not a user dir.
    others = "".join(body for path, body in sections.items() if path != fresh_dir)
    assert "algofs-jupyter" not in others, output
