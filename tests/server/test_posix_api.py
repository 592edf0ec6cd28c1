"""The ``posix`` and ``exclusive-create`` extensions (docs/api-extensions.md §10, §11) over raw HTTP on a
real ``algofs serve`` (local and S3 storage), and what the official client sees of a symlink."""

from __future__ import annotations

import stat
import threading
from urllib.parse import unquote

import pytest
import requests

from algofs_jupyter.server.users import DEMO_USERS

from .test_extensions import assert_error

NS = 10**9


def needs_posix(http) -> None:
    if "posix" not in http("GET", "/v1/algofs/capabilities").json()["backends"]["data"]:
        pytest.skip("this storage keeps no POSIX metadata")


def setattr_(http, uri: str, user: str = "demo", **fields):
    return http("POST", "/v1/algofs/setattr", json={"path": uri, **fields}, user=user)


def test_capabilities_name_both_extensions(http):
    body = http("GET", "/v1/algofs/capabilities").json()
    assert body["extensions"]["posix"] == 1 and body["extensions"]["exclusive-create"] == 1
    assert "exclusive-create" in body["backends"]["data"]


def test_concurrent_exclusive_puts_one_wins(api_server, scratch):
    """Many clients create one name with If-None-Match: * at once: one 200, the others 412 EEXIST."""
    url = f"{api_server.url}/v1/data/.my/{scratch}/lock"
    start = threading.Barrier(12)
    answers: list[tuple[int, str | None, int]] = []

    def create(number: int) -> None:
        with requests.Session() as session:
            start.wait()
            response = session.put(url, data=f"writer {number}".encode(),
                                   headers={"Authorization": DEMO_USERS["demo"], "If-None-Match": "*"})
            errno = response.json()["error"].get("errno") if response.status_code != 200 else None
            answers.append((response.status_code, errno, number))

    threads = [threading.Thread(target=create, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [a for a in answers if a[0] == 200]
    assert len(answers) == 12 and len(winners) == 1, answers
    assert all(a[:2] == (412, "EEXIST") for a in answers if a[0] != 200), answers
    body = requests.get(url, headers={"Authorization": DEMO_USERS["demo"]}).content
    assert body == f"writer {winners[0][2]}".encode()


def test_exclusive_put_refuses_files_folders_and_streams(http, scratch):
    base = f"/v1/data/.my/{scratch}"
    assert http("PUT", f"{base}/f", data=b"one", headers={"If-None-Match": "*"}).status_code == 200
    assert_error(http("PUT", f"{base}/f", data=b"two", headers={"If-None-Match": "*"}), 412, "EEXIST")
    assert http("POST", base, json={"name": "dir"}).status_code == 200
    assert_error(http("PUT", f"{base}/dir", data=b"x", headers={"If-None-Match": "*"}), 412, "EEXIST")
    assert_error(http("POST", base, json={"name": "dir"}), 409, "EEXIST")  # folders: as before
    streamed = http("PUT", f"{base}/f", data=iter([b"chunked ", b"body"]), headers={"If-None-Match": "*"})
    assert_error(streamed, 412, "EEXIST")
    assert http("PUT", f"{base}/g", data=iter([b"chunked ", b"body"]),
                headers={"If-None-Match": "*"}).status_code == 200
    assert http("GET", f"{base}/f").content == b"one" and http("GET", f"{base}/g").content == b"chunked body"


def test_modes_owners_and_ns_times_over_http(http, scratch):
    needs_posix(http)
    base, uri = f"/v1/data/.my/{scratch}", f"data://.my/{scratch}"
    created = http("PUT", f"{base}/run.sh", data=b"#!/bin/sh\n", headers={"X-Algofs-Mode": "755"})
    assert created.ok and created.headers["X-Algofs-Mode"] == "100755"  # the answer has the metadata
    head = http("HEAD", f"{base}/run.sh").headers
    assert created.headers["X-Algofs-Mtime-Ns"] == head["X-Algofs-Mtime-Ns"]
    assert head["X-Algofs-Mode"] == "100755" and "X-Algofs-Uid" not in head
    assert int(head["X-Algofs-Mtime-Ns"]) == int(head["X-Algofs-Ctime-Ns"]) or int(head["X-Algofs-Ctime-Ns"])
    before_1970 = -NS * 315532800 + 123456789  # 1960-01-01T00:00:00.123456789Z
    answer = setattr_(http, f"{uri}/run.sh", mode=0o700, uid=1000, gid=100, mtime_ns=before_1970,
                      atime_ns=before_1970 + 1)
    assert answer.status_code == 200, answer.text
    posix = answer.json()["result"]["posix"]
    assert (posix["mode"], posix["uid"], posix["gid"], posix["mtime_ns"], posix["atime_ns"]) == \
        (stat.S_IFREG | 0o700, 1000, 100, before_1970, before_1970 + 1)
    got = http("GET", f"{base}/run.sh")
    assert got.content == b"#!/bin/sh\n" and got.headers["X-Algofs-Mode"] == "100700"
    assert (got.headers["X-Algofs-Uid"], got.headers["X-Algofs-Gid"]) == ("1000", "100")
    assert int(got.headers["X-Algofs-Mtime-Ns"]) == before_1970
    entry = next(f for f in http("GET", base).json()["files"] if f["filename"] == "run.sh")
    assert entry["posix"]["mode"] == 0o100700 and entry["posix"]["mtime_ns"] == before_1970
    # a replacing upload keeps mode and owner
    assert http("PUT", f"{base}/run.sh", data=b"#!/bin/sh\necho 2\n", headers={"X-Algofs-Mode": "644"}).ok
    head = http("HEAD", f"{base}/run.sh").headers
    assert (head["X-Algofs-Mode"], head["X-Algofs-Uid"]) == ("100700", "1000")
    # folders: a mode at creation, setattr, defaults in listings
    assert http("POST", base, json={"name": "private", "mode": 0o700}).status_code == 200
    assert http("POST", base, json={"name": "plain"}).status_code == 200
    folders = {f["name"]: f["posix"] for f in http("GET", base).json()["folders"]}
    assert folders["private"]["mode"] == 0o040700 and folders["plain"]["mode"] == 0o040755
    assert folders["plain"]["uid"] is None
    head = http("HEAD", f"{base}/private").headers
    assert head["X-Data-Type"] == "directory" and head["X-Algofs-Mode"] == "40700"
    assert setattr_(http, f"{uri}/plain", mode=0o1777).json()["result"]["posix"]["mode"] == 0o041777


def test_setattr_errors(http, scratch):
    needs_posix(http)
    uri = f"data://.my/{scratch}"
    http("PUT", f"/v1/data/.my/{scratch}/f", data=b"x")
    for bad in ({"mode": 0o100644}, {"mode": "755"}, {"uid": -1}, {"gid": 1.5}, {"mtime_ns": "now"},
                {"atime_ns": 2**64}, {"size": 3}):
        assert_error(setattr_(http, f"{uri}/f", **bad), 400, "EINVAL")
    assert_error(setattr_(http, f"{uri}/missing", mode=0o644), 404, "ENOENT")
    assert_error(http("PUT", f"/v1/data/.my/{scratch}/g", data=b"x", headers={"X-Algofs-Mode": "100644"}),
                 400, "EINVAL")
    assert_error(http("POST", f"/v1/data/.my/{scratch}", json={"name": "d", "mode": 0o40755}), 400, "EINVAL")
    # alice may read demo's public collections, never change them
    assert_error(setattr_(http, f"data://demo/{scratch}/f", user="alice", mode=0o777), 403)


def test_symlinks_over_http_and_what_the_official_client_sees(http, scratch, client):
    needs_posix(http)
    base, uri = f"/v1/data/.my/{scratch}", f"data://.my/{scratch}"
    http("PUT", f"{base}/real.txt", data=b"the real content")
    made = http("POST", "/v1/algofs/symlink", json={"path": f"{uri}/link", "target": "real.txt"})
    assert made.status_code == 200, made.text
    assert made.json()["result"]["posix"]["mode"] == 0o120777
    assert made.json()["result"]["posix"]["target"] == "real.txt"
    odd = "../elsewhere/ü %20 x"
    assert http("POST", "/v1/algofs/symlink", json={"path": f"{uri}/odd", "target": odd}).ok
    head = http("HEAD", f"{base}/odd").headers
    assert head["X-Algofs-Mode"] == "120777" and unquote(head["X-Algofs-Link-Target"]) == odd
    got = http("GET", f"{base}/link")
    assert got.content == b"real.txt" and got.headers["X-Algofs-Link-Target"] == "real.txt"
    files = {f["filename"]: f for f in http("GET", base).json()["files"]}
    assert files["link"]["target"] == "real.txt" and files["link"]["size"] == len(b"real.txt")
    assert files["link"]["posix"]["mode"] == 0o120777 and "target" not in files["real.txt"]
    # the official client: a small file whose content is the target
    assert client.file(f"{uri}/link").getString() == "real.txt"
    assert client.file(f"{uri}/odd").getString() == odd
    assert sorted(f.getName() for f in client.dir(uri).files()) == ["link", "odd", "real.txt"]
    taken = http("POST", "/v1/algofs/symlink", json={"path": f"{uri}/link", "target": "x"})
    assert_error(taken, 409, "EEXIST")
    for bad in ("", "a\x00b", "x" * 4096, 5):
        assert_error(http("POST", "/v1/algofs/symlink", json={"path": f"{uri}/bad", "target": bad}),
                     400, "EINVAL")
    # rename and delete act on the link itself
    assert http("POST", "/v1/algofs/move", json={"from": f"{uri}/link", "to": f"{uri}/moved"}).ok
    assert http("HEAD", f"{base}/moved").headers["X-Algofs-Link-Target"] == "real.txt"
    assert http("DELETE", f"{base}/moved").ok
    assert http("GET", f"{base}/real.txt").content == b"the real content"
    assert http("HEAD", f"{base}/moved").status_code == 404
