"""Staged algorithm code copies (what workers run from) do not pile up under /tmp forever."""

from __future__ import annotations

import os
import time

from algofs_jupyter.server import algo_sandbox


def make_algorithm(path, text: str):
    path.mkdir(parents=True)
    (path / "algorithm.py").write_text(f"def apply(input):\n    return {text!r}\n")
    return path


def test_copies_unused_for_a_week_are_removed_and_used_ones_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(algo_sandbox.tempfile, "gettempdir", lambda: str(tmp_path))
    monkeypatch.setattr(algo_sandbox, "_last_prune", [float("-inf")])
    old = algo_sandbox.stage_code(make_algorithm(tmp_path / "src" / "old", "old"))
    used = algo_sandbox.stage_code(make_algorithm(tmp_path / "src" / "used", "used"))
    week_ago = time.time() - algo_sandbox.STALE_CODE_SECONDS - 60
    for copy in (old, used):
        os.utime(copy / ".complete", (week_ago, week_ago))
    assert algo_sandbox.stage_code(tmp_path / "src" / "used") == used  # started again: marked as in use
    monkeypatch.setattr(algo_sandbox, "_last_prune", [float("-inf")])
    fresh = algo_sandbox.stage_code(make_algorithm(tmp_path / "src" / "new", "new"))
    assert not old.exists()
    assert (used / "algo" / "algorithm.py").read_text().endswith("return 'used'\n")
    assert (fresh / "algorithm_runner.py").is_file()
