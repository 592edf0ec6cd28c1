"""Connectors on a server several people use (started like JupyterHub's: ``--users-file``): nobody may
change what nobody was given, the operator hears so at start (log and ``/healthz``), and an operator's
``connectors.json`` gives a team what docs/deploy.md says it does. Through the official client."""

from __future__ import annotations

import json
import secrets

import Algorithmia
import pytest
import requests

from algofs_jupyter.server.embedded_server import EmbeddedServer


def clients(server: EmbeddedServer) -> tuple[Algorithmia.client.Client, Algorithmia.client.Client]:
    ann, bob = (Algorithmia.client(api_key=server.users[name], api_address=server.url)
                for name in ("ann", "bob"))
    return ann, bob


def health(server: EmbeddedServer) -> dict:
    return requests.get(f"{server.url}/healthz", timeout=10).json()


def refused(action) -> None:
    with pytest.raises(Exception, match="403|may not"):  # the 2.0.5 client raises a bare Exception on PUT
        action()


def test_a_fresh_multi_user_root_gets_read_only_connectors_and_a_warning(tmp_path):
    root = tmp_path / "root"
    users = {name: secrets.token_urlsafe(24) for name in ("ann", "bob")}
    with EmbeddedServer(root, users=users) as server:
        for cid in ("s3", "dropbox"):  # what an operator put there by hand is readable, and stays
            (root / "connectors" / cid / "ann.txt").write_text(f"ann's {cid} notes")
        ann, bob = clients(server)
        for cid in ("s3", "dropbox"):
            for who in (ann, bob):
                assert who.file(f"{cid}://ann.txt").getString() == f"ann's {cid} notes"
                refused(lambda who=who, cid=cid: who.file(f"{cid}://new.txt").put("mine"))
                refused(lambda who=who, cid=cid: who.file(f"{cid}://ann.txt").put("overwritten"))
                refused(lambda who=who, cid=cid: who.file(f"{cid}://ann.txt").delete())
                refused(lambda who=who, cid=cid: who.dir(f"{cid}://folder").create())
            assert (root / "connectors" / cid / "ann.txt").read_text() == f"ann's {cid} notes"
            assert not (root / "connectors" / cid / "new.txt").exists()
        answer = health(server)
        assert answer["status"] == "ok"
        [warning] = [w for w in answer["warnings"] if "connectors without an owner" in w]
        assert "dropbox (read-only), s3 (read-only)" in warning and '"owner"' in warning
        assert str(root) not in warning  # /healthz answers anyone: no paths
    log = server.log_path.read_text()
    assert "connectors without an owner on this multi-user server: dropbox (read-only), s3 (read-only)" in log
    assert str(root / "connectors.json") in log


def test_an_operator_gives_a_team_writable_connectors(tmp_path):
    """docs/deploy.md: an owner (others read), an add-only drop box, a shared folder for a trusting team."""
    root = tmp_path / "root"
    root.mkdir()
    (root / "connectors.json").write_text(json.dumps({"connectors": {
        "s3": {"path": "connectors/s3", "owner": "ann"},
        "dropbox": {"path": "connectors/dropbox", "write": ["ann", "bob"], "delete": []},
        "dropbox+team": {"path": "connectors/team", "shared": True},
    }}))
    users = {name: secrets.token_urlsafe(24) for name in ("ann", "bob")}
    with EmbeddedServer(root, users=users) as server:
        ann, bob = clients(server)
        assert not any("connector" in warning for warning in health(server).get("warnings", []))
        ann.file("s3://ann.txt").put("ann's")
        assert bob.file("s3://ann.txt").getString() == "ann's"
        refused(lambda: bob.file("s3://ann.txt").put("bob's"))
        refused(lambda: bob.file("s3://ann.txt").delete())
        refused(lambda: bob.file("s3://bob.txt").put("bob's"))
        ann.file("dropbox://ann.txt").put("ann's")
        bob.file("dropbox://bob.txt").put("bob's")  # anyone listed adds files ...
        refused(lambda: bob.file("dropbox://ann.txt").put("bob's"))  # ... and replaces or deletes none
        refused(lambda: bob.file("dropbox://ann.txt").delete())
        refused(lambda: ann.file("dropbox://bob.txt").delete())
        ann.file("dropbox+team://plan.txt").put("v1")
        bob.file("dropbox+team://plan.txt").put("v2")  # shared: everyone may change everything
        assert ann.file("dropbox+team://plan.txt").getString() == "v2"
        bob.file("dropbox+team://plan.txt").delete()
    assert "connectors without an owner" not in server.log_path.read_text()
