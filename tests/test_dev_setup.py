"""`./dev.sh demo` sets up only what the demo needs; `./dev.sh test` everything (issue 25, item 9).

Both are asked for their plan (``ALGOFS_SETUP_PLAN=1``: print each step, install nothing), so the test runs in
seconds on any machine. The demo's Python extra must cover every module the demo notebooks import.
"""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent


def plan(command: str) -> list[str]:
    """The plan lines of ``./dev.sh COMMAND``; a dev.sh that ignores the plan variable is stopped."""
    proc = subprocess.Popen([str(ROOT / "dev.sh"), command],
                            env={**os.environ, "ALGOFS_SETUP_PLAN": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        raise AssertionError(f"./dev.sh {command} did not just plan within 60 s:\n{out[-2000:]}") from None
    assert proc.returncode == 0, out
    lines = [line.removeprefix("plan: ") for line in out.splitlines() if line.startswith("plan: ")]
    assert lines, f"./dev.sh {command} printed no plan:\n{out[-2000:]}"
    return lines


def test_the_demo_sets_up_less_than_the_tests() -> None:
    demo, test = plan("demo"), plan("test")
    demo_text = "\n".join(demo)
    assert "pip install -e .[demo]" in demo_text
    for not_for_the_demo in ("chromium", "rclone", "test,bench", "configurable-http-proxy"):
        assert not_for_the_demo not in demo_text, demo
    test_text = "\n".join(test)
    needed_by_tests = ("chromium", "rclone", "pip install -e .[test,bench]", "configurable-http-proxy",
                       "labextension")
    for needed in needed_by_tests:
        assert needed in test_text, test
    assert "labextension" in demo_text  # the panel is part of the demo


def _notebook_imports(path: Path) -> set[str]:
    modules: set[str] = set()
    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        if source.lstrip().startswith("%%"):  # a cell magic's body (an algorithm's source) is not run here
            continue
        source = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                modules.add(node.module.split(".")[0])
    return modules


def test_the_demo_extra_covers_the_demo_notebooks_imports() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {req.split(">")[0].split("=")[0].split("[")[0].strip().lower().replace("-", "_")
                for req in project["dependencies"] + project["optional-dependencies"]["demo"]}
    # jupyterlab brings ipykernel and IPython; the package itself is algofs_jupyter
    provided = declared | {"algofs_jupyter", "ipykernel", "IPython".lower()}
    imported = set()
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        imported |= _notebook_imports(notebook)
    third_party = {m for m in imported if m not in sys.stdlib_module_names}
    missing = {m for m in third_party if m.lower() not in provided}
    assert not missing, f"demo notebooks import {sorted(missing)}, which `./dev.sh demo` does not install"
    assert "pandas" in third_party  # the check above looked at real imports
