"""Staged algorithm code copies (what workers run from): private to the server, and not kept forever."""

from __future__ import annotations

import os
import stat
import time

from algofs_jupyter.server.algo_staging import STALE_CODE_SECONDS, CodeStage


def make_algorithm(path, text: str):
    path.mkdir(parents=True)
    (path / "algorithm.py").write_text(f"def apply(input):\n    return {text!r}\n")
    return path


def test_copies_unused_for_a_week_are_removed_and_used_ones_kept(tmp_path):
    (tmp_path / "runtime").mkdir()
    stage = CodeStage(tmp_path / "runtime", shared_with_other_uids=False)
    old = stage.stage(make_algorithm(tmp_path / "src" / "old", "old"))
    used = stage.stage(make_algorithm(tmp_path / "src" / "used", "used"))
    week_ago = time.time() - STALE_CODE_SECONDS - 60
    for copy in (old, used):
        os.utime(copy / ".complete", (week_ago, week_ago))
    assert stage.stage(tmp_path / "src" / "used") == used  # started again: marked as in use
    assert stage.prune() == 1
    assert not old.exists()
    assert (used / "algo" / "algorithm.py").read_text().endswith("return 'used'\n")


def test_a_stage_for_one_uid_is_private_and_one_for_leased_uids_is_traversable_only(tmp_path):
    for shared, top, inner in ((False, 0o700, 0o700), (True, 0o711, 0o755)):
        runtime = tmp_path / f"runtime-{shared}"
        runtime.mkdir()
        stage = CodeStage(runtime, shared_with_other_uids=shared)
        copy = stage.stage(make_algorithm(tmp_path / f"src-{shared}", "x"))
        assert stat.S_IMODE(stage.root.stat().st_mode) == top
        assert stat.S_IMODE((copy / "algo").stat().st_mode) == inner
        assert stat.S_IMODE((copy / "algo" / "algorithm.py").stat().st_mode) == inner & 0o644
