"""Teams on a real JupyterHub (issue 27, item 2): a hub group is an AlgoFS organization.

deploy/jupyterhub_config.py runs the hub-groups service (algofs_jupyter/hub_groups.py) next to the API
server; an admin manages the team with the hub's own group API. Two members share the org's folder through
their own mounts, a third user sees nothing of it, and a member taken out of the group loses access within
seconds, with nothing restarted.
"""

from __future__ import annotations

import json
import os
import shutil
import time

import psutil
import pytest
import requests
from hub_deployment import (
    Account,
    local_accounts,
    processes_of,
    proxy_command,
    run_as,
    running_hub,
    user_venv,
)
from test_jupyterhub import eventually, wait_for_fuse_mount

from algofs_jupyter.mount.options import JUPYTER_DEFAULTS

USERS = ["algofsteam1", "algofsteam2", "algofsteam3"]  # alice and bob (the team), carol
SERVICE_USER = "algofsteamsvc"
ORG = "physics"
#: how long a mount may keep trusting what it saw (the Jupyter mount's default metadata TTL), plus slack
MOUNT_TTL = JUPYTER_DEFAULTS.metadata_ttl + 30

pytestmark = [
    pytest.mark.slow,
    pytest.mark.fuse,
    pytest.mark.skipif(os.geteuid() != 0, reason="creates local accounts: needs root"),
    pytest.mark.skipif(not shutil.which("useradd"), reason="needs useradd"),
    pytest.mark.skipif(not shutil.which("fusermount3"), reason="needs fusermount3 (fuse3)"),
    pytest.mark.skipif(proxy_command() is None, reason="needs configurable-http-proxy (./dev.sh setup)"),
    pytest.mark.timeout(900),
]


@pytest.fixture(scope="module")
def deployment():
    if not os.access("/dev/fuse", os.R_OK | os.W_OK) or (os.stat("/dev/fuse").st_mode & 0o006) != 0o006:
        pytest.skip("/dev/fuse is not usable by other users (apt-get install fuse3 makes it 0666)")
    venv = user_venv()
    with local_accounts(USERS, system=[SERVICE_USER]) as accounts, \
            running_hub(venv, USERS, SERVICE_USER) as hub:
        yield hub, accounts


def org_members(hub) -> dict | None:
    try:
        document = json.loads((hub.state / "api" / "hub-organizations.json").read_text())
    except (OSError, ValueError):
        return None
    return document["organizations"].get(ORG, {}).get("members")


def listing(user: Account, *parts: str) -> list[str] | None:
    """``ls`` of a folder in the user's mount, as the user; None if it fails."""
    done = run_as(user, "ls", "-1", str(user.home.joinpath("algofs", *parts)))
    return done.stdout.split() if done.returncode == 0 else None


def cat(user: Account, *parts: str) -> str | None:
    done = run_as(user, "cat", str(user.home.joinpath("algofs", *parts)))
    return done.stdout if done.returncode == 0 else None


def write(user: Account, text: str, *parts: str) -> None:
    path = user.home.joinpath("algofs", *parts)
    done = run_as(user, "sh", "-c", f"printf '%s' '{text}' > {path}")
    assert done.returncode == 0, done.stderr


def server_pids(hub, service: Account) -> set[int]:
    """The API server and the hub-groups service: both run as the service account."""
    return {p.pid for p in processes_of(service.uid)
            if "algofs_jupyter" in " ".join(p.cmdline()) and p.status() != psutil.STATUS_ZOMBIE}


def test_a_hub_group_is_a_shared_folder_and_leaving_the_group_revokes_access(deployment):
    hub, accounts = deployment
    alice, bob, carol = (accounts[name] for name in USERS)
    service = accounts[SERVICE_USER]
    for user in USERS:
        assert hub.api("POST", f"/users/{user}").status_code in (201, 409)
    # the team, as an admin makes it: a hub group, alice its org admin (a group property)
    assert hub.api("POST", f"/groups/{ORG}", json={"users": [alice.name, bob.name]}).status_code == 201
    assert hub.api("PUT", f"/groups/{ORG}/properties", json={"algofs_admins": alice.name}).status_code == 200
    assert hub.api("POST", "/groups/data-science", json={"users": [carol.name]}).status_code == 201
    assert eventually(lambda: org_members(hub) == {alice.name: "admin", bob.name: "member"}), org_members(hub)
    orgs_file = (hub.state / "api" / "hub-organizations.json").stat()
    assert oct(orgs_file.st_mode & 0o777) == "0o600" and orgs_file.st_uid == service.uid
    # a group name the API cannot carry is left out, and the hub's log says why
    assert eventually(lambda: "skipped: group 'data-science'" in hub.log()), hub.log()[-3000:]

    tokens = {}
    for user in (alice, bob, carol):
        hub.spawn(user.name)
        tokens[user.name] = hub.user_token(user.name)
    for user in (alice, bob, carol):
        assert wait_for_fuse_mount(hub, user.name, tokens[user.name])["mode"] == "fuse"
    keys = {u.name: (u.home / ".algofs" / "api-key").read_text().strip() for u in (alice, bob, carol)}

    def api_read(user: Account, name: str) -> requests.Response:
        return requests.get(f"{hub.api_address}/v1/data/{ORG}/shared/{name}",
                            headers={"Authorization": keys[user.name]}, timeout=10)

    # the team's folder in both members' mounts; alice (admin) makes a collection, both write, both read
    for member in (alice, bob):
        assert eventually(lambda m=member: ORG in (listing(m, "data") or []), MOUNT_TTL), member.name
    made = run_as(alice, "mkdir", str(alice.home / "algofs" / "data" / ORG / "shared"))
    assert made.returncode == 0, made.stderr
    write(alice, "from alice", "data", ORG, "shared", "x.txt")
    assert eventually(lambda: cat(bob, "data", ORG, "shared", "x.txt") == "from alice", MOUNT_TTL)
    write(bob, "from bob", "data", ORG, "shared", "y.txt")
    assert eventually(lambda: cat(alice, "data", ORG, "shared", "y.txt") == "from bob", MOUNT_TTL)

    # carol is in no team of that name: she can neither list nor read it, in her mount or through the API
    assert ORG not in (listing(carol, "data") or [])
    # (the org's folder, looked up by name, is like another user's: only public collections would show)
    assert "shared" not in (listing(carol, "data", ORG) or [])
    assert listing(carol, "data", ORG, "shared") is None
    assert cat(carol, "data", ORG, "shared", "x.txt") is None
    refused = api_read(carol, "x.txt")
    assert refused.status_code in (403, 404) and "from alice" not in refused.text

    # bob leaves the team through the hub's group API: no restart of anything
    before = server_pids(hub, service)
    assert len(before) == 2, before
    assert hub.api("DELETE", f"/groups/{ORG}/users", json={"users": [bob.name]}).status_code == 200
    removed_at = time.monotonic()
    assert eventually(lambda: api_read(bob, "x.txt").status_code in (403, 404), 30)
    revoked_after = time.monotonic() - removed_at
    print(f"bob's API reads refused {revoked_after:.1f} s after the group change")
    write(alice, "after bob left", "data", ORG, "shared", "z.txt")
    assert cat(bob, "data", ORG, "shared", "z.txt") is None  # nothing he had not seen yet
    # what his mount had seen it trusts for at most its metadata TTL
    assert eventually(lambda: cat(bob, "data", ORG, "shared", "x.txt") is None, MOUNT_TTL)
    print(f"bob's mount refused a file he had read {time.monotonic() - removed_at:.1f} s after the change")
    assert eventually(lambda: ORG not in (listing(bob, "data") or []), MOUNT_TTL)
    assert cat(alice, "data", ORG, "shared", "z.txt") == "after bob left"
    assert cat(alice, "data", ORG, "shared", "y.txt") == "from bob"
    assert org_members(hub) == {alice.name: "admin"}
    assert server_pids(hub, service) == before
    for user in (alice, bob, carol):
        hub.stop_server(user.name)
