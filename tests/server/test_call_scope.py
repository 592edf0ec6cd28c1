"""What a called algorithm may do with its per-call token (issue 22, finding 4; docs/server.md, "What a
called algorithm may do"), against a real ``algofs serve`` with the official client inside the algorithms.

User ``anowell`` publishes public algorithms; user ``alice`` calls them. On the old code the token acted
with all of alice's rights: the probe read her private diary, made her collection public, deleted and
planted files and created a collection, and ``data://.session`` did not exist.
"""

from __future__ import annotations

import json
import time

import Algorithmia
import pytest
import requests
from Algorithmia.acl import AclType, ReadAcl
from Algorithmia.algorithm import OutputType

from algofs_jupyter.server.call_scope import CallScope, CallScratch, pointed_at
from algofs_jupyter.server.users import DEMO_USERS

from .algo_helpers import ServerWithOptions, publish_source

# -- the input scan and nesting (no server) --------------------------------------------------------------


def test_the_input_names_data_and_connector_locations():
    text = ("read data://.my/inbox/in.txt, write data://.my/results/out.txt. "
            "also s3://bucket/a/b and dropbox+work://x; not algo://anowell/Pinky, data://.session/t, "
            "data://.my, data://alice, data://../up or s3://")
    assert pointed_at("text", text, "alice") == {
        ("data", ("alice", "inbox", "in.txt")), ("data", ("alice", "inbox", "in.txt,")),
        ("data", ("alice", "results", "out.txt")), ("data", ("alice", "results", "out.txt.")),
        ("s3", ("bucket", "a", "b")), ("dropbox+work", ("x;",)), ("dropbox+work", ("x",))}
    nested = {"a": ["data://demo/open/readme.txt", {"b": "see data://.my/c/d"}], "data://.my/key": 1}
    assert pointed_at("json", nested, "alice") == {("data", ("demo", "open", "readme.txt")),
                                                   ("data", ("alice", "c", "d"))}
    assert pointed_at("binary", b"data://.my/c/d", "alice") == frozenset()
    many = " ".join(f"data://.my/c/f{i}" for i in range(1000))
    assert len(pointed_at("text", many, "alice")) == 256  # bounded


def test_a_nested_call_gets_at_most_its_parents_locations():
    parent = CallScope(CallScratch("alice"), frozenset({("data", ("alice", "drop")), ("s3", ("a", "b"))}))
    child = parent.nested(frozenset({("data", ("alice", "drop", "x")), ("data", ("alice", "secrets")),
                                     ("s3", ("a",)), ("dropbox", ("a", "b"))}))
    assert child.named == {("data", ("alice", "drop", "x")), ("s3", ("a", "b"))}
    assert child.scratch is parent.scratch


# -- a real server ---------------------------------------------------------------------------------------

HELPERS = r'''
import os
import Algorithmia


def ok(action):
    try:
        action()
        return "ok"
    except Exception as exc:
        return "refused: %s" % exc


def status(client, method, path, **kwargs):
    """The status of a request sent through the official client's session, address and key."""
    headers = {"Authorization": client.apiKey, **kwargs.pop("headers", {})}
    response = client.requestSession.request(method, client.apiAddress + path, headers=headers, **kwargs)
    return response.status_code
'''

PROBE = HELPERS + r'''

def apply(input):
    client = Algorithmia.client()
    seen = {"token": os.environ["ALGORITHMIA_API_KEY"]}
    text = client.file(input["in"]).getString()
    seen["read_named_input"] = text
    seen["write_named_output"] = ok(lambda: client.file(input["out"]).put("draft"))
    seen["replace_named_output"] = ok(lambda: client.file(input["out"]).put("result: " + text))
    seen["write_in_named_folder"] = ok(lambda: client.file(input["folder"] + "/made.txt").put("made"))
    seen["folder_in_named_folder"] = ok(lambda: client.dir(input["folder"] + "/sub").create())
    seen["write_session"] = ok(lambda: client.file("data://.session/scratch.txt").put("scratch"))
    seen["read_session"] = client.file("data://.session/scratch.txt").getString()
    seen["list_session"] = [f.getName() for f in client.dir("data://.session").files()]
    seen["read_public"] = client.file("data://demo/open/readme.txt").getString()
    seen["write_named_connector_path"] = ok(lambda: client.file(input["s3out"]).put("on s3"))
    seen["read_connector_everyone_reads"] = client.file("s3://shared/keep.txt").getString()
    seen["read_owners_algo_collection"] = client.file("data://anowell/algo_only/note.txt").getString()
    seen["root_listing"] = [d["name"] for d in client.getHelper("/v1/data/").json()["folders"]]
    seen["my_collections"] = sorted(d.getName() for d in client.dir("data://.my").dirs())
    public = {"acl": {"read": ["user://*"]}}
    seen["refused"] = {
        "read_unnamed_private": status(client, "GET", "/v1/data/.my/secrets/diary.txt"),
        "list_unnamed_private": status(client, "GET", "/v1/data/.my/secrets"),
        "read_beside_named_input": status(client, "GET", "/v1/data/.my/inbox/other.txt"),
        "read_owners_private": status(client, "GET", "/v1/data/anowell/own_private/x.txt"),
        "acl_unnamed_to_public": client.patchHelper("/v1/data/.my/secrets", public).status_code,
        "acl_named_to_public": client.patchHelper("/v1/data/.my/drop", public).status_code,
        "delete_unnamed": status(client, "DELETE", "/v1/data/.my/secrets/diary.txt"),
        "delete_named_input": status(client, "DELETE", "/v1/data/.my/inbox/in.txt"),
        "delete_named_folder": status(client, "DELETE", "/v1/data/.my/drop", params={"force": "true"}),
        "plant_beside_named_output": status(client, "PUT", "/v1/data/.my/results/planted.txt", data=b"x"),
        "plant_unnamed": status(client, "PUT", "/v1/data/.my/secrets/planted.txt", data=b"x"),
        "create_collection": status(client, "POST", "/v1/data/.my", json={"name": "planted"}),
        "plant_on_connector": status(client, "PUT", "/v1/connector/s3/shared/planted.txt", data=b"x"),
        "delete_on_connector": status(client, "DELETE", "/v1/connector/s3/shared/keep.txt"),
        "move_named_input_away": status(client, "POST", "/v1/algofs/move",
                                        json={"from": input["in"], "to": input["folder"] + "/moved.txt"}),
        "create_algorithm": status(client, "POST", "/v1/algorithms/alice",
                                   json={"name": "planted", "details": {}, "settings": {}}),
        "upload_source": status(client, "PUT", "/v1/algorithms/anowell/probe/source", data=b"x = 1",
                                headers={"Content-Type": "text/x-python"}),
        "publish": status(client, "POST", "/v1/algorithms/anowell/probe/versions",
                          json={"version_info": {"version_type": "minor"}}),
    }
    return seen
'''

OUTER = HELPERS + r'''

def apply(input):
    client = Algorithmia.client()
    client.file("data://.session/from_outer.txt").put("outer was here")
    # the nested input names a folder inside the outer's and a file the outer may not reach
    seen = client.algo("anowell/inner").pipe(
        {"folder": input["folder"] + "/deeper", "wider": "data://.my/secrets/diary.txt"}).result
    seen["outer_reads_inner_session_file"] = client.file("data://.session/from_inner.txt").getString()
    return seen
'''

INNER = HELPERS + r'''

def apply(input):
    client = Algorithmia.client()
    return {
        "session_from_outer": client.file("data://.session/from_outer.txt").getString(),
        "write_session": ok(lambda: client.file("data://.session/from_inner.txt").put("inner was here")),
        "write_named": ok(lambda: client.file(input["folder"] + "/inner.txt").put("inner")),
        "read_wider": status(client, "GET", "/v1/data/.my/secrets/diary.txt"),
        "write_wider": status(client, "PUT", "/v1/data/.my/secrets/inner.txt", data=b"x"),
        "write_outside_nested_scope": status(client, "PUT", "/v1/data/.my/drop/beside.txt", data=b"x"),
    }
'''

KEEPER = r'''
import os
import time
import Algorithmia


def apply(input):
    client = Algorithmia.client()
    client.file("data://.session/kept.txt").put("kept")
    client.file(input).put(os.environ["ALGORITHMIA_API_KEY"])
    time.sleep(0.3)
    return "done"
'''


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("call-scope")
    # alice's connector: every user may read it, only she writes
    (root / "connectors.json").write_text(json.dumps({"connectors": {
        "s3": {"path": "connectors/s3", "owner": "alice"}}}))
    with ServerWithOptions(root, [], light=True) as server:
        alice, demo, anowell = (Algorithmia.client(api_key=DEMO_USERS[u], api_address=server.url)
                                for u in ("alice", "demo", "anowell"))
        for name in ("secrets", "inbox", "results", "drop"):
            alice.dir(f"data://.my/{name}").create(ReadAcl.private)
        alice.file("data://.my/secrets/diary.txt").put("alice's diary")
        alice.file("data://.my/inbox/in.txt").put("the input")
        alice.file("data://.my/inbox/other.txt").put("not named")
        alice.dir("s3://shared").create()
        alice.file("s3://shared/keep.txt").put("on the connector")
        demo.dir("data://.my/open").create(ReadAcl.public)
        demo.file("data://.my/open/readme.txt").put("for everyone")
        anowell.dir("data://.my/algo_only").create()  # default ACL: algorithms of anowell
        anowell.file("data://.my/algo_only/note.txt").put("for anowell's algorithms")
        anowell.dir("data://.my/own_private").create(ReadAcl.private)
        anowell.file("data://.my/own_private/x.txt").put("anowell's own")
        for name, source in (("probe", PROBE), ("outer", OUTER), ("inner", INNER), ("keeper", KEEPER)):
            publish_source(server.url, "anowell", name, source)
        yield server


@pytest.fixture
def alice(server):
    return Algorithmia.client(api_key=DEMO_USERS["alice"], api_address=server.url)


def no_session_left(server) -> bool:
    sessions = server.root / "data" / ".session"
    return not sessions.exists() or not any(sessions.iterdir())


def get(server, path, key):
    return requests.get(server.url + path, headers={"Authorization": key}, timeout=10)


def test_a_called_algorithm_reaches_only_what_its_input_names(server, alice):
    algo = alice.algo("anowell/probe")
    algo.set_options(timeout=60)
    seen = algo.pipe({"in": "data://.my/inbox/in.txt", "out": "data://.my/results/out.txt",
                      "folder": "data://.my/drop", "s3out": "s3://shared/out.txt"}).result
    refused = seen.pop("refused")
    assert refused == {action: 403 for action in refused}, refused
    assert seen["read_named_input"] == "the input"
    for action in ("write_named_output", "replace_named_output", "write_in_named_folder",
                   "folder_in_named_folder", "write_session", "write_named_connector_path"):
        assert seen[action] == "ok", (action, seen[action])
    assert seen["read_session"] == "scratch" and seen["list_session"] == ["scratch.txt"]
    assert seen["read_public"] == "for everyone"
    assert seen["read_connector_everyone_reads"] == "on the connector"
    assert seen["read_owners_algo_collection"] == "for anowell's algorithms"  # algo://.my/* as before
    assert ".session" not in seen["root_listing"] and "alice" in seen["root_listing"]
    assert seen["my_collections"] == ["drop", "inbox", "results"]  # not "secrets"

    # what alice finds afterwards, with her own key
    assert alice.file("data://.my/secrets/diary.txt").getString() == "alice's diary"
    assert alice.file("data://.my/inbox/in.txt").getString() == "the input"
    for name in ("secrets", "drop"):
        assert alice.dir(f"data://.my/{name}").get_permissions().read_acl == AclType.private
    for planted in ("data://.my/results/planted.txt", "data://.my/secrets/planted.txt",
                    "data://.my/drop/moved.txt", "s3://shared/planted.txt"):
        assert not alice.file(planted).exists(), planted
    assert alice.file("s3://shared/keep.txt").exists()
    assert alice.file("s3://shared/out.txt").getString() == "on s3"
    assert not alice.dir("data://.my/planted").exists()
    assert not Algorithmia.client(api_key=DEMO_USERS["alice"], api_address=server.url).algo(
        "alice/planted").exists()
    assert alice.file("data://.my/results/out.txt").getString() == "result: the input"
    assert alice.file("data://.my/drop/made.txt").getString() == "made"

    # the call's session and token ended with it; nobody else ever sees .session
    assert no_session_left(server)
    assert get(server, "/v1/data/.session/scratch.txt", DEMO_USERS["alice"]).status_code == 404
    assert get(server, "/v1/data/.my/inbox/in.txt", seen["token"]).status_code == 401
    root = get(server, "/v1/data/", DEMO_USERS["alice"]).json()
    assert ".session" not in [folder["name"] for folder in root["folders"]]


def test_a_nested_call_shares_the_session_and_gets_at_most_its_parents_scope(server, alice):
    alice.dir("data://.my/drop/deeper").create()
    algo = alice.algo("anowell/outer")
    algo.set_options(timeout=60)
    seen = algo.pipe({"folder": "data://.my/drop"}).result
    assert seen["session_from_outer"] == "outer was here"
    assert seen["outer_reads_inner_session_file"] == "inner was here"
    assert seen["write_session"] == "ok" and seen["write_named"] == "ok"
    assert seen["read_wider"] == 403 and seen["write_wider"] == 403
    assert seen["write_outside_nested_scope"] == 403  # in the outer's folder, not the inner's
    assert alice.file("data://.my/drop/deeper/inner.txt").getString() == "inner"
    assert not alice.file("data://.my/secrets/inner.txt").exists()
    assert no_session_left(server)


def test_a_void_call_ends_its_token_and_session_when_it_ends(server, alice):
    algo = alice.algo("anowell/keeper")
    algo.set_options(output=OutputType.void, timeout=60)
    assert algo.pipe("data://.my/results/token.txt").async_protocol == "void"
    deadline = time.monotonic() + 30
    while not alice.file("data://.my/results/token.txt").exists():
        assert time.monotonic() < deadline, "the void call never wrote its output"
        time.sleep(0.1)
    token = alice.file("data://.my/results/token.txt").getString()
    while get(server, "/v1/data/.session/kept.txt", token).status_code != 401:
        assert time.monotonic() < deadline, "the token outlived the call"
        time.sleep(0.1)
    assert no_session_left(server)
