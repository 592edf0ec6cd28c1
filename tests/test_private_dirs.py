"""``private_dirs`` with real local accounts: a non-root user whose stable runtime name another account took
first (a 0700 directory it cannot even open, or a link) still gets a private directory of its own, the
same one on every call (recorded in its home), and other processes of its own find it; and the directories
``make_private_dirs`` makes are 0700 under umask 022.

The victim runs Debian's ``/usr/bin/python3`` on a world-readable copy of ``private_dirs.py`` (stdlib only):
the project's venv lives under ``/root``, which other accounts cannot read.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hub.hub_deployment import Account, local_accounts, run_as

from algofs_jupyter import private_dirs
from algofs_jupyter.private_dirs import NotPrivate, make_private_dirs

SQUATTER, VICTIM = "algofsprv1", "algofsprv2"
SYSTEM_PYTHON = "/usr/bin/python3"

VICTIM_SCRIPT = """
import json, os, sys, tempfile
sys.path.insert(0, sys.argv[1])
import private_dirs
tempfile.tempdir = sys.argv[2]
record = os.path.join(os.environ["HOME"], ".cache", "algofs", "runtime-dir")
name = "algofs-%d" % os.getuid()
first = private_dirs.private_runtime_dir(name, record=record)
again = private_dirs.private_runtime_dir(name, record=record)
found = private_dirs.find_runtime_dirs(name, record)
print(json.dumps({"first": str(first), "again": str(again), "found": [str(p) for p in found],
                  "record": record}))
"""

needs_accounts = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("useradd") or not os.access(SYSTEM_PYTHON, os.X_OK),
    reason="creates local accounts (root, useradd) and runs /usr/bin/python3 as one")


@pytest.fixture(scope="module")
def accounts() -> Iterator[dict[str, Account]]:
    with local_accounts([SQUATTER, VICTIM]) as made:
        yield made


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A world-writable sticky directory like /tmp, holding a world-readable copy of private_dirs.py."""
    path = Path(tempfile.mkdtemp(prefix="algofs-shared-tmp-", dir="/tmp"))
    os.chmod(path, 0o1777)
    lib = path / "lib"
    lib.mkdir()
    shutil.copy(private_dirs.__file__, lib / "private_dirs.py")
    os.chmod(lib, 0o755)
    os.chmod(lib / "private_dirs.py", 0o644)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@needs_accounts
@pytest.mark.parametrize("squat", ["directory-0700", "link"])
def test_a_squatted_runtime_name_gives_a_user_a_recorded_private_directory(
        squat: str, accounts: dict[str, Account], shared_tmp: Path) -> None:
    squatter, victim = accounts[SQUATTER], accounts[VICTIM]
    stable = shared_tmp / f"algofs-{victim.uid}"
    if squat == "directory-0700":
        assert run_as(squatter, "mkdir", "-m", "0700", str(stable)).returncode == 0
    else:
        assert run_as(squatter, "mkdir", "-m", "0777", str(shared_tmp / "squatters")).returncode == 0
        assert run_as(squatter, "ln", "-s", str(shared_tmp / "squatters"), str(stable)).returncode == 0
    before = (os.lstat(stable), sorted(os.listdir(stable)))

    done = run_as(victim, SYSTEM_PYTHON, "-c", VICTIM_SCRIPT, str(shared_tmp / "lib"), str(shared_tmp))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    first = Path(result["first"])
    assert result["again"] == result["first"] and result["found"] == [result["first"]]
    assert first.parent == shared_tmp and first.name.startswith(f"algofs-{victim.uid}-")
    info = os.lstat(first)
    assert stat.S_ISDIR(info.st_mode) and info.st_uid == victim.uid and stat.S_IMODE(info.st_mode) == 0o700
    record = Path(result["record"])
    assert os.lstat(record).st_uid == victim.uid and stat.S_IMODE(os.lstat(record).st_mode) == 0o600
    for level in (record.parent, record.parent.parent):  # ~/.cache and ~/.cache/algofs, made by it
        assert stat.S_IMODE(os.lstat(level).st_mode) == 0o700
    assert (os.lstat(stable), sorted(os.listdir(stable))) == before, "the squatter's path was changed"


def test_make_private_dirs_makes_every_new_level_0700_and_refuses_links(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        made = make_private_dirs(tmp_path / "a" / "b" / "c")
        levels = (made.parent.parent, made.parent, made)
        assert [stat.S_IMODE(os.lstat(p).st_mode) for p in levels] == [0o700] * 3
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir(mode=0o755)
        os.chmod(elsewhere, 0o755)
        (tmp_path / "link").symlink_to(elsewhere)
        with pytest.raises(NotPrivate):
            make_private_dirs(tmp_path / "link")
        assert stat.S_IMODE(os.stat(elsewhere).st_mode) == 0o755 and not os.listdir(elsewhere)
        assert make_private_dirs(elsewhere, check_existing=False) == elsewhere
        assert stat.S_IMODE(os.stat(elsewhere).st_mode) == 0o755
    finally:
        os.umask(previous)
