"""A real JupyterHub on 127.0.0.1 with real local accounts, deployed with deploy/jupyterhub_config.py.

Each user's single-user server runs as that user and mounts ~/algofs as that user with their own API key
(minted by the hub, docs/deploy.md). User A must not reach B's private collection or B's key through the
mount, the single-user server's routes, the shared API server or the files on disk, nor change A's files
in the deployment's connectors (read-only: nobody owns them); stopping a server unmounts and leaves no
process behind.
"""

from __future__ import annotations

import os
import shutil
import time

import psutil
import pytest
import requests
from hub_deployment import (
    Account,
    algofs_mounts_under,
    local_accounts,
    processes_of,
    proxy_command,
    run_as,
    running_hub,
    user_venv,
)

from algofs_jupyter.mount.mount_table import entry_at, is_algofs_mount

USERS = ["algofshub1", "algofshub2", "algofshub3"]
SERVICE_USER = "algofshubsvc"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.fuse,
    pytest.mark.skipif(os.geteuid() != 0, reason="creates local accounts: needs root"),
    pytest.mark.skipif(not shutil.which("useradd"), reason="needs useradd"),
    pytest.mark.skipif(not shutil.which("fusermount3"), reason="needs fusermount3 (fuse3)"),
    pytest.mark.skipif(proxy_command() is None, reason="needs configurable-http-proxy (./dev.sh setup)"),
    pytest.mark.timeout(900),
]


def secret_of(user: str) -> str:
    return f"private words of {user}"


def wait_for_fuse_mount(hub, user: str, token: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status = hub.user_request(user, "/algofs/status", token).json()
        if status.get("mode") == "fuse" or time.monotonic() > deadline:
            return status
        time.sleep(0.5)


def eventually(condition, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def denied(result) -> bool:
    return result.returncode != 0


@pytest.fixture(scope="module")
def deployment():
    if not os.access("/dev/fuse", os.R_OK | os.W_OK) or (os.stat("/dev/fuse").st_mode & 0o006) != 0o006:
        pytest.skip("/dev/fuse is not usable by other users (apt-get install fuse3 makes it 0666)")
    venv = user_venv()
    with local_accounts(USERS, system=[SERVICE_USER]) as accounts, \
            running_hub(venv, USERS, SERVICE_USER) as hub:
        yield hub, accounts


def test_each_user_gets_their_own_mount_and_identity_and_nothing_of_the_others(deployment):
    hub, accounts = deployment
    users = [accounts[name] for name in USERS]
    tokens: dict[str, str] = {}
    keys: dict[str, str] = {}
    for user in users:
        hub.spawn(user.name)
        tokens[user.name] = hub.user_token(user.name)

    for user in users:
        status = wait_for_fuse_mount(hub, user.name, tokens[user.name])
        assert status["mode"] == "fuse", status
        assert status["username"] == user.name and status["embedded_server"] is False
        assert status["api_address"] == hub.api_address
        assert status["mountpoint_abs"] == str(user.home / "algofs")
        assert is_algofs_mount(user.home / "algofs")
        entry = entry_at(user.home / "algofs")
        assert entry is not None, "no mount table entry"
        assert f"user_id={user.uid}," in f"{entry.super_options},", "not mounted by the user"
        # the server and its FUSE daemon run as the user, not as root
        cmdlines = [" ".join(proc.cmdline()) for proc in processes_of(user.uid)]
        assert any("jupyterhub-singleuser" in line for line in cmdlines), cmdlines
        assert any(" mount " in f" {line} " and str(user.home / "algofs") in line for line in cmdlines)

        key_file = user.home / ".algofs" / "api-key"
        assert key_file.stat().st_uid == user.uid and oct(key_file.stat().st_mode & 0o777) == "0o600"
        keys[user.name] = key_file.read_text().strip()
        # works through the mount, as the user: a private collection (the default ACL) with a secret
        private = user.home / "algofs" / "data" / user.name / "private"
        secret_file = private / "s.txt"
        script = f"mkdir {private} && printf '{secret_of(user.name)}' > {secret_file} && cat {secret_file}"
        made = run_as(user, "sh", "-c", script)
        assert made.returncode == 0 and made.stdout == secret_of(user.name), made.stderr
    assert len(set(keys.values())) == len(users)

    a, b, c = users
    for intruder, owner in ((a, b), (c, a)):
        check_mount_isolation(intruder, owner)
        check_disk_isolation(hub, intruder, owner, keys[owner.name])
        check_rest_isolation(hub, intruder, owner, tokens)
        check_api_isolation(hub, intruder, owner, keys)
    check_connectors_are_read_only(hub, a, b, keys)
    check_keys_stay_private(hub, users, keys, tokens)

    # A's and C's servers stopped through the hub; B's killed outright (SIGKILL: no cleanup code runs in it)
    hub.stop_server(a.name)
    hub.stop_server(c.name)
    next(p for p in processes_of(b.uid) if "jupyterhub-singleuser" in " ".join(p.cmdline())).kill()
    for user in users:
        # the mount daemon follows its server out and unmounts (parent_watch.py)
        assert eventually(lambda home=user.home: algofs_mounts_under(home) == []), user.name
        assert psutil.wait_procs(processes_of(user.uid), timeout=30)[1] == [], f"{user.name}: processes left"
    hub.stop_server(b.name)


def check_mount_isolation(a: Account, b: Account) -> None:
    b_file = f"data/{b.name}/private/s.txt"
    own_view = run_as(a, "cat", str(a.home / "algofs" / b_file))  # through A's own mount, with A's key
    assert denied(own_view) and secret_of(b.name) not in own_view.stdout
    assert denied(run_as(a, "ls", str(a.home / "algofs" / "data" / b.name / "private")))
    their_mount = run_as(a, "cat", str(b.home / "algofs" / b_file))  # B's mount: no allow_other
    assert denied(their_mount) and "Permission denied" in their_mount.stderr
    assert denied(run_as(a, "stat", str(b.home / "algofs")))


def check_disk_isolation(hub, a: Account, b: Account, b_key: str) -> None:
    assert denied(run_as(a, "cat", str(b.home / ".algofs" / "api-key")))
    api_dir = hub.state / "api"
    assert denied(run_as(a, "cat", str(api_dir / "users.json")))
    assert denied(run_as(a, "cat", str(api_dir / "root" / "data" / b.name / "private" / "s.txt")))
    assert denied(run_as(a, "ls", str(api_dir)))
    # nothing readable by A anywhere in B's home or the deployment's state holds B's secret or key
    for needle in (secret_of(b.name), b_key):
        found = run_as(a, "grep", "-rlsF", "--", needle, str(b.home), str(hub.state), timeout=120)
        assert found.stdout == "", found.stdout


def check_rest_isolation(hub, a: Account, b: Account, tokens: dict[str, str]) -> None:
    contents = f"/api/contents/algofs/data/{b.name}/private/s.txt"
    own = hub.user_request(b.name, contents, tokens[b.name])
    assert own.status_code == 200 and own.json()["content"] == secret_of(b.name)
    for path in ("/algofs/status", "/algofs/algorithms", contents, "/api/contents/.algofs/api-key"):
        response = hub.user_request(b.name, path, tokens[a.name])
        assert response.status_code == 403, (path, response.status_code)
        assert secret_of(b.name) not in response.text
    # A's own server, asked for B's private file, answers through A's identity: refused. Which refusal
    # depends on what A's mount has seen: a path the API refuses is a d--x--x--x directory (EACCES → 403,
    # tests/jupyter/test_contents.py), but once the mount has listed data/<B> (which shows only B's shared
    # collections) a private collection is simply not there (ENOENT → 404, not even its existence leaks).
    response = hub.user_request(a.name, f"/api/contents/algofs/data/{b.name}/private/s.txt", tokens[a.name])
    assert response.status_code in (403, 404), response.text
    assert secret_of(b.name) not in response.text and "private words" not in response.text


def check_api_isolation(hub, a: Account, b: Account, keys: dict[str, str]) -> None:
    def get(path: str, key: str) -> requests.Response:
        return requests.get(hub.api_address + path, headers={"Authorization": key}, timeout=10)

    assert get(f"/v1/data/{b.name}/private/s.txt", keys[b.name]).text == secret_of(b.name)
    for path in (f"/v1/data/{b.name}/private/s.txt", f"/v1/data/{b.name}/private"):
        response = get(path, keys[a.name])
        assert response.status_code == 403 and secret_of(b.name) not in response.text
    assert get(f"/v1/data/{b.name}/private/s.txt", "sim-demo-key").status_code == 401


def check_connectors_are_read_only(hub, a: Account, b: Account, keys: dict[str, str]) -> None:
    """The deployment's default connectors have no owner: on this multi-user server nobody may write,
    replace or delete there (issue 22: they were open to every user), and /healthz says so."""
    api_root = hub.state / "api" / "root"
    service = (api_root / "connectors.json").stat()
    for cid in ("s3", "dropbox"):  # a file the operator put there, "A's"
        placed = api_root / "connectors" / cid / f"{a.name}.txt"
        placed.write_text(f"{a.name}'s {cid} file")
        os.chown(placed, service.st_uid, service.st_gid)
    for cid in ("s3", "dropbox"):
        for user in (a, b):
            def call(method: str, name: str, user: Account = user, cid: str = cid) -> requests.Response:
                return requests.request(method, f"{hub.api_address}/v1/connector/{cid}/{name}", data=b"x",
                                        headers={"Authorization": keys[user.name]}, timeout=10)

            assert call("GET", f"{a.name}.txt").text == f"{a.name}'s {cid} file"
            for method, name in (("PUT", f"{user.name}-new.txt"), ("PUT", f"{a.name}.txt"),
                                 ("DELETE", f"{a.name}.txt")):
                assert call(method, name).status_code == 403, (user.name, method, cid, name)
        # and through B's own mount
        assert denied(run_as(b, "rm", "-f", str(b.home / "algofs" / cid / f"{a.name}.txt")))
        assert (api_root / "connectors" / cid / f"{a.name}.txt").read_text() == f"{a.name}'s {cid} file"
        assert not (api_root / "connectors" / cid / f"{b.name}-new.txt").exists()
    warnings = requests.get(hub.api_address + "/healthz", timeout=10).json().get("warnings", [])
    assert any("dropbox (read-only), s3 (read-only)" in warning for warning in warnings), warnings


def check_keys_stay_private(hub, users: list[Account], keys: dict[str, str], tokens: dict[str, str]) -> None:
    for proc in psutil.process_iter(["cmdline"]):
        line = " ".join(proc.info["cmdline"] or [])
        assert not any(key in line for key in keys.values()), f"a key in argv: pid {proc.pid}"
    for user in users:
        server = next(p for p in processes_of(user.uid) if "jupyterhub-singleuser" in " ".join(p.cmdline()))
        environment = " ".join(server.environ().values())
        assert not any(key in environment for key in keys.values()), "a key in the spawner's environment"
    for user in users:  # status output: the REST route and `algofs status --json`, as the user
        status = hub.user_request(user.name, "/algofs/status", tokens[user.name]).text
        cli = run_as(user, str(hub.venv / "bin" / "algofs"), "status", "--json", str(user.home / "algofs"))
        assert cli.returncode == 0 and user.name in cli.stdout, cli.stderr
        assert not any(key in status + cli.stdout + cli.stderr for key in keys.values())
    logs = hub.log() + "".join(p.read_text(errors="replace") for p in (hub.state / "api" / "log").glob("*"))
    assert not any(key in logs for key in keys.values())
