"""salvage_staging on its own: claims of dead daemons become recovery entries, live daemons' are kept."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from algofs_jupyter.mount.recovery import RecoveryStore
from algofs_jupyter.mount.staging import WriteStaging, salvage_staging


def dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_a_live_daemons_folder_is_left_alone(tmp_path: Path) -> None:
    live = tmp_path / "staging" / str(os.getppid())
    live.mkdir(parents=True)
    (live / "staged-1").write_bytes(b"in use")
    (live / "staged-1.claim").write_text('{"path": "data/u/c/x", "api_address": ""}')
    dead = tmp_path / "staging" / str(dead_pid())
    dead.mkdir()
    (dead / "staged-1").write_bytes(b"clean, uploaded")  # no claim: nothing to keep
    assert salvage_staging(tmp_path / "staging", RecoveryStore(tmp_path)) == []
    assert (live / "staged-1").read_bytes() == b"in use"
    assert not dead.exists()


def test_an_unreadable_claim_keeps_its_folder(tmp_path: Path) -> None:
    dead = tmp_path / "staging" / str(dead_pid())
    dead.mkdir(parents=True)
    (dead / "staged-1").write_bytes(b"bytes")
    (dead / "staged-1.claim").write_text("{not json")
    assert salvage_staging(tmp_path / "staging", RecoveryStore(tmp_path)) == []
    assert (dead / "staged-1").read_bytes() == b"bytes"


def test_bytes_salvage_could_not_save_are_kept_aside_not_reused(tmp_path: Path) -> None:
    """A new daemon whose pid owned a folder that salvage had to keep moves it aside; the next salvage
    (recovery folder writable again) saves the bytes."""
    base = tmp_path / "staging"
    mine = base / str(os.getpid())
    mine.mkdir(parents=True)
    (mine / "staged-1").write_bytes(b"unsaved")
    (mine / "staged-1.claim").write_text('{"path": "data/u/c/kept.txt", "api_address": ""}')
    recovery = RecoveryStore(tmp_path)
    recovery.directory.parent.mkdir(parents=True, exist_ok=True)
    recovery.directory.write_text("not a directory")  # saving fails
    assert salvage_staging(base, recovery) == []
    staging = WriteStaging(mine, recovery)
    staged = staging.open("data/u/c/new.txt", None, truncate=False, new=True)
    staged.pwrite(b"new", 0)  # staged-1 again, in a fresh folder: the kept bytes are untouched
    [aside] = [p for p in base.iterdir() if p != mine]
    assert (aside / "staged-1").read_bytes() == b"unsaved"
    staging.release(staged)  # this daemon's own file is done with (salvage would count our pid as gone)
    staging.close()
    recovery.directory.unlink()
    assert salvage_staging(base, recovery) == ["data/u/c/kept.txt"]
    assert [e.data_file.read_bytes() for e in recovery.entries()] == [b"unsaved"]
