"""The hub's key hand-over: keys stay stable, files stay private, and a user's planted symlinks cannot
make root write anywhere but the user's own key file."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from hub_deployment import local_accounts

from algofs_jupyter.hub_keys import ensure_user_key, hand_over_key

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="creates local accounts: needs root"),
    pytest.mark.skipif(not shutil.which("useradd"), reason="needs useradd"),
]


@pytest.fixture(scope="module")
def accounts():
    with local_accounts(["algofskey1"], system=["algofskeysvc"]) as made:
        yield made


def test_keys_are_minted_once_and_kept_private(accounts, tmp_path):
    users_file = tmp_path / "users.json"
    first = ensure_user_key(users_file, "algofskey1", owner="algofskeysvc")
    assert ensure_user_key(users_file, "algofskey1", owner="algofskeysvc") == first
    other = ensure_user_key(users_file, "someone_else", owner="algofskeysvc")
    assert other != first and len(first) >= 40
    assert json.loads(users_file.read_text())["users"] == {"algofskey1": first, "someone_else": other}
    st = users_file.stat()
    assert oct(st.st_mode & 0o777) == "0o600" and st.st_uid == accounts["algofskeysvc"].uid
    with pytest.raises(ValueError):
        ensure_user_key(users_file, "../etc", owner="algofskeysvc")


def test_key_file_is_the_users_and_private(accounts):
    user = accounts["algofskey1"]
    path = hand_over_key(user.name, "key-one")
    assert path == user.home / ".algofs" / "api-key" and path.read_text() == "key-one"
    assert path.stat().st_uid == user.uid and oct(path.stat().st_mode & 0o777) == "0o600"
    assert oct(path.parent.stat().st_mode & 0o777) == "0o700"
    hand_over_key(user.name, "key-two")
    assert path.read_text() == "key-two"


def test_planted_symlinks_do_not_redirect_the_write(accounts):
    user = accounts["algofskey1"]
    victim_dir = Path(tempfile.mkdtemp(prefix="algofs-victim-", dir="/var/tmp"))
    try:
        os.chmod(victim_dir, 0o755)
        victim = victim_dir / "root-file"
        victim.write_text("root's")
        key_dir = user.home / ".algofs"
        key_dir.mkdir(exist_ok=True)
        os.chown(key_dir, user.uid, user.gid)
        link = key_dir / "api-key"
        link.unlink(missing_ok=True)
        os.symlink(victim, link)  # the file itself a symlink: it is replaced, not followed
        hand_over_key(user.name, "key-three")
        assert victim.read_text() == "root's"
        assert not link.is_symlink() and link.read_text() == "key-three"
        shutil.rmtree(key_dir)
        os.symlink(victim_dir, key_dir)  # the directory a symlink to root's: the user cannot write there
        with pytest.raises(subprocess.CalledProcessError):
            hand_over_key(user.name, "key-four")
        assert sorted(p.name for p in victim_dir.iterdir()) == ["root-file"]
        assert victim.read_text() == "root's"
    finally:
        shutil.rmtree(victim_dir, ignore_errors=True)
