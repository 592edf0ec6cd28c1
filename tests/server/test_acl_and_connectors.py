"""The ACL store and connector configuration on their own (no server): layouts, defaults, rights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from algofs_jupyter.server.acl import AclStore
from algofs_jupyter.server.connectors import load_connectors, read_only_warning
from algofs_jupyter.server.storage import LocalBackend
from algofs_jupyter.server.users import DEMO_USERS, multi_user_server


@pytest.fixture
def store(tmp_path) -> AclStore:
    return AclStore(LocalBackend(tmp_path / "data", tmp_path / "meta"))


def test_acls_of_any_collection_name_and_the_earlier_layout(store, tmp_path):
    assert store.read_list("u", "c") == ["algo://.my/*"] and not store.has("u", "c")
    store.set_read_list("u", "c" * 255, [])
    assert store.read_list("u", "c" * 255) == []
    legacy = tmp_path / "meta" / "acl" / "u" / "old.json"  # written by earlier versions
    legacy.parent.mkdir(parents=True, exist_ok=True)
    legacy.write_text(json.dumps({"read": ["user://*"]}))
    assert store.read_list("u", "old") == ["user://*"] and store.has("u", "old")
    store.move("u", "old", "new")
    assert store.read_list("u", "new") == ["user://*"] and not legacy.exists()
    assert store.read_list("u", "old") == ["algo://.my/*"]


def test_a_damaged_acl_counts_as_private(store, tmp_path):
    for damage in (b"{not json", b"[" * 100_000, b'{"read": ["everyone"]}'):
        store.backend.write_meta(("acl", "u", "c", "read.json"), damage)
        assert store.read_list("u", "c") == []
        assert not store.may_read("u", "c", "other", None) and store.may_read("u", "c", "u", None)


def test_connector_rights(tmp_path):
    (tmp_path / "connectors.json").write_text(json.dumps({"connectors": {
        "s3": {"path": "c/s3", "owner": "ann"},
        "dropbox": {"path": "c/db", "owner": "ann", "write": ["bob"], "read": ["bob"]},
        "gs": {"path": "c/gs"},
    }}))
    connectors = load_connectors(tmp_path)
    s3, dropbox, gs = connectors["s3"], connectors["dropbox"], connectors["gs"]
    assert [s3.may(r, "bob") for r in ("read", "write", "delete")] == [True, False, False]
    assert all(s3.may(r, "ann") for r in ("read", "write", "delete"))
    assert [dropbox.may(r, "bob") for r in ("read", "write", "delete")] == [True, True, False]
    assert not dropbox.may("read", "eve")
    assert all(gs.may(r, "eve") for r in ("read", "write", "delete"))  # no owner: shared
    for bad in ({"path": "x", "owner": 5}, {"path": "x", "write": "bob"}, {"path": "x", "type": "ftp"}):
        (tmp_path / "connectors.json").write_text(json.dumps({"connectors": {"s3": bad}}))
        with pytest.raises(ValueError):
            load_connectors(tmp_path)


def test_the_default_connectors_of_a_single_user_server_are_owned_by_that_user(tmp_path):
    connectors = load_connectors(tmp_path, default_owner="me")
    assert {c.owner for c in connectors.values()} == {"me"}
    assert not connectors["s3"].may("write", "someone-else")


def test_who_counts_as_several_people():
    assert multi_user_server({}, Path("users.json"))  # JupyterHub's users file starts empty
    assert multi_user_server({"me": "k"}, Path("users.json"))  # and gains users while the server runs
    assert multi_user_server({"ann": "k1", "bob": "k2"}, None)
    assert not multi_user_server({"me": "k"}, None)  # --user
    assert not multi_user_server(dict(DEMO_USERS), None)  # a bare --demo: anyone may act as anyone


def test_on_a_multi_user_server_connectors_nobody_claimed_are_read_only(tmp_path):
    (tmp_path / "connectors.json").write_text(json.dumps({"connectors": {
        "s3": {"path": "c/s3"},  # written by an earlier version: no owner, no lists
        "dropbox+drop": {"path": "c/drop", "write": ["*"]},  # anyone adds; delete unsaid
        "dropbox+team": {"path": "c/team", "shared": True},
        "s3+mine": {"path": "c/mine", "owner": "ann"},
        "s3+ro": {"path": "c/ro", "write": [], "delete": []},
    }}))
    connectors = load_connectors(tmp_path, multi_user=True)
    rights = {cid: [c.may(r, "bob") for r in ("read", "write", "delete")] for cid, c in connectors.items()}
    assert rights == {"s3": [True, False, False], "dropbox+drop": [True, True, False],
                      "dropbox+team": [True, True, True], "s3+mine": [True, False, False],
                      "s3+ro": [True, False, False]}
    warning = read_only_warning(connectors)
    assert warning is not None and "dropbox+drop (nobody may delete), s3 (read-only)." in warning
    assert not any(f"{cid} (" in warning for cid in ("team", "mine", "ro")) and '"owner"' in warning
    # the same file on a one-person server: shared, as before, and nothing to warn about
    single = load_connectors(tmp_path)
    assert all(single["s3"].may(r, "bob") for r in ("read", "write", "delete"))
    assert read_only_warning(single) is None
    (tmp_path / "connectors.json").write_text(json.dumps({"connectors": {"s3": {"path": "x", "shared": 1}}}))
    with pytest.raises(ValueError, match="shared"):
        load_connectors(tmp_path, multi_user=True)


def test_the_default_connectors_of_a_fresh_multi_user_root_are_read_only(tmp_path):
    connectors = load_connectors(tmp_path, multi_user=True)
    assert sorted(connectors) == ["dropbox", "s3"]
    for connector in connectors.values():
        assert connector.owner is None and connector.may("read", "anyone")
        assert not connector.may("write", "anyone") and not connector.may("delete", "anyone")
    assert "dropbox (read-only), s3 (read-only)" in (read_only_warning(connectors) or "")


def test_seeding_a_root_of_an_earlier_version_gives_its_demo_connectors_an_owner(tmp_path):
    from algofs_jupyter.server.demo.seed import merge_connectors

    (tmp_path / "connectors.json").write_text(json.dumps({"connectors": {
        "s3": {"path": "connectors/s3"}, "mine": {"path": "elsewhere"}}}))
    merge_connectors(tmp_path)
    config = json.loads((tmp_path / "connectors.json").read_text())["connectors"]
    assert config["s3"]["owner"] == "demo" and config["s3+images"]["owner"] == "demo"
    assert config["mine"] == {"path": "elsewhere"}  # the operator's own connectors are left alone
