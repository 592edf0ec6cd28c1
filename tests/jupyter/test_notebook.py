"""A real kernel (nbclient) runs a notebook that uses AlgoFS the way a user would, with no API configured.

The magics must start the embedded demo server themselves, mount it, list, let pandas read a CSV through the
mount, pipe a cell to an algorithm and hand the result back through ``--out``. The kernel's exit must take the
mount and the server down with it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient
from notebook_outputs import cell_output_text

import algofs_jupyter.server.demo
from algofs_jupyter.server.users import DEMO_USERS

DEMO_CSV = Path(algofs_jupyter.server.demo.__file__).parent / "content/data/demo/datasets/cities.csv"

PIPED_TEXT = "the cat and the hat\nthe end"
CELLS = [
    "%load_ext algofs_jupyter",
    "%algofs mount",
    "%algofs ls data/demo/datasets",
    "import pandas as pd\n"
    "cities = pd.read_csv('algofs/data/demo/datasets/cities.csv')\n"
    "print('rows', len(cities), 'first', cities.iloc[0]['city'])",
    "%%algofs pipe demo/wordcount --out counts\n" + PIPED_TEXT,
    "print('words', counts['words'], 'top', counts['top'][0])",
    "%algofs cache",
    "%algofs status",
    "import algofs_jupyter\npanel = algofs_jupyter.widget()\npanel",
    "panel.wait_idle(60)\n"
    "print('algorithms', list(panel.algorithm_picker.options))\n"
    "print(panel.status_html.value)",
]


def kernel_env(tmp_path: Path) -> dict:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("ALGORITHMIA_", "ALGOFS_"))}
    env.update(
        JUPYTER_DATA_DIR=str(tmp_path / "jupyter-data"),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        ALGOFS_ALGORITHM_OWNERS="demo",
    )
    return env


@pytest.mark.fuse
def test_notebook_mounts_lists_reads_and_pipes(tmp_path, requires_fuse, no_stale_mounts, monkeypatch):
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in CELLS]
    workdir = tmp_path / "nb"
    workdir.mkdir()
    for key, value in kernel_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    for key in [key for key in os.environ if key.startswith(("ALGORITHMIA_", "ALGOFS_"))]:
        if key != "ALGOFS_ALGORITHM_OWNERS":
            monkeypatch.delenv(key)
    client = NotebookClient(notebook, timeout=180, kernel_name="python3",
                            resources={"metadata": {"path": str(workdir)}})  # fmt: skip
    client.execute()
    expected = pd.read_csv(DEMO_CSV)

    texts = [cell_output_text(cell) for cell in notebook.cells]
    assert "mode: fuse" in texts[1] and str(workdir / "algofs") in texts[1], texts[1]
    assert "embedded demo server" in texts[1]
    assert "cities.csv" in texts[2] and "via mount" in texts[2]
    assert f"rows {len(expected)} first {expected.iloc[0]['city']}" in texts[3]
    assert f"words {len(PIPED_TEXT.split())} top ['the', {PIPED_TEXT.split().count('the')}]" in texts[5]
    assert "cities.csv" in texts[6]
    assert "user: demo" in texts[7]
    widget_outputs = [output for output in notebook.cells[8].outputs if "data" in output]
    assert "application/vnd.jupyter.widget-view+json" in widget_outputs[0]["data"]
    assert "demo/wordcount" in texts[9] and "mode: fuse" in texts[9]

    saved = json.dumps(notebook)
    # the embedded server's keys are random (its 0600 users file); neither they nor the published ones leak
    users_file = tmp_path / "jupyter-data" / "algofs" / "demo-server" / "meta" / "embedded-users.json"
    random_keys = json.loads(users_file.read_text())["users"].values()
    assert not set(random_keys) & set(DEMO_USERS.values())
    for key in [*DEMO_USERS.values(), *random_keys]:
        assert key not in saved
    assert not (workdir / "algofs").is_mount()
