"""The ``local-reads`` socket (docs/api-extensions.md §13), through the client the mount uses and raw: a
descriptor answers exactly what a GET of the path answers, is refused exactly where the GET is, keeps its
version, and a key goes only to a peer with the server's uid."""

from __future__ import annotations

import errno
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

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
    folder = os.stat(os.path.dirname(path))
    assert folder.st_mode & 0o777 == 0o711 and folder.st_uid == uid  # reachable; nobody lists or adds names


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


LINK_AS = """
import errno, os, sys
fd, folder = sys.argv[1], sys.argv[2]
proc = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY)  # linkat(AT_SYMLINK_FOLLOW) of the descriptor
into = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)  # opened now: no path to search as the other account
os.link(fd, "as-root", src_dir_fd=proc, dst_dir_fd=into, follow_symlinks=True)  # same file system: root may
os.unlink("as-root", dir_fd=into)
os.seteuid(65534)  # another account holding the descriptor (its effective capabilities are gone)
try:
    os.link(fd, "as-nobody", src_dir_fd=proc, dst_dir_fd=into, follow_symlinks=True)
except OSError as exc:
    print(errno.errorcode[exc.errno])
else:
    print("linked")
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="switches to another account")
def test_a_descriptor_gives_another_account_no_link_to_the_server_s_file(http, scratch, advertised) -> None:
    """Holding the descriptor is reading that one version, no more: another account cannot make a name
    for the server's file (which would keep it, and its appends, past a change of the ACL, and pin its
    space after a delete): ``fs.protected_hardlinks`` wants the file's owner or read and write access."""
    if not advertised[2]:
        pytest.skip("object storage has no local files")
    with open("/proc/sys/fs/protected_hardlinks") as setting:
        assert setting.read().strip() == "1", "the machine lets anyone link any file it can see"
    assert http("PUT", f"/v1/data/.my/{scratch}/kept.bin", data=b"private").status_code == 200
    reads = reader(advertised)
    try:
        found = reads.open(f"data://.my/{scratch}/kept.bin")
    finally:
        reads.close()
    # beside the server's file, so that only the account decides
    folder = Path(os.readlink(f"/proc/self/fd/{found.fd}")).parent.parent / f"links-{os.getpid()}"
    folder.mkdir()
    folder.chmod(0o777)
    try:
        result = subprocess.run([sys.executable, "-c", LINK_AS, str(found.fd), str(folder)],
                                pass_fds=[found.fd], capture_output=True, text=True, timeout=60)
    finally:
        os.close(found.fd)
        left = list(folder.iterdir())
        folder.rmdir() if not left else None
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "EPERM"
    assert left == []
