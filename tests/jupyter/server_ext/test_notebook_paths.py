"""``algofs_jupyter.path(...)`` reads the same file from any notebook (issue 25, item 6).

The README's ``pd.read_csv("algofs/data/demo/datasets/cities.csv")`` fails in a notebook that lives inside
``algofs/`` (its working directory is that folder) and in fallback mode (nothing at ``algofs/``). The same
read through ``algofs_jupyter.path`` works in a kernel started inside the mount and in a fallback kernel.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import algofs_jupyter.server.demo
from algofs_jupyter.jupyter.notebook_paths import layout_path

DEMO_CSV = Path(algofs_jupyter.server.demo.__file__).parent / "content/data/demo/datasets/cities.csv"
READ = (
    "import algofs_jupyter, pandas as pd\n"
    "where = algofs_jupyter.path('data://demo/datasets/cities.csv')\n"
    "frame = pd.read_csv(where)\n"
    "answer = {'where': where, 'rows': len(frame), 'first': str(frame.iloc[0, 0])}\n"
)


async def _run(jp_serverapp, jp_fetch, notebook: str, code: str, out: Path) -> dict:
    """Run ``code`` (which sets ``answer``) in the kernel of a new session for ``notebook``."""
    response = await jp_fetch("api", "sessions", method="POST", body=json.dumps(
        {"path": notebook, "type": "notebook", "name": Path(notebook).name, "kernel": {"name": "python3"}}))
    session = json.loads(response.body)
    client = jp_serverapp.kernel_manager.get_kernel(session["kernel"]["id"]).client()
    client.start_channels()
    try:
        code += f"import json\nopen({str(out)!r}, 'w').write(json.dumps(answer))\n"
        msg_id = client.execute(code, store_history=False)
        while True:
            reply = await client.get_shell_msg(timeout=120)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        assert reply["content"]["status"] == "ok", reply["content"].get("traceback")
        return json.loads(out.read_text())
    finally:
        client.stop_channels()
        await jp_fetch("api", "sessions", session["id"], method="DELETE")


def test_names_in_the_layout() -> None:
    assert layout_path("data://demo/datasets/x.csv") == "data/demo/datasets/x.csv"
    assert layout_path("algo://data/demo/x.csv") == "data/demo/x.csv"
    assert layout_path("/data/demo/x.csv") == "data/demo/x.csv"
    assert layout_path("s3://bucket/key.csv") == "s3/bucket/key.csv"


@pytest.mark.fuse
async def test_a_notebook_inside_the_mount_reads_through_path(
    jp_serverapp, jp_fetch, algofs_app, call, requires_fuse, no_stale_mounts, tmp_path
):
    await jp_serverapp.extension_manager.start_all_extensions()  # publishes the API and mount for kernels
    code, status = await call("POST", "mount", {})
    assert code == 200 and status["mounted"], status
    expected = DEMO_CSV.read_text().splitlines()
    answer = await _run(jp_serverapp, jp_fetch, "algofs/data/demo/datasets/inside.ipynb", READ,
                        tmp_path / "answer.json")
    assert answer["where"] == f"{status['mountpoint_abs']}/data/demo/datasets/cities.csv"
    assert answer["rows"] == len(expected) - 1 and answer["first"] == expected[1].split(",")[0]
    # what the README said before: relative to the notebook's folder, which is inside the mount
    broken = await _run(jp_serverapp, jp_fetch, "algofs/data/demo/datasets/inside.ipynb",
                        "import os\nanswer = os.path.exists('algofs/data/demo/datasets/cities.csv')\n",
                        tmp_path / "answer.json")
    assert broken is False


@pytest.fixture
def fallback(monkeypatch):
    monkeypatch.setenv("ALGOFS_DISABLE_FUSE", "1")


async def test_a_fallback_kernel_reads_through_path(fallback, jp_serverapp, jp_fetch, algofs_app, tmp_path):
    await jp_serverapp.extension_manager.start_all_extensions()  # publishes the API for kernels
    expected = DEMO_CSV.read_text().splitlines()
    answer = await _run(jp_serverapp, jp_fetch, "fallback.ipynb", READ, tmp_path / "answer.json")
    assert answer["where"] == "algo://data/demo/datasets/cities.csv"
    assert answer["rows"] == len(expected) - 1 and answer["first"] == expected[1].split(",")[0]
