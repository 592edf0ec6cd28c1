"""notebooks/00-publish-an-algorithm.ipynb runs top to bottom in a real kernel, with the embedded demo server
the magics start themselves (as under ``jupyter execute``)."""

from __future__ import annotations

import pytest
from test_demo_notebooks import find, run_notebook  # same folder (rootdir-style import, no __init__)


@pytest.mark.slow  # an embedded demo server of its own per run: ~70 s on this shared machine
@pytest.mark.parametrize("mode", ["fuse", "fallback"])
def test_publish_notebook(mode, tmp_path, monkeypatch):
    texts, notebook = run_notebook("00-publish-an-algorithm", mode, tmp_path, monkeypatch)
    joined = "\n".join(texts)
    assert "Published algo://demo/shout/0.1.0" in joined
    assert "shout: ARE YOU PONDERING WHAT I'M PONDERING? | words: 6" in joined
    assert "listed: True" in joined
    if mode == "fuse":
        assert '"shout": "NARF"' in find(texts, "via pipe file:").replace("'", '"')
    else:
        assert "'shout': 'NARF'" in find(texts, "via the API:")
    assert "Published algo://demo/shout/1.0.0" in joined
    assert "'shout': 'ZORT!'" in find(texts, "latest:")
    failed = [cell for cell in notebook.cells if "raises-exception" in cell.metadata.get("tags", [])][0]
    error = "\n".join(line for out in failed.outputs if out["output_type"] == "error"
                      for line in out["traceback"])
    assert "Build failed for demo/shout" in error and "SyntaxError" in error and "algofs_jupyter" not in error
    assert "True 1.1.0" in joined and "now: quiet please" in joined
