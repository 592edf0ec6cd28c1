"""``algofs serve --storage s3://…`` as a deployment: several servers on one bucket, an ``s3`` connector on a
second bucket with its own credentials, interrupted uploads, bounded memory. Real SeaweedFS, real servers,
the official client."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import Algorithmia
import pytest
import requests
from Algorithmia.errors import DataApiError
from s3_fixtures import DATA_BUCKET, TEAM_BUCKET, TEAM_PROFILE, s3_server
from waiting import wait_until

from algofs_jupyter.server.embedded_server import EmbeddedServer
from algofs_jupyter.testing.rss import RssSampler

MiB = 1024 * 1024
USERS = {"demo": "sim-k-demo-s3", "alice": "sim-k-alice-s3"}


def client_of(server: EmbeddedServer, user: str = "demo") -> Algorithmia.client.Client:
    return Algorithmia.client(api_key=USERS[user], api_address=server.url)


@pytest.fixture(scope="module")
def two_servers(s3_store, tmp_path_factory) -> Iterator[tuple[EmbeddedServer, EmbeddedServer]]:
    """Two ``algofs serve`` processes, separate roots, one bucket prefix: a load balancer's view."""
    prefix = f"shared-{uuid.uuid4().hex[:8]}"
    first = s3_server(s3_store, tmp_path_factory.mktemp("serve-a"), prefix, users=USERS)
    second = s3_server(s3_store, tmp_path_factory.mktemp("serve-b"), prefix, users=USERS)
    try:
        first.start()
        second.start()
        yield first, second
    finally:
        first.stop()
        second.stop()


def test_what_one_server_writes_the_other_lists_and_reads(two_servers):
    a, b = (client_of(s) for s in two_servers)
    a.dir("data://.my/shared").create()
    a.file("data://.my/shared/small.txt").put("from server a")
    big = os.urandom(20 * MiB + 7)  # multipart on the way in
    a.file("data://.my/shared/big.bin").put(big)
    a.dir("data://.my/shared/empty").create()
    assert sorted(f.getName() for f in b.dir("data://.my/shared").files()) == ["big.bin", "small.txt"]
    assert [d.getName() for d in b.dir("data://.my/shared").dirs()] == ["empty"]
    assert b.file("data://.my/shared/small.txt").getString() == "from server a"
    assert b.file("data://.my/shared/big.bin").getBytes() == big
    # validators agree, so a mount behind a load balancer keeps its cache whichever server answers
    heads = [requests.head(f"{s.url}/v1/data/.my/shared/big.bin", headers={"Authorization": USERS["demo"]})
             for s in two_servers]
    assert heads[0].headers["ETag"] == heads[1].headers["ETag"]
    assert heads[0].headers["Last-Modified"] == heads[1].headers["Last-Modified"]
    ranged = requests.get(f"{two_servers[1].url}/v1/data/.my/shared/big.bin",
                          headers={"Authorization": USERS["demo"], "Range": "bytes=10485755-10485764"})
    assert ranged.status_code == 206 and ranged.content == big[10485755:10485765]
    # a change through b shows through a
    b.file("data://.my/shared/small.txt").put("replaced via b")
    assert a.file("data://.my/shared/small.txt").getString() == "replaced via b"
    b.file("data://.my/shared/small.txt").delete()
    assert not a.file("data://.my/shared/small.txt").exists()
    b.dir("data://.my/shared").delete(force=True)
    assert not a.dir("data://.my/shared").exists()


def test_acls_live_in_the_bucket(two_servers, s3_store):
    from Algorithmia.acl import ReadAcl

    a = client_of(two_servers[0])
    alice_on_b = client_of(two_servers[1], "alice")
    a.dir("data://.my/secret").create(ReadAcl.private)
    a.file("data://.my/secret/x.txt").put("hidden")
    with pytest.raises(DataApiError):
        alice_on_b.file("data://demo/secret/x.txt").getString()
    a.dir("data://.my/secret").update_permissions(ReadAcl.public)
    assert alice_on_b.file("data://demo/secret/x.txt").getString() == "hidden"
    prefix = two_servers[0].storage.removeprefix(f"s3://{DATA_BUCKET}/")
    listed = s3_store.client().list_objects_v2(Bucket=DATA_BUCKET, Prefix=f"{prefix}/meta/")
    assert f"{prefix}/meta/acl/demo/secret/read.json" in [o["Key"] for o in listed["Contents"]]
    a.dir("data://.my/secret").delete(force=True)


def test_interrupted_upload_keeps_the_old_object_and_no_upload_lingers(two_servers, s3_store):
    server = two_servers[0]
    client = client_of(server)
    client.dir("data://.my/atomic").create()
    client.file("data://.my/atomic/doc.bin").put(b"version one")
    url = urlsplit(server.url)
    with socket.create_connection((url.hostname, url.port)) as sock:
        sock.sendall((f"PUT /v1/data/.my/atomic/doc.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      f"Authorization: {USERS['demo']}"
                      f"\r\nContent-Length: {40 * MiB}\r\n\r\n").encode())
        chunk = os.urandom(MiB)
        for _ in range(20):  # half the body: two multipart parts are on the server already
            sock.sendall(chunk)
    # parts in flight finish before the abort (up to MAX_PARTS_IN_FLIGHT of them): give a loaded box time
    def lingering() -> list:
        uploads = s3_store.client().list_multipart_uploads(Bucket=DATA_BUCKET).get("Uploads") or []
        return [u["Key"] for u in uploads]
    assert wait_until(lambda: not lingering(), timeout=60), lingering()
    assert client.file("data://.my/atomic/doc.bin").getBytes() == b"version one"
    client.dir("data://.my/atomic").delete(force=True)


@pytest.mark.slow
def test_server_memory_stays_flat_during_a_large_s3_upload_and_download(two_servers, tmp_path):
    server = two_servers[0]
    client_of(server).dir("data://.my/large").create()
    source = tmp_path / "big.bin"
    with open(source, "wb") as handle:
        for _ in range(512):
            handle.write(os.urandom(MiB))
    url = f"{server.url}/v1/data/.my/large/big.bin"
    headers = {"Authorization": USERS["demo"]}
    sampler = RssSampler(server.pid)
    sampler.start()
    try:
        with open(source, "rb") as handle:
            assert requests.put(url, data=handle, headers=headers, timeout=600).status_code == 200
        with requests.get(url, headers=headers, stream=True, timeout=600) as response:
            received = sum(len(c) for c in response.iter_content(MiB))
    finally:
        growth = sampler.stop()
    assert received == 512 * MiB
    assert growth < 100 * MiB, f"server RSS grew by {growth / MiB:.0f} MiB"


@pytest.fixture(scope="module")
def team_connector_server(s3_store, tmp_path_factory) -> Iterator[EmbeddedServer]:
    """A local-storage server whose ``s3+team`` connector is the team bucket, with its own account
    (profile ``team``: that bucket only) and a path restriction to ``shared/``."""
    root = tmp_path_factory.mktemp("serve-team")
    connectors = {"s3+team": {"type": "s3", "url": f"s3://{TEAM_BUCKET}/projects",
                              "endpoint": s3_store.account.endpoint, "region": s3_store.account.region,
                              "profile": TEAM_PROFILE, "allowed_paths": ["shared"], "owner": "demo"}}
    (root / "connectors.json").write_text(json.dumps({"connectors": connectors}))
    server = EmbeddedServer(root, users=USERS, env=s3_store.env)
    try:
        server.start()
        yield server
    finally:
        server.stop()


def test_s3_connector_on_a_second_bucket_with_its_own_credentials(team_connector_server, s3_store):
    demo, alice = client_of(team_connector_server), client_of(team_connector_server, "alice")
    demo.file("s3+team://shared/report.csv").put("a,b\n1,2\n")
    team = s3_store.server.accounts[TEAM_PROFILE].client()
    body = team.get_object(Bucket=TEAM_BUCKET, Key="projects/shared/report.csv")["Body"].read()
    assert body == b"a,b\n1,2\n"
    assert alice.file("s3+team://shared/report.csv").getString() == "a,b\n1,2\n"  # read: everyone
    with pytest.raises(Exception, match="403"):  # the 2.0.5 client raises a bare Exception on a PUT
        alice.file("s3+team://shared/report.csv").put("overwrite")  # write and delete: the owner
    assert [f.getName() for f in demo.dir("s3+team://shared").files()] == ["report.csv"]
    # the path restriction still holds: the connector root and other paths answer 403
    for path in ("/v1/connector/s3+team/", "/v1/connector/s3+team/other/x.txt"):
        answer = requests.get(team_connector_server.url + path, headers={"Authorization": USERS["demo"]})
        assert answer.status_code == 403 and answer.json()["error"]["message"]
    # and the connector's account really is scoped to its bucket
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError):
        team.list_objects_v2(Bucket=DATA_BUCKET)
    demo.file("s3+team://shared/report.csv").delete()


def test_bad_storage_urls_and_credentials_on_the_command_line_are_refused(tmp_path):
    for storage in ("http://bucket/x", "s3://"):
        done = subprocess.run([sys.executable, "-m", "algofs_jupyter", "serve", "--root", str(tmp_path),
                               "--user", "u", "--storage", storage], capture_output=True, text=True,
                              env={**os.environ, "ALGOFS_SERVE_API_KEY": "k"}, timeout=60)
        assert done.returncode != 0 and "--storage" in done.stderr, done.stderr
    connectors = {"s3": {"type": "s3", "url": "s3://b/p", "aws_secret_access_key": "x"}}
    (tmp_path / "connectors.json").write_text(json.dumps({"connectors": connectors}))
    done = subprocess.run([sys.executable, "-m", "algofs_jupyter", "serve", "--root", str(tmp_path),
                           "--user", "u", "--port", "0"], env={**os.environ, "ALGOFS_SERVE_API_KEY": "k"},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "profile" in done.stderr


def test_a_path_past_the_stores_key_limit_is_a_400_enametoolong_not_a_500(two_servers):
    """Names within the API's limits (255 per name, 4095 per path) but past S3's 1024-byte keys: every
    verb answers 400 ENAMETOOLONG (it was a 500 from the store's KeyTooLongError) and nothing is made."""
    server = two_servers[0]
    base = f"{server.url}/v1/data/.my/deep-{uuid.uuid4().hex[:6]}"
    headers = {"Authorization": USERS["demo"], "Host": "127.0.0.1"}
    assert requests.post(f"{server.url}/v1/data/.my", json={"name": base.rsplit("/", 1)[1]},
                         headers=headers).status_code == 200
    path = base
    for _ in range(6):  # 6 x 201 bytes: past 1024 with the bucket prefix, far within 4095
        answer = requests.post(path, json={"name": "d" * 200}, headers=headers)
        if answer.status_code != 200:
            break
        path += "/" + "d" * 200
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["errno"] == "ENAMETOOLONG"
    deeper = f"{path}/{'d' * 200}"
    for method, kwargs in (("PUT", {"data": b"x"}), ("GET", {}), ("HEAD", {}), ("DELETE", {})):
        answer = requests.request(method, deeper, headers=headers, **kwargs)
        assert answer.status_code in (400, 404), (method, answer.status_code, answer.text)
        assert answer.status_code != 500
    assert requests.put(deeper, data=b"x", headers=headers).status_code == 400
    requests.delete(base, params={"force": "true"}, headers=headers)
