"""The notebooks in notebooks/ run top to bottom in a real kernel (nbclient), in FUSE and in fallback mode.

Nothing is configured, as under ``jupyter execute``: the magics start the embedded demo server themselves.
Fallback mode is forced with ``ALGOFS_DISABLE_FUSE=1``. The assertions check what each notebook is there to
show, against the demo content on disk; the kernel's exit must leave no mount behind.
"""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient
from notebook_outputs import cell_output_text

import algofs_jupyter.server.demo
from algofs_jupyter.jupyter.fuse_check import fuse_unavailable_reason
from algofs_jupyter.mount.mount_table import is_algofs_mount
from algofs_jupyter.server.users import DEMO_USERS

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
DEMO_CONTENT = Path(algofs_jupyter.server.demo.__file__).parent / "content"
MODES = ["fuse", "fallback"]


def run_notebook(
    name: str, mode: str, tmp_path: Path, monkeypatch
) -> tuple[list[str], nbformat.NotebookNode]:
    if mode == "fuse" and fuse_unavailable_reason():
        pytest.skip(f"FUSE mode needs FUSE: {fuse_unavailable_reason()}")
    for key in [key for key in os.environ if key.startswith(("ALGORITHMIA_", "ALGOFS_"))]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jupyter-data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    if mode == "fallback":
        monkeypatch.setenv("ALGOFS_DISABLE_FUSE", "1")
    workdir = tmp_path / "work"
    workdir.mkdir()
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    for cell in notebook.cells:
        assert not cell.get("outputs"), f"{name}: outputs must be stripped in git"
    try:
        NotebookClient(notebook, timeout=180, kernel_name="python3",
                       resources={"metadata": {"path": str(workdir)}}).execute()  # fmt: skip
    finally:
        assert not is_algofs_mount(workdir / "algofs"), "the kernel's exit must unmount"
    saved = json.dumps(notebook)
    for key in DEMO_USERS.values():
        assert key not in saved, "an API key leaked into the notebook"
    texts = [cell_output_text(cell) for cell in notebook.cells if cell.cell_type == "code"]
    reason = "FUSE disabled by ALGOFS_DISABLE_FUSE"
    expected_mode = "AlgoFS mode: fuse at algofs/" if mode == "fuse" else f"AlgoFS mode: fallback ({reason})"
    assert any(expected_mode in text for text in texts), texts[:3]
    return texts, notebook


def find(texts: list[str], needle: str) -> str:
    matches = [text for text in texts if needle in text]
    assert matches, f"no output contains {needle!r}: {texts}"
    return matches[0]


@pytest.mark.parametrize("mode", MODES)
def test_getting_started(mode, tmp_path, monkeypatch):
    texts, _ = run_notebook("01-getting-started", mode, tmp_path, monkeypatch)
    cities = pd.read_csv(DEMO_CONTENT / "data/demo/datasets/cities.csv")
    big = cities[cities.population > 20_000_000].sort_values("population", ascending=False)
    via = "via mount" if mode == "fuse" else "via api"
    assert "cities.csv" in find(texts, "data/demo/datasets: 3 entries") and via in find(texts, "entries")
    assert f"rows: {len(cities)} columns: {list(cities.columns)}" in "\n".join(texts)
    assert f"wrote {len(big)} rows; read back {len(big)} rows; first: {big.iloc[0]['city']}" in "\n".join(
        texts
    )
    # The write went to the API server's store, not to a local file.
    stored = tmp_path / "jupyter-data/algofs/demo-server/data/demo/scratch/big-cities.csv"
    assert pd.read_csv(stored)["city"].tolist() == big["city"].tolist()
    assert not (tmp_path / "work/algofs/data").exists() or mode == "fuse"
    status = find(texts, "user: demo")
    assert f"mode: {mode}" in status and "embedded demo server" in status


@pytest.mark.parametrize("mode", MODES)
def test_algorithms_as_pipes(mode, tmp_path, monkeypatch):
    texts, _ = run_notebook("02-algorithms-as-pipes", mode, tmp_path, monkeypatch)
    joined = "\n".join(texts)
    assert "words: 7 top: ['the', 3]" in joined
    assert "echoed: {'greeting': 'hello', 'n': 3}" in joined
    if mode == "fuse":
        answer = json.loads(find(texts, "via pipe file:").split("via pipe file:", 1)[1])
    else:
        line = find(texts, "no pipe files; via the API:")
        assert "fallback mode (FUSE disabled by ALGOFS_DISABLE_FUSE)" in line
        answer = ast.literal_eval(line.split("via the API:", 1)[1].strip())
    assert answer["words"] == 5 and answer["top"][0] == ["the", 2]


@pytest.mark.parametrize("mode", MODES)
def test_cache_and_widget(mode, tmp_path, monkeypatch):
    texts, notebook = run_notebook("03-cache-and-widget", mode, tmp_path, monkeypatch)
    planets = (DEMO_CONTENT / "data/demo/datasets/planets.json").stat().st_size
    assert f"read {planets} bytes twice; identical: True" in "\n".join(texts)
    after_read = texts[texts.index(find(texts, "identical: True")) + 1]
    if mode == "fuse":
        assert "1 file(s)" in after_read and f"fetched {planets} B" in after_read
    else:
        assert "fallback mode (FUSE disabled by ALGOFS_DISABLE_FUSE): no mount, no block cache" in after_read
    widget_cells = [
        cell
        for cell in notebook.cells
        if any(
            "application/vnd.jupyter.widget-view+json" in out.get("data", {})
            for out in cell.get("outputs", [])
        )
    ]
    assert widget_cells, "the widget did not render"
    assert "mode in the panel: True" in "\n".join(texts)
    assert "'demo/wordcount'" in find(texts, "algorithms:")


@pytest.mark.parametrize("mode", MODES)
def test_large_file(mode, tmp_path, monkeypatch):
    texts, _ = run_notebook("04-large-file", mode, tmp_path, monkeypatch)
    joined = "\n".join(texts)
    assert "large.bin: 1024 MiB" in joined
    assert joined.count("16 bytes, all zero: True") == 3
    via = "via mount" if mode == "fuse" else "via api"
    assert f"prefetched 1 file(s), 1.0 GiB {via}" in joined
    cache = texts[-1]
    if mode == "fuse":  # the demo server is on this machine: the file is read from its own file
        assert "read from the server's own files: 1.0 GiB, nothing cached" in cache, cache
        assert "fetched 0 B" in cache
    else:
        assert "no block cache" in cache
