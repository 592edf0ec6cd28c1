"""The ``local-reads`` socket (docs/api-extensions.md §13), through the client the mount uses and raw: a
descriptor answers exactly what a GET of the path answers, is refused exactly where the GET is, keeps its
version, and a key goes only to a peer with the server's uid."""

from __future__ import annotations

import errno
import json
import os
import socket

import pytest

from algofs_jupyter.fs.api_capabilities import Capabilities
from algofs_jupyter.fs.api_errors import NotSupported
from algofs_jupyter.fs.local_reads import LocalFile, LocalReads
from algofs_jupyter.server.local_reads import MAX_REQUEST
from algofs_jupyter.server.users import DEMO_USERS


@pytest.fixture
def advertised(http) -> tuple[str, int, bool]:
    """The socket, its uid, and whether the hosted data's storage offers local reads."""
    body = http("GET", "/v1/algofs/capabilities").json()
    capabilities = Capabilities.from_json(body)
    assert capabilities.local_reads is not None, body
    return (*capabilities.local_reads, "local-reads" in body["backends"]["data"])


def reader(advertised, user: str = "demo", key: str | None = None) -> LocalReads:
    path, uid, _local = advertised
    return LocalReads(path, uid, f"Simple {key or DEMO_USERS[user]}", timeout=10)


def read_all(found: LocalFile) -> bytes:
    try:
        return os.pread(found.fd, found.size + 1, 0)
    finally:
        os.close(found.fd)


def test_capabilities_advertise_the_socket_and_the_uid_serving_it(http, advertised) -> None:
    path, uid, _local = advertised
    assert uid == os.geteuid()  # the tests start the server as themselves
    st = os.stat(path)
    assert st.st_mode & 0o777 == 0o666  # reaching it gives nothing without a key
    assert os.stat(os.path.dirname(path)).st_mode & 0o022 == 0  # nobody else can put a name there


def test_a_descriptor_holds_what_a_get_answers_or_the_get_s_error(http, scratch, advertised) -> None:
    data = os.urandom(300_000)
    assert http("PUT", f"/v1/data/.my/{scratch}/big.bin", data=data).status_code == 200
    get = http("GET", f"/v1/data/.my/{scratch}/big.bin")
    reads = reader(advertised)
    try:
        if not advertised[2]:  # object storage (S3): no local files; the GET is the way
            with pytest.raises(NotSupported):
                reads.open(f"data://.my/{scratch}/big.bin")
            return
        found = reads.open(f"data://.my/{scratch}/big.bin")
        assert (found.size, found.etag) == (len(data), get.headers["ETag"])
        with pytest.raises(OSError) as refused:  # read-only: nothing is written through it
            os.write(found.fd, b"x")
        assert refused.value.errno == errno.EBADF
        assert read_all(found) == data == get.content
        with pytest.raises(FileNotFoundError):
            reads.open(f"data://.my/{scratch}/missing")
        with pytest.raises(PermissionError):  # what demo's GET of alice's private file gets: 403
            reads.open("data://alice/private/secret.txt")
        assert http("GET", "/v1/data/alice/private/secret.txt").status_code == 403
        http("POST", f"/v1/data/.my/{scratch}", json={"name": "sub"})
        with pytest.raises(OSError) as folder:
            reads.open(f"data://.my/{scratch}/sub")
        assert folder.value.errno == errno.EISDIR
        alice = reader(advertised, "alice")
        try:
            assert read_all(alice.open("data://alice/private/secret.txt")) == \
                http("GET", "/v1/data/alice/private/secret.txt", user="alice").content
        finally:
            alice.close()
    finally:
        reads.close()


def test_an_unknown_key_gets_nothing(advertised) -> None:
    reads = reader(advertised, key="sim-not-a-key")
    try:
        with pytest.raises(PermissionError):
            reads.open("data://demo/public/hello.txt")
    finally:
        reads.close()


def test_a_descriptor_keeps_its_version_when_the_file_is_replaced_or_appended_to(http, scratch,
                                                                                advertised) -> None:
    if not advertised[2]:
        pytest.skip("object storage has no local files")
    uri, url = f"data://.my/{scratch}/v.txt", f"/v1/data/.my/{scratch}/v.txt"
    assert http("PUT", url, data=b"first version").status_code == 200
    reads = reader(advertised)
    try:
        first = reads.open(uri)
        assert http("PUT", url, data=b"second, longer version").status_code == 200
        second = reads.open(uri)
        assert second.etag != first.etag
        assert read_all(first) == b"first version"
        assert read_all(second) == b"second, longer version"
        third = reads.open(uri)
        assert http("PUT", url + "?offset=22", data=b" and a tail").status_code == 200  # an append
        assert os.pread(third.fd, 22, 0) == b"second, longer version"  # its size's bytes are unchanged
        os.close(third.fd)
    finally:
        reads.close()


def test_a_key_goes_only_to_a_peer_with_the_advertised_uid(advertised) -> None:
    path, uid, _local = advertised
    reads = LocalReads(path, uid + 1, f"Simple {DEMO_USERS['demo']}", timeout=10)
    try:
        with pytest.raises(ConnectionRefusedError):
            reads.open("data://demo/public/hello.txt")
    finally:
        reads.close()


def test_bad_requests_get_a_4xx_answer_and_no_descriptor(advertised) -> None:
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    connection.settimeout(10)
    connection.connect(advertised[0])
    try:
        for request in (b"not json", b"[1, 2]", json.dumps({"path": 3}).encode(), b"x" * (MAX_REQUEST + 1),
                        json.dumps({"path": "data://demo/public/hello.txt"}).encode(),
                        json.dumps({"authorization": f"Simple {DEMO_USERS['demo']}",
                                    "path": "no-scheme"}).encode()):
            connection.sendall(request)
            message, fds, _flags, _address = socket.recv_fds(connection, 65536, 1)
            assert fds == []
            status = json.loads(message)["error"]["status"]
            assert 400 <= status < 500, (request[:40], message)
    finally:
        connection.close()
