"""API identities for JupyterHub users: one key per user, minted by the hub, handed over in a 0600 file.

The hub (root) keeps every user's key in the users file of the shared ``algofs serve`` service, which
re-reads it on change; a user's key is minted the first time their server spawns and kept afterwards (an
admin revokes it by deleting the line). The key reaches the user as ``~/.algofs/api-key`` (0600, in a 0700
directory), written by a child process running *as that user*, so root never follows a symlink the user
planted in their home. Keys never travel through argv or the spawner's environment. See docs/deploy.md.
"""

from __future__ import annotations

import fcntl
import json
import os
import pwd
import re
import secrets
import subprocess
from pathlib import Path

#: Where each user finds their key, relative to their home directory.
KEY_FILE = Path(".algofs") / "api-key"
#: Hub user names that are usable as Algorithmia user names (``/v1/algorithms/<user>`` takes ``\w+``).
USERNAME = re.compile(r"^\w{1,64}$", re.ASCII)

_WRITE_AS_USER = """
import os, sys
path = sys.argv[1]
os.umask(0o077)
os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
os.chmod(os.path.dirname(path), 0o700)
tmp = path + ".tmp"
fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
os.write(fd, sys.stdin.buffer.read())
os.fchmod(fd, 0o600)
os.close(fd)
os.replace(tmp, path)
"""


def check_username(name: str) -> str:
    if not USERNAME.match(name):
        raise ValueError(f"JupyterHub user {name!r} has no usable AlgoFS name (letters, digits, _)")
    return name


def read_users(users_file: Path) -> dict[str, str]:
    try:
        data = json.loads(users_file.read_text())
    except FileNotFoundError:
        return {}
    return dict(data.get("users", {}))


def replace_private_file(path: Path, text: str, owner: str) -> None:
    """Atomically replace ``path`` with ``text``: mode 0600, owned by the service account that reads it."""
    account = pwd.getpwnam(owner)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchown(fd, account.pw_uid, account.pw_gid)
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)


def write_users(users_file: Path, users: dict[str, str], owner: str) -> None:
    """Atomically replace the users file: mode 0600, owned by the service account that reads it."""
    replace_private_file(users_file, json.dumps({"users": users}, indent=1, sort_keys=True) + "\n", owner)


def ensure_user_key(users_file: Path, username: str, owner: str) -> str:
    """The user's key from the users file; minted and added first when the user has none."""
    check_username(username)
    with open(users_file.with_name(users_file.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        users = read_users(users_file)
        if username not in users:
            users[username] = secrets.token_urlsafe(32)
            write_users(users_file, users, owner)
        return users[username]


def hand_over_key(username: str, key: str, python: str = "/usr/bin/python3") -> Path:
    """Write ``key`` to ``~username/.algofs/api-key`` as that user; returns the file's path."""
    account = pwd.getpwnam(username)
    path = Path(account.pw_dir) / KEY_FILE
    subprocess.run([python, "-I", "-c", _WRITE_AS_USER, str(path)], input=key.encode(), check=True,
                   user=account.pw_uid, group=account.pw_gid, extra_groups=[], cwd=account.pw_dir,
                   env={"HOME": account.pw_dir, "PATH": "/usr/bin:/bin"}, timeout=30,
                   capture_output=True)
    return path
