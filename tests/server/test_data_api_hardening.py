"""Data-layer hardening (issue 15): links out of the root, names checked before anything is created,
bad input answered with a 4xx, connectors with owners and rights, keep-alive connections after errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from algofs_jupyter.server.embedded_server import EmbeddedServer
from algofs_jupyter.server.users import DEMO_USERS


def assert_error(response, status, errno=None):
    assert response.status_code == status, response.text
    if response.request.method != "HEAD":
        assert isinstance(response.json()["error"]["message"], str)
        if errno:
            assert response.json()["error"]["errno"] == errno
    assert response.headers["X-Error-Message"]


# -- links planted inside a collection never lead out of the root ------------------------------------

@pytest.fixture
def planted(api_server, scratch, tmp_path) -> tuple[str, Path]:
    """``<scratch>/out`` links to a directory outside the root, ``<scratch>/leak.txt`` to a file there."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"outside the root")
    collection = api_server.root / "data" / "demo" / scratch
    (collection / "out").symlink_to(outside)
    (collection / "leak.txt").symlink_to(outside / "secret.txt")
    (collection / "inside.txt").write_bytes(b"in")
    (collection / "alias.txt").symlink_to(collection / "inside.txt")  # a link that stays inside is fine
    return scratch, outside


def test_reads_and_listings_do_not_follow_links_out(http, planted):
    scratch, _outside = planted
    base = f"/v1/data/.my/{scratch}"
    for path in (f"{base}/out/secret.txt", f"{base}/leak.txt", f"{base}/out"):
        assert_error(http("GET", path), 403, "EACCES")
        assert_error(http("HEAD", path), 403)
    listing = http("GET", base).json()
    assert [f["filename"] for f in listing["files"]] == ["alias.txt", "inside.txt"]
    assert "folders" not in listing
    assert http("GET", f"{base}/alias.txt").content == b"in"


def test_writes_and_deletes_do_not_follow_links_out(http, planted):
    scratch, outside = planted
    base = f"/v1/data/.my/{scratch}"
    assert_error(http("PUT", f"{base}/out/new.txt", data=b"planted"), 403)
    assert_error(http("PUT", f"{base}/out/secret.txt", data=b"overwritten"), 403)
    assert_error(http("PUT", f"{base}/leak.txt", data=b"overwritten", params={"offset": 0}), 403)
    assert_error(http("POST", f"{base}/out", json={"name": "made"}), 403)
    assert_error(http("DELETE", f"{base}/out/secret.txt"), 403)
    assert_error(http("DELETE", f"{base}/out", params={"force": "true"}), 403)
    moved = http("POST", "/v1/algofs/move", json={"from": f"data://.my/{scratch}/out/secret.txt",
                                                  "to": f"data://.my/{scratch}/got.txt"})
    assert_error(moved, 403)
    copied = http("POST", "/v1/algofs/copy", json={"from": f"data://.my/{scratch}/leak.txt",
                                                   "to": f"data://.my/{scratch}/got.txt"})
    assert_error(copied, 403)
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert (outside / "secret.txt").read_bytes() == b"outside the root"


# -- names are checked before anything is created ------------------------------------------------------

def test_a_252_byte_collection_is_whole_and_breaks_no_listing(api_server, http, client):
    name = "c" * 252
    created = http("POST", "/v1/data/.my", json={"name": name})
    try:
        assert created.status_code == 200, created.text
        assert http("GET", f"/v1/data/.my/{name}?acl=true").json()["acl"] == {"read": ["algo://.my/*"]}
        assert http("PUT", f"/v1/data/.my/{name}/f.txt", data=b"x").status_code == 200
        for user in ("demo", "alice"):
            assert http("GET", "/v1/data/demo", user=user).status_code == 200
        assert name not in [f["name"] for f in http("GET", "/v1/data/demo", user="alice").json()["folders"]]
    finally:
        client.dir(f"data://.my/{name}").delete(force=True)
    too_long = http("POST", "/v1/data/.my", json={"name": "c" * 256})
    assert_error(too_long, 400, "ENAMETOOLONG")
    assert not (api_server.root / "data" / "demo" / ("c" * 256)[:255]).exists()
    assert http("GET", "/v1/data/demo", user="alice").status_code == 200


@pytest.mark.parametrize("method,suffix", [("POST", ""), ("PATCH", ""), ("POST", "/v1/algofs/move"),
                                           ("POST", "/v1/algofs/utime")])
def test_deeply_nested_json_is_a_400(http, scratch, method, suffix):
    path = suffix or f"/v1/data/.my/{scratch}"
    for body in (b"[" * 200_000, b'{"name": ' + b"[" * 200_000, b'{"a":' * 100_000):
        assert_error(http(method, path, data=body, headers={"Content-Type": "application/json"}), 400)


def test_errors_answered_early_keep_the_connection_usable(api_server):
    """A request refused before its handler ran (bad path, long name) must not make the server drop
    the keep-alive connection under the client's next request (a reset, seen 1 time in 4)."""
    headers = {"Authorization": DEMO_USERS["demo"]}
    good = api_server.url + "/v1/data/.my/datasets"
    for bad in ("/v1/data/.my/a%2Fb", "/v1/data/.my/datasets/" + "e" * 256):
        for _ in range(40):
            with requests.Session() as session:
                assert session.get(api_server.url + bad, headers=headers).status_code == 400
                assert session.get(good, headers=headers).status_code == 200


# -- connectors with owners and rights -------------------------------------------------------------------

@pytest.fixture(scope="module")
def own_server(tmp_path_factory) -> Iterator[EmbeddedServer]:
    """A demo server of its own: these tests would destroy connector content on a vulnerable server."""
    server = EmbeddedServer(tmp_path_factory.mktemp("hardening-root"), demo=True, large_file_mb=0)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def call(server: EmbeddedServer, user: str, method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(method, server.url + path, headers={"Authorization": server.users[user]},
                            **kwargs)


def test_others_cannot_overwrite_or_force_delete_a_connector_they_do_not_own(own_server):
    hello = "/v1/data/s3://demo-bucket/hello.txt"
    original = call(own_server, "demo", "GET", hello).content
    assert call(own_server, "alice", "GET", hello).content == original  # others read
    assert_error(call(own_server, "alice", "PUT", hello, data=b"alice was here"), 403)
    assert_error(call(own_server, "alice", "PUT", "/v1/data/s3://demo-bucket/new.txt", data=b"x"), 403)
    assert_error(call(own_server, "alice", "DELETE", "/v1/data/s3://demo-bucket?force=true"), 403)
    assert_error(call(own_server, "alice", "DELETE", "/v1/connector/s3/demo-bucket/hello.txt"), 403)
    assert_error(call(own_server, "alice", "POST", "/v1/algofs/move",
                      json={"from": "s3://demo-bucket/hello.txt", "to": "s3://demo-bucket/moved.txt"}), 403)
    assert call(own_server, "demo", "GET", hello).content == original
    assert call(own_server, "demo", "PUT", "/v1/data/s3://demo-bucket/mine.txt", data=b"m").status_code == 200


def test_a_shared_connector_lets_others_add_but_not_destroy(own_server):
    plan = "/v1/data/dropbox+work://Projects/plan.md"
    original = call(own_server, "demo", "GET", plan).content
    added = call(own_server, "alice", "PUT", "/v1/data/dropbox+work://Projects/alice.md", data=b"a")
    assert added.status_code == 200
    assert_error(call(own_server, "alice", "PUT", plan, data=b"replaced"), 403)
    assert_error(call(own_server, "alice", "PUT", plan, data=b"!", params={"offset": 0}), 403)
    assert_error(call(own_server, "alice", "DELETE", "/v1/data/dropbox+work://Projects?force=true"), 403)
    assert call(own_server, "demo", "GET", plan).content == original
    assert call(own_server, "anowell", "GET", plan).content == original


def test_the_allowed_root_of_a_restricted_connector_cannot_be_deleted(own_server):
    for user in ("demo", "alice"):
        assert_error(call(own_server, user, "DELETE", "/v1/data/s3+images://media/images?force=true"), 403)
        assert_error(call(own_server, user, "POST", "/v1/algofs/move",
                          json={"from": "s3+images://media/images", "to": "s3+images://media/images/x"}), 403)
    assert call(own_server, "demo", "HEAD", "/v1/data/s3+images://media/images/cat.png").status_code == 200
    assert_error(call(own_server, "alice", "DELETE", "/v1/data/s3+images://media/images/cat.png"), 403)
    assert call(own_server, "demo", "DELETE", "/v1/data/s3+images://media/images/dog.png").status_code == 200


def test_connector_links_do_not_lead_out(own_server, tmp_path):
    (tmp_path / "secret").write_bytes(b"s")
    (own_server.root / "connectors" / "s3" / "demo-bucket" / "evil").symlink_to(tmp_path)
    assert_error(call(own_server, "demo", "GET", "/v1/data/s3://demo-bucket/evil/secret"), 403)
    assert_error(call(own_server, "demo", "DELETE", "/v1/data/s3://demo-bucket/evil?force=true"), 403)
    assert (tmp_path / "secret").read_bytes() == b"s"
