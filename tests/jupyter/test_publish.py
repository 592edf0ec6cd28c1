"""Publishing a notebook cell as an algorithm: ``%%algofs publish`` in a real kernel (nbclient), the
Python call, and the result seen through a real mount and the listing the widget and panel use."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from notebook_outputs import cell_output_text

from algofs_jupyter.mount.mount_process import MountProcess, is_mounted
from algofs_jupyter.publish import PublishError, publish


def notebook(*cells: tuple[str, list[str]]) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source, metadata={"tags": tags}) for source, tags in cells]
    return nb


def test_publish_magic_in_a_real_kernel(api_server, api_key_file, tmp_path):
    name = "nb_" + uuid.uuid4().hex[:8]
    setup = (f"import os\nos.environ.update(ALGORITHMIA_API={api_server.url!r}, "
             f"ALGOFS_API_KEY_FILE={str(api_key_file)!r}, ALGOFS_USERNAME='demo', ALGOFS_DISABLE_FUSE='1')\n"
             "%load_ext algofs_jupyter")
    nb = notebook(
        (setup, []),
        (f"%%algofs publish demo/{name}\ndef apply(input):\n    return input * 2\n", []),
        (f"%%algofs pipe demo/{name} --json --out doubled\n21", []),
        ("print('doubled =', doubled)", []),
        (f"%%algofs publish demo/{name}\ndef apply(input:\n    return 1\n", ["raises-exception"]),
        (f"%%algofs publish demo/{name}\nimport no_such_module_xyz\n\ndef apply(input):\n    return 1\n",
         ["raises-exception"]),
        (f"%%algofs publish demo/{name} --version major\nx = 1\n", ["raises-exception"]),
        (f"from algofs_jupyter.publish import publish\nr = publish('demo/{name}', "
         "'def apply(input):\\n    return input + 1\\n', version='major')\nprint(r.ok, r.version)", []),
        ("from algofs_jupyter import get_access\n"
         f"print({name!r} in [a['name'] for a in get_access().list_algorithms()])", []),
    )
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    texts = [cell_output_text(cell) for cell in nb.cells]
    assert f"Published algo://demo/{name}/0.1.0" in texts[1]
    assert "doubled = 42" in texts[3]
    for text, expected in [(texts[4], "SyntaxError"), (texts[5], "ModuleNotFoundError"),
                           (texts[6], "defines no function apply")]:
        assert "Build failed" in text and expected in text, text
        assert re.search(r"\(build [0-9a-f-]{36}\)", text), text  # its log stays at .../builds/<id>/logs
        assert "algofs_jupyter" not in text and "site-packages" not in text  # no traceback from our code
        assert "algorithm_runner" not in text and "/run/algofs" not in text  # nor the sandboxed runner's
    assert "True 1.0.0" in texts[7]
    assert texts[8].strip() == "True"  # the listing behind the widget and the JupyterLab panel
    assert "sim-demo-key" not in json.dumps(nb)


def test_publish_errors_that_are_not_the_code(api_server):
    with pytest.raises(PublishError, match="user/name"):
        publish("no slash", "def apply(i): return i", api_address=api_server.url, api_key=api_server.api_key)
    with pytest.raises(PublishError, match="not authorized"):
        publish("anowell/mine", "def apply(i): return i", api_address=api_server.url,
                api_key=api_server.api_key)


@pytest.mark.fuse
@pytest.mark.slow  # a mount of its own: ~20 s on this shared machine
def test_published_algorithm_appears_in_the_mount_at_once(api_server, tmp_path):
    if not (os.path.exists("/dev/fuse") and shutil.which("fusermount3")):
        pytest.skip("needs /dev/fuse and fusermount3")
    name = "mnt_" + uuid.uuid4().hex[:8]
    process = MountProcess(tmp_path / "mnt", api_server.url, api_server.api_key, cache_dir=tmp_path / "cache")
    process.start(60)
    try:
        algorithms = Path(process.mountpoint) / "algorithms" / "demo"
        assert name not in os.listdir(algorithms)
        first = publish(f"demo/{name}", "def apply(input):\n    return 'v1:' + input\n",
                        api_address=api_server.url, api_key=api_server.api_key)
        assert first.ok, first.logs
        assert (algorithms / name).is_dir()
        assert "0.1.0" in os.listdir(algorithms / name)
        pipe = algorithms / name / "latest"
        done = subprocess.run(f"printf hi > {pipe} && cat {pipe}", shell=True, capture_output=True,
                              timeout=60)
        assert done.stdout.strip() == b"v1:hi", done.stderr
        second = publish(f"demo/{name}", "def apply(input):\n    return 'v2:' + input\n", version="major",
                         api_address=api_server.url, api_key=api_server.api_key)
        assert second.ok and second.version == "1.0.0"
        done = subprocess.run(f"printf hi > {pipe} && cat {pipe}", shell=True, capture_output=True,
                              timeout=60)
        assert done.stdout.strip() == b"v2:hi", done.stderr  # latest is the new version at once
    finally:
        process.stop()
        assert not is_mounted(process.mountpoint)
