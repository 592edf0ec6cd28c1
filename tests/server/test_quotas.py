"""Per-user storage quotas of ``algofs serve`` (server/quota.py, docs/server.md "Quotas"): a real server on
127.0.0.1 per test, with two users; the official client where users touch it, raw HTTP for the rest. The
tests marked ``both`` run on the local and the S3 backend (SeaweedFS, tests/s3_fixtures.py)."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import Algorithmia
import pytest
import requests
from s3_fixtures import DATA_BUCKET, S3Store, s3_server
from waiting import wait_until

from algofs_jupyter.server.embedded_server import EmbeddedServer

KIB, MIB = 1 << 10, 1 << 20
QUOTA_BYTES = 1 * MIB
QUOTA_FILES = 12
both = pytest.mark.parametrize("backend", ["local", "s3"])


@dataclass
class QuotaServer:
    server: EmbeddedServer
    backend: str
    quotas_file: Path
    store: S3Store | None = None  # the SeaweedFS of an s3 run
    prefix: str = ""

    @property
    def users(self) -> dict[str, str]:
        return self.server.users

    def client(self, user: str) -> Algorithmia.client.Client:
        return Algorithmia.client(api_key=self.users[user], api_address=self.server.url)

    def http(self, method: str, path: str, user: str = "alice", **kwargs) -> requests.Response:
        headers = {"Authorization": self.users[user], **kwargs.pop("headers", {})}
        return requests.request(method, self.server.url + path, headers=headers, timeout=60, **kwargs)

    def put(self, path: str, body, user: str = "alice", **kwargs) -> requests.Response:
        return self.http("PUT", f"/v1/data/{user}/{path}", user, data=body, **kwargs)

    def quota(self, user: str = "alice") -> dict:
        answer = self.http("GET", "/v1/algofs/quota", user)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def set_quotas(self, table: dict) -> None:
        tmp = self.quotas_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(table))
        os.replace(tmp, self.quotas_file)

    def partial_uploads(self, user: str, collection: str) -> list[str]:
        """What an upload in flight leaves where it writes: temp files on disk, multipart uploads in S3."""
        if self.backend == "local":
            folder = self.server.root / "data" / user / collection
            return [name for name in os.listdir(folder) if name.startswith(".algofs-partial-")]
        assert self.store is not None
        found = self.store.client().list_multipart_uploads(Bucket=DATA_BUCKET, Prefix=self.prefix)
        return [upload["Key"] for upload in found.get("Uploads") or []]


def start_server(request: pytest.FixtureRequest, tmp_path: Path, backend: str, **options) -> QuotaServer:
    users = {name: f"{name}-{secrets.token_urlsafe(16)}" for name in ("alice", "bob")}
    quotas_file = tmp_path / "quotas.json"
    flags = {"users": users, "quota_bytes": QUOTA_BYTES, "quota_files": QUOTA_FILES,
             "quotas_file": quotas_file, **options}
    if backend == "s3":
        store = request.getfixturevalue("s3_store")
        prefix = f"quota-{uuid.uuid4().hex[:8]}"
        server = s3_server(store, tmp_path / "root", prefix, **flags)
        quota_server = QuotaServer(server, backend, quotas_file, store, prefix + "/")
    else:
        server = EmbeddedServer(tmp_path / "root", **flags)
        quota_server = QuotaServer(server, backend, quotas_file)
    server.start(timeout=60)
    request.addfinalizer(server.stop)
    return quota_server


@pytest.fixture
def quotas(request: pytest.FixtureRequest, tmp_path: Path) -> QuotaServer:
    """A server with users alice and bob, 1 MiB and 12 files each, on the test's ``backend`` (else local)."""
    callspec = getattr(request.node, "callspec", None)
    return start_server(request, tmp_path, callspec.params.get("backend", "local") if callspec else "local")


def make_collection(quotas: QuotaServer, user: str = "alice", name: str = "c") -> None:
    quotas.client(user).dir(f"data://.my/{name}").create()


def edquot(answer: requests.Response) -> dict:
    """The error of a quota refusal: a 403 with errno EDQUOT, the quota and the usage."""
    assert answer.status_code == 403, (answer.status_code, answer.text)
    error = answer.json()["error"]
    assert error["errno"] == "EDQUOT" and error["error_type"] == "QuotaExceeded", error
    assert answer.headers["X-Error-Message"].startswith(error["message"][:40])
    return error


@both
def test_a_user_over_the_byte_quota_gets_a_4xx_through_the_official_client(quotas: QuotaServer,
                                                                            backend: str) -> None:
    make_collection(quotas)
    alice = quotas.client("alice")
    first = os.urandom(600 * KIB)
    alice.file("data://.my/c/first.bin").put(first)
    with pytest.raises(Exception, match="403"):  # the 2.0.5 client's text for any non-2xx answer to a PUT
        alice.file("data://.my/c/second.bin").put(os.urandom(600 * KIB))
    assert not alice.file("data://.my/c/second.bin").exists()
    error = edquot(quotas.put("c/second.bin", os.urandom(600 * KIB)))
    assert error["message"] == ("storage quota exceeded: data://alice holds 600.0 KiB of its 1.0 MiB "
                                "storage quota; this change would add 600.0 KiB")
    assert error["quota"] == {"bytes": QUOTA_BYTES, "files": QUOTA_FILES}
    assert error["usage"] == {"bytes": 600 * KIB, "files": 2}  # the collection and first.bin
    # replacing a file counts what it replaces: the same size again fits, and so does a smaller one
    second = os.urandom(600 * KIB)
    alice.file("data://.my/c/first.bin").put(second)
    assert alice.file("data://.my/c/first.bin").getBytes() == second
    assert quotas.quota()["usage"] == {"bytes": 600 * KIB, "files": 2}
    # mkdir past nothing: folders count as files, not bytes
    alice.dir("data://.my/c/sub").create()
    assert quotas.quota() == {"user": "alice", "quota": {"bytes": QUOTA_BYTES, "files": QUOTA_FILES},
                              "usage": {"bytes": 600 * KIB, "files": 3},
                              "in_flight": {"bytes": 0, "files": 0}}


@both
def test_a_streamed_upload_over_the_quota_is_cut_off_and_leaves_nothing(quotas: QuotaServer,
                                                                        backend: str) -> None:
    make_collection(quotas)
    old = os.urandom(300 * KIB)
    quotas.client("alice").file("data://.my/c/kept.bin").put(old)
    seen_mid_stream: list[list[str]] = []

    def body(total: int, check_at: int, staged_at: int = -1) -> Iterator[bytes]:
        """A chunked body (no Content-Length: the server learns the size only as it streams). At
        ``staged_at`` (under the quota) wait until the server has staged some of it: "nothing staged"
        is true before the server reads the body too, and the socket buffers hold megabytes unread. On
        local disk that is the partial file; S3 shows no multipart upload before a whole part. Once the
        body has passed the quota (``check_at``), wait until the server has dropped what it staged."""
        sent = 0
        while sent < total:
            if sent == staged_at and quotas.backend == "local":
                assert wait_until(lambda: quotas.partial_uploads("alice", "c"), timeout=15), "never staged"
            if sent == check_at:
                wait_until(lambda: not quotas.partial_uploads("alice", "c"), timeout=15)
                seen_mid_stream.append(quotas.partial_uploads("alice", "c"))
            yield b"x" * (64 * KIB)
            sent += 64 * KIB

    for name in ("new.bin", "kept.bin"):  # a new file, and a replacement of one
        edquot(quotas.put(f"c/{name}", body(3 * MIB, 2 * MIB, staged_at=256 * KIB)))
        assert seen_mid_stream.pop() == [], "the upload was not dropped when it passed the quota"
    listing = quotas.client("alice").dir("data://.my/c")
    assert [f.getName() for f in listing.files()] == ["kept.bin"]
    assert quotas.client("alice").file("data://.my/c/kept.bin").getBytes() == old
    assert wait_until(lambda: quotas.partial_uploads("alice", "c") == [])
    assert quotas.quota()["usage"] == {"bytes": 300 * KIB, "files": 2}
    assert quotas.quota()["in_flight"] == {"bytes": 0, "files": 0}
    # within the quota a chunked upload still works
    assert quotas.put("c/small.bin", body(512 * KIB, -1)).status_code == 200


def test_the_files_quota_counts_files_and_folders(quotas: QuotaServer) -> None:
    make_collection(quotas)  # 1
    alice = quotas.client("alice")
    alice.dir("data://.my/c/sub").create()  # 2
    for number in range(QUOTA_FILES - 2):
        alice.file(f"data://.my/c/f{number}").put(b"x")
    assert quotas.quota()["usage"] == {"bytes": QUOTA_FILES - 2, "files": QUOTA_FILES}
    error = edquot(quotas.put("c/one-more", b"x"))
    assert error["message"] == ("file quota exceeded: data://alice holds 12 files and folders, its quota is "
                                "12; this change would add 1")
    with pytest.raises(Exception, match="403"):
        alice.dir("data://.my/c/sub2").create()
    edquot(quotas.http("POST", "/v1/data/alice/c", json={"name": "sub2"}))
    edquot(quotas.http("POST", "/v1/algofs/copy", json={"from": "data://.my/c/f0", "to": "data://.my/c/f0b"}))
    link = {"path": "data://.my/c/link", "target": "f0"}
    edquot(quotas.http("POST", "/v1/algofs/symlink", json=link))  # a symlink is a file
    alice.file("data://.my/c/f0").put(b"replacing a file adds no file")
    assert quotas.quota()["usage"]["files"] == QUOTA_FILES
    alice.file("data://.my/c/f1").delete()
    assert quotas.http("POST", "/v1/algofs/symlink", json=link).ok
    assert quotas.quota()["usage"]["files"] == QUOTA_FILES
    alice.file("data://.my/c/link").delete()
    alice.file("data://.my/c/one-more").put(b"x")  # room again


@both
def test_deleting_frees_quota(quotas: QuotaServer, backend: str) -> None:
    make_collection(quotas)
    alice = quotas.client("alice")
    alice.file("data://.my/c/a.bin").put(os.urandom(700 * KIB))
    edquot(quotas.put("c/b.bin", os.urandom(700 * KIB)))
    alice.file("data://.my/c/a.bin").delete()
    assert quotas.quota()["usage"] == {"bytes": 0, "files": 1}
    alice.file("data://.my/c/b.bin").put(os.urandom(700 * KIB))
    alice.dir("data://.my/c").delete(force=True)
    assert quotas.quota()["usage"] == {"bytes": 0, "files": 0}
    make_collection(quotas, name="d")
    alice.file("data://.my/d/c.bin").put(os.urandom(1000 * KIB))


def test_another_user_is_unaffected(quotas: QuotaServer) -> None:
    make_collection(quotas)
    quotas.client("alice").file("data://.my/c/full.bin").put(os.urandom(QUOTA_BYTES - 1000))
    edquot(quotas.put("c/more.bin", os.urandom(2000)))
    make_collection(quotas, "bob")
    bob = quotas.client("bob")
    payload = os.urandom(1000 * KIB)
    bob.file("data://.my/c/his.bin").put(payload)
    assert bob.file("data://.my/c/his.bin").getBytes() == payload
    assert quotas.quota("bob")["usage"] == {"bytes": 1000 * KIB, "files": 2}
    assert quotas.quota("alice")["usage"] == {"bytes": QUOTA_BYTES - 1000, "files": 2}
    # a copy of bob's file into alice's collection would count for her (and does not fit); he may read it
    assert quotas.http("PATCH", "/v1/data/bob/c", user="bob", json={"acl": {"read": ["user://*"]}}).ok
    edquot(quotas.http("POST", "/v1/algofs/copy", json={"from": "data://bob/c/his.bin", "to": "data://.my/c/h"}))
    assert quotas.quota("bob")["usage"] == {"bytes": 1000 * KIB, "files": 2}


def test_quota_changes_apply_without_a_restart(quotas: QuotaServer) -> None:
    make_collection(quotas)
    alice = quotas.client("alice")
    alice.file("data://.my/c/a.bin").put(os.urandom(800 * KIB))
    edquot(quotas.put("c/b.bin", os.urandom(800 * KIB)))
    quotas.set_quotas({"users": {"alice": {"bytes": "3M"}}})  # the file appears while the server runs
    assert wait_until(lambda: quotas.quota()["quota"] == {"bytes": 3 * MIB, "files": QUOTA_FILES})
    alice.file("data://.my/c/b.bin").put(os.urandom(800 * KIB))
    assert quotas.quota("bob")["quota"] == {"bytes": QUOTA_BYTES, "files": QUOTA_FILES}
    # the file's default applies to everyone it does not name; null lifts a limit
    quotas.set_quotas({"default": {"files": 100}, "users": {"alice": {"bytes": 100 * KIB, "files": None}}})
    assert wait_until(lambda: quotas.quota()["quota"] == {"bytes": 100 * KIB, "files": None})
    assert quotas.quota("bob")["quota"] == {"bytes": QUOTA_BYTES, "files": 100}
    # over a lowered quota: nothing more fits, but deleting and shrinking work
    edquot(quotas.put("c/tiny", b"x"))
    alice.file("data://.my/c/a.bin").put(b"shrunk")
    alice.file("data://.my/c/b.bin").delete()
    # a file that does not parse keeps the limits in force; removing the file goes back to the flags
    quotas.quotas_file.write_text("{not json")
    answer = quotas.put("c/tiny", os.urandom(200 * KIB))
    edquot(answer)
    quotas.quotas_file.unlink()
    assert wait_until(lambda: quotas.quota()["quota"] == {"bytes": QUOTA_BYTES, "files": QUOTA_FILES})
    alice.file("data://.my/c/tiny").put(os.urandom(200 * KIB))


def _interrupted_upload(quotas: QuotaServer, path: str) -> None:
    """A PUT whose connection drops mid-body: the server aborts it."""
    import socket
    from urllib.parse import urlsplit

    url = urlsplit(quotas.server.url)
    with socket.create_connection((url.hostname, url.port)) as sock:
        head = (f"PUT /v1/data/alice/{path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: {quotas.users['alice']}\r\nContent-Length: {300 * KIB}\r\n\r\n")
        sock.sendall(head.encode() + b"y" * (100 * KIB))


@both
def test_usage_stays_exact_through_every_kind_of_change(quotas: QuotaServer, backend: str,
                                                         tmp_path: Path) -> None:
    """Replace, append, patch, truncate, mkdir, copy, move (onto a file), deletes, a failed precondition and
    a dropped connection: the usage kept change by change equals a fresh count after a restart."""
    quotas.set_quotas({"users": {"alice": {"bytes": "20M", "files": 1000}}})
    assert wait_until(lambda: quotas.quota()["quota"]["bytes"] == 20 * MIB)
    make_collection(quotas)
    alice = quotas.client("alice")
    alice.dir("data://.my/c/deep").create()
    alice.dir("data://.my/c/deep/er").create()
    alice.file("data://.my/c/a").put(os.urandom(100 * KIB))
    alice.file("data://.my/c/a").put(os.urandom(300 * KIB))  # bigger
    alice.file("data://.my/c/a").put(os.urandom(50 * KIB))  # smaller
    assert quotas.put("c/a?offset=51200", os.urandom(10 * KIB)).status_code == 200  # append
    assert quotas.put("c/a?offset=1000", os.urandom(10)).status_code == 200  # patch inside
    assert quotas.put("c/a?offset=2000&truncate=true", b"").status_code == 200  # truncate
    alice.file("data://.my/c/deep/er/b").put(os.urandom(200 * KIB))
    alice.file("data://.my/c/deep/c").put(os.urandom(20 * KIB))
    assert quotas.http("POST", "/v1/algofs/copy", json={"from": "data://.my/c/deep/er/b",
                                                         "to": "data://.my/c/b2"}).status_code == 200
    assert quotas.http("POST", "/v1/algofs/copy", json={"from": "data://.my/c/deep/c", "to": "data://.my/c/b2",
                                                         "overwrite": True}).status_code == 200
    assert quotas.http("POST", "/v1/algofs/move", json={"from": "data://.my/c/a", "to": "data://.my/c/deep/c",
                                                         "overwrite": True}).status_code == 200
    assert quotas.put("c/b2", b"z", headers={"If-Match": '"stale"'}).status_code == 412  # nothing changes
    _interrupted_upload(quotas, "c/dropped")
    make_collection(quotas, name="gone")
    alice.file("data://.my/gone/x").put(os.urandom(30 * KIB))
    alice.dir("data://.my/gone").delete(force=True)
    alice.file("data://.my/c/deep/er/b").delete()
    assert wait_until(lambda: quotas.quota()["in_flight"] == {"bytes": 0, "files": 0})
    kept = quotas.quota()["usage"]
    quotas.server.stop()
    quotas.server.start(timeout=60)
    counted = quotas.quota()["usage"]
    assert kept == counted
    assert counted == {"files": 5, "bytes": 2000 + 20 * KIB}  # c, deep, er; deep/c (was a), b2 (was deep/c)


def test_the_quota_is_advertised_and_private(quotas: QuotaServer) -> None:
    capabilities = quotas.http("GET", "/v1/algofs/capabilities").json()
    assert capabilities["extensions"]["quota"] == 1
    assert "quota" in capabilities["backends"]["data"]
    assert all("quota" not in names for cid, names in capabilities["backends"].items() if cid != "data")
    assert requests.get(quotas.server.url + "/v1/algofs/quota", timeout=10).status_code == 401
    assert quotas.quota("bob")["user"] == "bob"


def test_a_multi_user_server_without_quotas_says_so(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    bare = start_server(request, tmp_path / "bare", "local", quota_bytes=None, quota_files=None,
                        quotas_file=None)
    warnings = requests.get(bare.server.url + "/healthz", timeout=10).json().get("warnings", [])
    assert any("no storage quota" in w for w in warnings)
    assert bare.quota()["quota"] == {"bytes": None, "files": None}
    with_quota = start_server(request, tmp_path / "quota", "local")
    warnings = requests.get(with_quota.server.url + "/healthz", timeout=10).json().get("warnings", [])
    assert not any("no storage quota" in w for w in warnings)


def test_bad_quota_options_stop_the_start(tmp_path: Path) -> None:
    def serve(*flags: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "algofs_jupyter", "serve", "--root", str(tmp_path / "r"),
                               "--port", "0", "--user", "u", *flags], capture_output=True, text=True,
                              env={**os.environ, "ALGOFS_SERVE_API_KEY": "k"}, timeout=60)

    broken = tmp_path / "quotas.json"
    broken.write_text(json.dumps({"users": {"alice": {"bytes": "lots"}}}))
    result = serve("--quotas-file", str(broken))
    assert result.returncode != 0 and "--quotas-file" in result.stderr and "lots" in result.stderr
    result = serve("--quota-files", "many")
    assert result.returncode != 0 and "not a number of files" in result.stderr


FILLER = """
import Algorithmia

def apply(input):
    client, answers = Algorithmia.client(), []
    for n in range(2):
        try:
            client.file(f"data://.session/fill{n}.bin").put(b"x" * input)
            answers.append("stored")
        except Exception as exc:
            answers.append("refused: " + str(exc)[:200])
    return answers
"""


def test_what_a_called_algorithm_puts_in_its_session_counts_against_its_caller(quotas: QuotaServer) -> None:
    """data://.session belongs to no user folder; charged to nobody, a called algorithm (anyone's, one's own
    included) could fill the disk through it for as long as its call runs."""
    bob = quotas.client("bob")
    algo = bob.algo("bob/filler")
    algo.create(details={"label": "filler"}, settings={"algorithm_callability": "public"})
    quotas.http("PUT", "/v1/algorithms/bob/filler/source", "bob", data=FILLER.encode()).raise_for_status()
    algo.publish(version_info={"version_type": "minor"})
    answers = quotas.client("alice").algo("bob/filler").pipe(600 * KIB).result
    assert answers[0] == "stored" and answers[1].startswith("refused"), answers
    assert quotas.quota("alice")["usage"]["bytes"] == 0  # the session is gone, and so is its charge
    assert quotas.quota("bob")["usage"]["bytes"] == 0  # the algorithm's owner was never charged
