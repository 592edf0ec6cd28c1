"""The panel's algorithm tree (``GET /algofs/algorithms``) shows the caller's organizations beside the
caller (issue 27, item 1): a real Jupyter server with the extension, a real ``algofs serve`` with a hub
organizations file, an algorithm published in the organization through the official client."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator

import Algorithmia
import pytest
import requests

from algofs_jupyter.server.embedded_server import EmbeddedServer


@pytest.fixture(scope="module")
def org_server(tmp_path_factory) -> Iterator[EmbeddedServer]:
    base = tmp_path_factory.mktemp("org-panel")
    orgs = base / "organizations.json"
    orgs.write_text(json.dumps({"organizations": {"lab": {"members": {"ann": "member"}}}}))
    server = EmbeddedServer(base / "root", users={name: secrets.token_urlsafe(24) for name in ("ann", "cat")})
    server.serve_flags += ["--organizations-file", str(orgs), "--allow-unisolated-algorithms"]
    with server:
        ann = Algorithmia.client(api_key=server.users["ann"], api_address=server.url)
        ann.algo("lab/greeter").create(details={"label": "greeter"},
                                       settings={"algorithm_callability": "private"})
        requests.put(f"{server.url}/v1/algorithms/lab/greeter/source", timeout=30,
                     data=b"def apply(input):\n    return 'hi ' + str(input)\n",
                     headers={"Authorization": server.users["ann"], "Content-Type": "text/x-python"}
                     ).raise_for_status()
        ann.algo("lab/greeter").publish(version_info={"version_type": "minor"})
        yield server


@pytest.fixture
def algofs_config(org_server, tmp_path) -> dict:
    key = tmp_path / "ann.key"
    key.write_text(org_server.users["ann"])
    key.chmod(0o600)
    return {"api_address": org_server.url, "api_key_file": str(key), "username": "ann",
            "cache_dir": str(tmp_path / "cache"), "auto_mount": False, "mount_timeout": 30.0}


async def test_the_algorithm_tree_lists_the_callers_organizations(call, no_stale_mounts):
    code, body = await call("GET", "algorithms")
    assert code == 200
    assert {"user": "lab", "name": "greeter", "versions": ["0.1.0", "latest"]} in body["algorithms"]


async def test_the_panel_lists_the_callers_organizations_and_their_folders(call, no_stale_mounts):
    code, body = await call("GET", "organizations")
    assert code == 200
    assert body == {"organizations": [{"name": "lab", "role": "member", "path": "algofs/data/lab"}]}
