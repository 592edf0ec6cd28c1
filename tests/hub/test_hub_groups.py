"""The hub-groups sync (algofs_jupyter/hub_groups.py): which groups become organizations and with which roles,
what is skipped and said so, the file's mode and owner, and the sync against a real JupyterHub whose API pages
its answers (two items a page), with a token holding only the service's scopes."""

from __future__ import annotations

import json
import logging
import os
import shutil

import pytest
from hub_deployment import bare_hub, local_accounts, proxy_command

from algofs_jupyter.hub_groups import (
    SERVICE_SCOPES,
    GroupPolicy,
    GroupSync,
    HubClient,
    HubGroup,
    organizations_from_groups,
    write_organizations,
)

SERVICE = "algofsgrpsvc"


def orgs(groups: list[HubGroup], policy: GroupPolicy = GroupPolicy(), admins: set[str] = frozenset(),
         users: set[str] = frozenset()):
    return organizations_from_groups(groups, set(admins), set(users), policy)


def test_every_group_is_an_org_of_its_members():
    found = orgs([HubGroup("physics", ("alice", "bob")), HubGroup("empty", ())])
    assert found.document() == {"organizations": {
        "empty": {"members": {}},
        "physics": {"members": {"alice": "member", "bob": "member"}}}}
    assert found.skipped == ()


def test_admins_come_from_the_group_property_and_from_the_hub_admins():
    groups = [HubGroup("physics", ("alice", "bob", "carol", "dave"), {"algofs_admins": "alice, bob"}),
              HubGroup("chem", ("erin", "frank"), {"algofs_admins": ["frank", "mallory"]})]
    found = orgs(groups, admins={"dave", "zoe"})
    assert found.members == {
        "physics": {"alice": "admin", "bob": "admin", "carol": "member", "dave": "admin"},
        # mallory is named but not a member: named admins are chosen among the members only
        "chem": {"erin": "member", "frank": "admin"}}
    no_hub_admins = orgs(groups, GroupPolicy(hub_admins=False), admins={"dave"})
    assert no_hub_admins.members["physics"]["dave"] == "member"
    other_property = orgs(groups, GroupPolicy(admins_property="leads"), admins=set())
    assert set(other_property.members["physics"].values()) == {"member"}


def test_a_prefix_selects_the_groups_and_is_not_part_of_the_org_name():
    groups = [HubGroup("team_physics", ("alice",)), HubGroup("physics", ("bob",)), HubGroup("staff", ("c",))]
    assert orgs(groups, GroupPolicy(prefix="team_")).members == {"physics": {"alice": "member"}}


def test_names_the_api_cannot_carry_are_skipped_with_a_reason():
    groups = [HubGroup("data-science", ("alice",)), HubGroup("ok", ("alice", "bad name", "x/y", "bob")),
              HubGroup("bob", ("alice",)), HubGroup("é", ("alice",)), HubGroup("team_", ("alice",))]
    found = orgs(groups, users={"alice", "bob"})
    assert found.members == {"ok": {"alice": "member", "bob": "member"}, "team_": {"alice": "member"}}
    unusable = "is not a usable organization name (1-64 letters, digits, _)"
    assert found.skipped == (
        "group 'bob': 'bob' is also a user's name",
        f"group 'data-science': 'data-science' {unusable}",
        "group 'ok': member 'bad name' has no usable AlgoFS name",
        "group 'ok': member 'x/y' has no usable AlgoFS name",
        f"group 'é': 'é' {unusable}",
    )
    prefixed = orgs([HubGroup("team_", ("alice",))], GroupPolicy(prefix="team_"))
    assert prefixed.members == {} and prefixed.skipped == (f"group 'team_': '' {unusable}",)


@pytest.fixture(scope="module")
def service():
    if os.geteuid() != 0 or not shutil.which("useradd"):
        pytest.skip("creates a system account: needs root and useradd")
    with local_accounts([], system=[SERVICE]) as made:
        yield made[SERVICE]


def test_the_file_is_the_service_accounts_0600_and_replaced_only_on_change(service, tmp_path):
    path = tmp_path / "organizations.json"
    first = orgs([HubGroup("physics", ("alice", "bob"))])
    assert write_organizations(path, first, SERVICE)
    assert json.loads(path.read_text()) == {
        "organizations": {"physics": {"members": {"alice": "member", "bob": "member"}}}}
    st = path.stat()
    assert oct(st.st_mode & 0o777) == "0o600" and (st.st_uid, st.st_gid) == (service.uid, service.gid)
    assert not write_organizations(path, first, SERVICE)  # same content: not rewritten
    assert path.stat().st_ino == st.st_ino
    tmp = tmp_path / "organizations.json.tmp"  # a leftover of a crash, readable by all
    tmp.write_text("{}")
    os.chmod(tmp, 0o644)
    assert write_organizations(path, orgs([HubGroup("physics", ("alice",))]), SERVICE)
    st = path.stat()
    assert oct(st.st_mode & 0o777) == "0o600" and st.st_uid == service.uid
    assert json.loads(path.read_text())["organizations"]["physics"]["members"] == {"alice": "member"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["organizations.json"]


@pytest.fixture()
def hub():
    if proxy_command() is None:
        pytest.skip("needs configurable-http-proxy (./dev.sh setup)")
    with bare_hub(SERVICE_SCOPES, admins=["dave"], page=2) as running:
        yield running


def test_the_sync_follows_a_real_hubs_groups_page_by_page(hub, service, tmp_path, caplog):
    for name in ("alice", "bob", "carol", "eve"):  # and dave, a hub admin
        hub.api("POST", f"/users/{name}")
    for group, members in (("physics", ["alice", "bob", "dave"]), ("chem", ["carol"]),
                           ("data-science", ["alice"]), ("empty", []), ("eve", ["alice"])):
        hub.api("POST", f"/groups/{group}", json={"users": members})
    hub.api("PUT", "/groups/chem/properties", json={"algofs_admins": "carol"})
    path = tmp_path / "organizations.json"
    sync = GroupSync(HubClient(hub.api_url, hub.sync_token), path, SERVICE, GroupPolicy())
    caplog.set_level(logging.INFO, logger="algofs.hub_groups")

    assert sync.sync_once()
    assert json.loads(path.read_text()) == {"organizations": {
        "chem": {"members": {"carol": "admin"}},
        "empty": {"members": {}},
        "physics": {"members": {"alice": "member", "bob": "member", "dave": "admin"}}}}
    assert "skipped: group 'data-science': 'data-science' is not a usable organization name" in caplog.text
    assert "skipped: group 'eve': 'eve' is also a user's name" in caplog.text
    caplog.clear()

    hub.api("DELETE", "/groups/physics/users", json={"users": ["bob"]})
    hub.api("POST", "/groups/chem/users", json={"users": ["bob"]})
    assert sync.sync_once()
    members = {org: entry["members"] for org, entry in json.loads(path.read_text())["organizations"].items()}
    assert members == {"chem": {"bob": "member", "carol": "admin"}, "empty": {},
                       "physics": {"alice": "member", "dave": "admin"}}
    assert "skipped" not in caplog.text  # reported when they change, not at every poll
    assert "organizations file updated" in caplog.text

    # the service's token reads groups and nothing more: it cannot change a team
    refused = HubClient(hub.api_url, hub.sync_token).session.post(f"{hub.api_url}/groups/physics/users",
                                                                   json={"users": ["eve"]}, timeout=10)
    assert refused.status_code == 403

    # a hub that does not answer (restarting, say) leaves the file as it was: nobody loses access for it
    before = path.read_text()
    hub.child.stop(term_timeout=30, kill_leftovers=True)
    caplog.clear()
    assert not sync.sync_once() and not sync.sync_once()
    assert path.read_text() == before
    assert caplog.text.count("hub groups not read (organizations file kept as it is)") == 1


def test_a_list_that_changes_between_pages_is_read_again_at_the_next_poll(hub, service, tmp_path):
    for name in ("g1", "g2", "g3", "g4"):
        hub.api("POST", f"/groups/{name}")
    client = HubClient(hub.api_url, hub.sync_token)
    deleted = []

    def delete_a_group_meanwhile(response, **kwargs):  # an admin deletes g1 once the first page is read:
        if "/groups" in response.url and not deleted:  # the next page (offset 2) now starts at g4
            deleted.append(hub.api("DELETE", "/groups/g1"))
        return response

    client.session.hooks["response"].append(delete_a_group_meanwhile)
    path = tmp_path / "organizations.json"
    sync = GroupSync(client, path, SERVICE, GroupPolicy())
    assert not sync.sync_once() and not path.exists()  # not written without g3, whose members would lose it
    assert sync.sync_once()
    assert sorted(json.loads(path.read_text())["organizations"]) == ["g2", "g3", "g4"]
