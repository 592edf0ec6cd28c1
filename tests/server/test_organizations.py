"""Organizations and the admin API (issue 27, items 1 and 4), through the official ``algorithmia`` 2.0.5
client against a real ``algofs serve``: an admin creates, reads and edits an organization and invites
members; its members share its collections and algorithms, everyone else gets what another user's private
collection gives; the hub's watched organizations file changes membership without a restart."""

from __future__ import annotations

import json
import os
import secrets
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import Algorithmia
import pytest
import requests

from .algo_helpers import ServerWithOptions, unique

NAMES = ("root", "ann", "bob", "cat", "dan")
HELLO = "def apply(input):\n    return 'hello ' + str(input)\n"


def hub_members(**members: str) -> dict:
    return {"organizations": {"hubteam": {"members": members}}}


def write_atomically(path: Path, body: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(body))
    os.replace(tmp, path)


@pytest.fixture(scope="module")
def orgs_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("hub") / "organizations.json"
    write_atomically(path, hub_members(ann="admin", dan="member"))
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory, orgs_file) -> Iterator[ServerWithOptions]:
    users = {name: secrets.token_urlsafe(24) for name in NAMES}
    root = tmp_path_factory.mktemp("orgs-root")
    args = ["--admin", "root", "--organizations-file", str(orgs_file), "--allow-unisolated-algorithms"]
    with ServerWithOptions(root, args, users=users) as started:
        yield started


def client(server: ServerWithOptions, name: str) -> Algorithmia.client.Client:
    return Algorithmia.client(api_key=server.users[name], api_address=server.url)


def call(server: ServerWithOptions, method: str, path: str, user: str | None, headers: dict | None = None,
         **kwargs) -> requests.Response:
    auth = {"Authorization": server.users[user]} if user else {}
    return requests.request(method, server.url + path, headers={**auth, **(headers or {})}, timeout=30,
                            **kwargs)


def error_of(response: requests.Response) -> str:
    assert response.headers["Content-Type"].startswith("application/json"), response.text
    return response.json()["error"]["message"]


@pytest.fixture(scope="module")
def team(server) -> str:
    """An organization the admin made with the official client: ann its admin, bob a member."""
    name = unique("team")
    made = client(server, "root").create_org({"org_name": name, "org_label": "A team",
                                              "org_contact_name": "Ann", "org_email": f"{name}@example.org",
                                              "type_id": "basic"})
    assert made["org_name"] == name and made["org_email"] == f"{name}@example.org"
    assert call(server, "PUT", f"/v1/organizations/{name}/members/ann", "root", json={"role": "admin"}).ok
    invited = client(server, "ann").invite_to_org(name, "bob")  # an org admin invites; role member
    assert invited.status_code == 200
    return name


# -- the admin calls ------------------------------------------------------------------------------------

def test_admin_calls_with_the_official_client(server, team):
    admin = client(server, "root")
    types = admin.get_org_types()
    assert {t["name"] for t in types} == {"basic", "legacy", "pro"}
    org = admin.get_org(team)
    assert org["org_name"] == team and org["org_label"] == "A team" and org["type_id"] == types[0]["id"]
    assert org["members"] == [{"username": "ann", "role": "admin"}, {"username": "bob", "role": "member"}]
    edited = client(server, "ann").edit_org(team, {"org_name": team, "org_url": "https://example.org",
                                                   "org_contact_name": "Ann A.", "type_id": "pro"})
    assert edited.status_code == 204
    org = client(server, "bob").get_org(team)  # a member reads it
    assert org["org_url"] == "https://example.org" and org["org_contact_name"] == "Ann A."
    assert org["type_id"] == next(t["id"] for t in types if t["name"] == "pro")
    state = server.root / "organizations.json"
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    assert team in json.loads(state.read_text())["organizations"]


def test_create_user_gives_a_working_key(server):
    name = unique("u")
    made = client(server, "root").create_user({"username": name, "email": f"{name}@example.org",
                                               "passwordHash": "", "shouldCreateHello": False})
    assert made["username"] == name and made["resource_type"] == "user"
    new = Algorithmia.client(api_key=made["api_key"], api_address=server.url)
    new.dir(f"data://{name}/notes").create()
    new.file(f"data://{name}/notes/a.txt").put("mine")
    assert new.file("data://.my/notes/a.txt").getString() == "mine"
    created = server.root / "users-created.json"
    assert stat.S_IMODE(created.stat().st_mode) == 0o600
    again = call(server, "POST", "/v1/users", "root", json={"username": name, "email": ""})
    assert again.status_code == 409 and "already" in error_of(again)


def test_admin_calls_are_refused_to_other_users(server, team):
    for method, path, body in [("POST", "/v1/users", {"username": unique("x"), "email": "x@y"}),
                               ("GET", "/v1/organization/types", None),
                               ("POST", "/v1/organizations", {"org_name": unique("o"), "type_id": "basic"})]:
        answer = call(server, method, path, "bob", json=body)  # bob: no admin anywhere
        assert answer.status_code == 403 and "--admin" in error_of(answer)
    for method, path, body in [("POST", "/v1/users", {"username": unique("x"), "email": "x@y"}),
                               ("POST", "/v1/organizations", {"org_name": unique("o"), "type_id": "basic"})]:
        answer = call(server, method, path, "ann", json=body)  # an org's admin is no server admin
        assert answer.status_code == 403 and "--admin" in error_of(answer)
    with pytest.raises(Exception):  # noqa: B017  the client itself asks for the types first (403)
        client(server, "bob").create_org({"org_name": unique("o"), "org_email": "", "type_id": "basic"})
    with pytest.raises(Exception, match="403"):  # an org admin reads the types; the create is still a 403
        client(server, "ann").create_org({"org_name": unique("o"), "org_email": "", "type_id": "basic"})
    assert call(server, "GET", "/v1/organization/types", None).status_code == 401


def test_members_removal_and_who_may_change_what(server, team):
    assert call(server, "GET", f"/v1/organizations/{team}", "cat").status_code == 404  # not a member
    refused = call(server, "PUT", f"/v1/organizations/{team}/members/cat", "bob")  # a member, not an admin
    assert refused.status_code == 403 and "admins" in error_of(refused)
    assert call(server, "PUT", f"/v1/organizations/{team}/members/cat", "ann").status_code == 200
    assert call(server, "GET", f"/v1/organizations/{team}", "cat").status_code == 200
    assert call(server, "DELETE", f"/v1/organizations/{team}/members/cat", "ann").status_code == 204
    assert call(server, "GET", f"/v1/organizations/{team}", "cat").status_code == 404
    assert call(server, "DELETE", f"/v1/organizations/{team}/members/cat", "ann").status_code == 404


@pytest.mark.parametrize("method,path,body,status,words", [
    ("POST", "/v1/organizations", {"org_name": "bad name", "type_id": "basic"}, 400, "org_name"),
    ("POST", "/v1/organizations", {"org_name": "ann", "type_id": "basic"}, 409, "user"),
    ("POST", "/v1/organizations", {"org_name": "fine_name", "type_id": "huge"}, 400, "type_id"),
    ("POST", "/v1/organizations", {"org_name": "fine_name", "org_email": 5}, 400, "org_email"),
    ("POST", "/v1/organizations", "[1, 2]", 400, "JSON object"),
    ("POST", "/v1/organizations", "{not json", 400, "malformed"),
    ("POST", "/v1/users", {"username": "é", "email": ""}, 400, "username"),
    ("POST", "/v1/users", {"username": "hubteam", "email": ""}, 409, "organization"),
    ("GET", "/v1/organizations/nosuchorg", None, 404, "not found"),
    ("PUT", "/v1/organizations/{team}/members/nobody", {"role": "member"}, 404, "nobody"),
    ("PUT", "/v1/organizations/{team}/members/cat", {"role": "owner"}, 400, "role"),
    ("PUT", "/v1/organizations/{team}", {"org_name": "renamed"}, 400, "renamed"),
    ("PUT", "/v1/organizations/hubteam", {"org_url": "x"}, 409, "JupyterHub"),
    ("PUT", "/v1/organizations/hubteam/members/bob", None, 409, "JupyterHub"),
    ("DELETE", "/v1/organizations/hubteam/members/dan", None, 409, "JupyterHub"),
])
def test_bad_input_is_a_4xx_json_error(server, team, method, path, body, status, words):
    data = body if isinstance(body, str) else json.dumps(body) if body is not None else None
    answer = call(server, method, path.format(team=team), "root", data=data,
                  headers={"Content-Type": "application/json"} if data else {})
    assert answer.status_code == status, answer.text
    assert words in error_of(answer)


# -- data ---------------------------------------------------------------------------------------------

def test_members_share_the_org_collections_others_get_a_private_collections_answer(server, team):
    ann, bob, cat = client(server, "ann"), client(server, "bob"), client(server, "cat")
    ann.dir(f"data://{team}/shared").create()  # an org admin makes a collection (default ACL)
    bob.file(f"data://{team}/shared/notes.txt").put("from bob")  # a member writes
    assert ann.file(f"data://{team}/shared/notes.txt").getString() == "from bob"
    ann.file(f"data://{team}/shared/notes.txt").put("ann replaced it")  # replaces
    bob.dir(f"data://{team}/shared/sub").create()
    bob.file(f"data://{team}/shared/sub/x.bin").put(b"\x00\x01")
    bob.file(f"data://{team}/shared/sub/x.bin").delete()  # deletes
    assert [f.getName() for f in bob.dir(f"data://{team}/shared").files()] == ["notes.txt"]
    assert [d.getName() for d in bob.dir(f"data://{team}").dirs()] == ["shared"]
    # a member neither creates nor deletes nor re-ACLs collections
    made = call(server, "POST", f"/v1/data/{team}", "bob", json={"name": "bobs"})
    assert made.status_code == 403 and "admins of organization" in error_of(made)
    gone = call(server, "DELETE", f"/v1/data/{team}/shared?force=true", "bob")
    assert gone.status_code == 403 and "admins of organization" in error_of(gone)
    acl = call(server, "PATCH", f"/v1/data/{team}/shared", "bob", json={"acl": {"read": ["user://*"]}})
    assert acl.status_code == 403
    moved = call(server, "POST", "/v1/algofs/move", "bob",
                 json={"from": f"data://{team}/shared", "to": f"data://{team}/renamed"})
    assert moved.status_code == 403
    # a non-member: exactly another user's private collection
    for path in (f"/v1/data/{team}/shared", f"/v1/data/{team}/shared/notes.txt"):
        assert call(server, "GET", path, "cat").status_code == 403
    assert call(server, "GET", f"/v1/data/{team}", "cat").json().get("folders", []) == []
    refused = call(server, "PUT", f"/v1/data/{team}/shared/cat.txt", "cat", data=b"x")
    assert refused.status_code == 403
    with pytest.raises(Exception):  # noqa: B017
        cat.file(f"data://{team}/shared/notes.txt").getString()
    # the org admin publishes it: everyone reads, as with any public collection
    assert call(server, "PATCH", f"/v1/data/{team}/shared", "ann", json={"acl": {"read": ["user://*"]}}).ok
    assert cat.file(f"data://{team}/shared/notes.txt").getString() == "ann replaced it"
    assert call(server, "PUT", f"/v1/data/{team}/shared/cat.txt", "cat", data=b"x").status_code == 403


def test_the_data_root_and_whoami_show_ones_organizations(server, team):
    who = call(server, "GET", "/v1/algofs/whoami", "bob").json()
    assert who == {"username": "bob", "organizations": [{"name": team, "role": "member"}], "admin": False}
    who = call(server, "GET", "/v1/algofs/whoami", "ann").json()
    assert {"name": "hubteam", "role": "admin"} in who["organizations"]
    assert call(server, "GET", "/v1/algofs/capabilities", "bob").json()["extensions"]["whoami"] == 1
    names = [f["name"] for f in call(server, "GET", "/v1/data/", "bob").json()["folders"]]
    assert names[:2] == ["bob", team] and "hubteam" not in names
    names = [f["name"] for f in call(server, "GET", "/v1/data/", "cat").json()["folders"]]
    assert team not in names and "hubteam" not in names and "ann" in names


# -- algorithms ---------------------------------------------------------------------------------------

def test_members_create_build_publish_and_call_org_algorithms(server, team):
    name = unique("algo")
    bob = client(server, "bob")
    algo = bob.algo(f"{team}/{name}")
    algo.create(details={"label": name}, settings={"algorithm_callability": "private"})
    upload = call(server, "PUT", f"/v1/algorithms/{team}/{name}/source", "bob", data=HELLO.encode(),
                  headers={"Content-Type": "text/x-python"})
    assert upload.ok, upload.text
    algo.publish(version_info={"version_type": "minor"})
    assert client(server, "ann").algo(f"{team}/{name}").pipe("ann").result == "hello ann"
    with pytest.raises(Exception, match="404"):  # private: members only
        client(server, "cat").algo(f"{team}/{name}").pipe("cat")
    refused = call(server, "POST", f"/v1/algorithms/{team}", "cat", json={"name": unique("x")})
    assert refused.status_code == 403
    assert call(server, "POST", f"/v1/algorithms/{team}/{name}/versions", "cat",
                json={"version_info": {"version_type": "minor"}}).status_code == 403
    call(server, "PUT", f"/v1/algorithms/{team}/{name}", "ann",
         json={"settings": {"algorithm_callability": "public"}}).raise_for_status()
    assert client(server, "cat").algo(f"{team}/{name}").pipe("cat").result == "hello cat"


# -- the hub's organizations file -----------------------------------------------------------------------

def wait_until(check, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "no change seen"
        time.sleep(0.2)


def test_the_watched_file_changes_membership_without_a_restart(server, orgs_file):
    ann, dan = client(server, "ann"), client(server, "dan")
    ann.dir("data://hubteam/lab").create()
    dan.file("data://hubteam/lab/result.txt").put("dan's")
    assert client(server, "dan").get_org("hubteam")["hub_managed"] is True
    assert call(server, "GET", "/v1/data/hubteam/lab/result.txt", "bob").status_code == 403
    write_atomically(orgs_file, hub_members(ann="admin", bob="member"))
    wait_until(lambda: call(server, "GET", "/v1/data/hubteam/lab/result.txt", "bob").status_code == 200)
    assert call(server, "GET", "/v1/data/hubteam/lab/result.txt", "dan").status_code == 403  # dan removed
    names = [f["name"] for f in call(server, "GET", "/v1/data/", "dan").json()["folders"]]
    assert "hubteam" not in names
    assert call(server, "GET", "/v1/algofs/whoami", "dan").json()["organizations"] == []
    orgs_file.write_text("{broken")  # half-written: the previous members stay
    time.sleep(1.5)
    assert call(server, "GET", "/v1/data/hubteam/lab/result.txt", "bob").status_code == 200
    write_atomically(orgs_file, hub_members(ann="admin", dan="member"))
    wait_until(lambda: call(server, "GET", "/v1/data/hubteam/lab/result.txt", "bob").status_code == 403)
    assert "not reloaded" in server.log_path.read_text()
    write_atomically(orgs_file, {"organizations": {}})  # the hub dropped the group: no folder left listed
    wait_until(lambda: call(server, "GET", "/v1/data/hubteam/lab/result.txt", "ann").status_code == 403)
    for user in ("ann", "dan", "cat"):
        assert "hubteam" not in [f["name"] for f in call(server, "GET", "/v1/data/", user).json()["folders"]]


READER = '''
import Algorithmia


def apply(input):
    client = Algorithmia.client()
    note = client.file(input["note"]).getString()
    try:
        client.file(input["out"]).put("seen: " + note)
        wrote = "ok"
    except Exception:
        wrote = "refused"
    return {"note": note, "wrote": wrote}
'''


def test_an_org_algorithm_reads_the_orgs_data_and_writes_where_its_caller_may(server, team):
    """The default ACL ``algo://.my/*`` of an org collection means the org's algorithms; a call's token
    writes where its input names only if the caller may (a member; not an outsider)."""
    notes, drop, name = unique("notes"), unique("drop"), unique("reader")
    ann = client(server, "ann")
    ann.dir(f"data://{team}/{notes}").create()  # default ACL: the org's algorithms read it
    ann.file(f"data://{team}/{notes}/note.txt").put("team note")
    assert call(server, "POST", f"/v1/data/{team}", "ann", json={"name": drop, "acl": {"read": []}}).ok
    algo = ann.algo(f"{team}/{name}")
    algo.create(details={"label": name}, settings={"algorithm_callability": "public"})
    assert call(server, "PUT", f"/v1/algorithms/{team}/{name}/source", "ann", data=READER.encode(),
                headers={"Content-Type": "text/x-python"}).ok
    algo.publish(version_info={"version_type": "minor"})
    job = {"note": f"data://{team}/{notes}/note.txt", "out": f"data://{team}/{drop}/out.txt"}
    assert call(server, "GET", f"/v1/data/{team}/{notes}/note.txt", "cat").status_code == 403
    outsider, member = (client(server, who).algo(f"{team}/{name}").pipe(job).result for who in ("cat", "bob"))
    assert outsider == {"note": "team note", "wrote": "refused"}
    assert member == {"note": "team note", "wrote": "ok"}
    assert ann.file(f"data://{team}/{drop}/out.txt").getString() == "seen: team note"


def test_an_orgs_data_counts_against_the_orgs_own_quota(tmp_path):
    orgs, quotas = tmp_path / "organizations.json", tmp_path / "quotas.json"
    write_atomically(orgs, {"organizations": {"lab": {"members": {"ann": "admin"}}}})
    write_atomically(quotas, {"users": {"lab": {"bytes": 1000}}})
    users = {name: secrets.token_urlsafe(24) for name in ("ann", "bob")}
    args = ["--organizations-file", str(orgs)]
    with ServerWithOptions(tmp_path / "root", args, users=users, quotas_file=quotas) as started:
        ann = client(started, "ann")
        ann.dir("data://lab/shared").create()
        ann.dir("data://ann/mine").create()
        assert call(started, "PUT", "/v1/data/lab/shared/a.bin", "ann", data=b"x" * 600).ok
        over = call(started, "PUT", "/v1/data/lab/shared/b.bin", "ann", data=b"x" * 600)
        assert over.status_code == 403 and over.json()["error"]["errno"] == "EDQUOT"
        assert call(started, "PUT", "/v1/data/ann/mine/b.bin", "ann", data=b"x" * 600).ok  # ann: no limit
        assert call(started, "GET", "/v1/algofs/quota", "ann").json()["usage"]["bytes"] == 600


def test_what_the_admin_api_made_survives_a_restart(tmp_path):
    users = {name: secrets.token_urlsafe(24) for name in ("root", "ann")}
    server = ServerWithOptions(tmp_path / "root", ["--admin", "root"], users=users)
    with server:
        admin = client(server, "root")
        admin.create_org({"org_name": "kept", "org_email": "kept@example.org", "type_id": "legacy"})
        assert call(server, "PUT", "/v1/organizations/kept/members/ann", "root", json={"role": "admin"}).ok
        made = admin.create_user({"username": "newbie", "email": "n@example.org"})
        client(server, "ann").dir("data://kept/files").create()
    with server:  # the same root, a new process
        assert client(server, "ann").get_org("kept")["members"] == [{"username": "ann", "role": "admin"}]
        newbie = Algorithmia.client(api_key=made["api_key"], api_address=server.url)
        assert [d.getName() for d in newbie.dir("data://newbie").dirs()] == []
        assert call(server, "GET", "/v1/data/kept", "ann").json()["folders"][0]["name"] == "files"
        assert "newbie" in [f["name"] for f in call(server, "GET", "/v1/data/", "ann").json()["folders"]]
