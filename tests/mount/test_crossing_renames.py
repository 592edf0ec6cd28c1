"""Two renames crossing each other's names (``a`` → ``b`` and ``b`` → ``a`` at the same moment) through the
staging registry, as ``Renames`` does them: without the rename locks (``WriteStaging.renaming``) each held
its source's ``StagedFile.lock`` across the server-side move and then waited in ``rekey`` for the other's:
a deadlock. No /dev/fuse, no server; a hang fails the test after a timeout instead of hanging the suite."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from algofs_jupyter.mount.recovery import RecoveryStore
from algofs_jupyter.mount.staged_file import StagedFile
from algofs_jupyter.mount.staging import WriteStaging

ROUNDS = 300
SECONDS = 3.0  # each thread stops after this long even if its rounds are not done
HANG_TIMEOUT = 20.0


def rename_like_renames(staging: WriteStaging, src: str, dst: str) -> None:
    """``Renames._move_file`` with an open staged file, the server-side move a short sleep."""
    with staging.renaming(src, dst):
        staged = staging.get(src)
        if staged is None:
            return
        with staged.lock:
            time.sleep(0.0005)  # the server-side move, a network call under the source's lock
            staging.rekey(src, dst)


def test_two_renames_crossing_each_others_names_do_not_deadlock(tmp_path: Path) -> None:
    staging = WriteStaging(tmp_path / "staging" / "1", RecoveryStore(tmp_path))
    opened: list[StagedFile] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def loop(src: str, dst: str) -> None:
        try:
            start.wait()
            deadline = time.monotonic() + SECONDS
            for _ in range(ROUNDS):
                if time.monotonic() > deadline:
                    break
                if staging.get(src) is None:  # a file open at both names, as often as possible
                    opened.append(staging.open(src, None, truncate=True, new=True))
                rename_like_renames(staging, src, dst)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=loop, args=("data/u/c/a", "data/u/c/b"), daemon=True),
               threading.Thread(target=loop, args=("data/u/c/b", "data/u/c/a"), daemon=True)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + HANG_TIMEOUT
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    hung = [thread.name for thread in threads if thread.is_alive()]
    assert hung == [], "crossing renames deadlocked"
    assert errors == []
    assert len(opened) > 2, len(opened)  # the renames did run
    for staged in opened:
        staging.release(staged)
    staging.close()
    assert staging._rename_locks == {}  # every rename lock entry is dropped when its last user is done
