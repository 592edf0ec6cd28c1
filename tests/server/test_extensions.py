"""The write extensions of docs/api-extensions.md over raw HTTP, and the official client still working."""

from __future__ import annotations

import os
import socket
import time
from urllib.parse import quote, urlsplit

import pytest

from algofs_jupyter.server.users import DEMO_USERS

OLD = 978307200.0  # 2001-01-01T00:00:00Z: a time no test run can stamp by itself


def assert_error(response, status, errno=None):
    assert response.status_code == status, response.text
    if response.request.method != "HEAD":
        error = response.json()["error"]
        assert isinstance(error["message"], str)
        if errno:
            assert error["errno"] == errno, error
    assert response.headers["X-Error-Message"]


def put(http, path, data, **params):
    return http("PUT", path, data=data, params=params or None)


# -- capabilities ------------------------------------------------------------------------------------

def test_capabilities_are_advertised_to_authenticated_callers(http):
    assert http("GET", "/v1/algofs/capabilities", user=None).status_code == 401
    body = http("GET", "/v1/algofs/capabilities").json()
    assert body["algofs"] == 1
    for name in ("write-at-offset", "move", "copy", "set-mtime", "folder-mtime", "errno"):
        assert body["extensions"][name] == 1
    assert set(body["backends"]["data"]) >= {"write-at-offset", "move", "copy", "set-mtime"}
    assert "s3" in body["backends"]
    assert body["limits"] == {"name_max": 255, "path_max": 4095}


# -- write at an offset ------------------------------------------------------------------------------

def test_append_and_overwrite_at_offsets(http, scratch):
    path = f"/v1/data/.my/{scratch}/log.txt"
    first = put(http, path, b"hello")
    etag = first.headers["ETag"]
    appended = put(http, path, b" world", offset=5)
    assert appended.status_code == 200 and appended.json() == {"result": f"data://.my/{scratch}/log.txt"}
    assert appended.headers["X-Algofs-Size"] == "11" and appended.headers["ETag"] != etag
    assert http("HEAD", path).headers["ETag"] == appended.headers["ETag"]
    assert http("GET", path).content == b"hello world"
    put(http, path, b"J", offset=0)
    assert http("GET", path).content == b"Jello world"
    put(http, path, b"ELLO", offset=1, truncate="true")
    assert http("GET", path).content == b"JELLO"
    put(http, path, b"", offset=2, truncate="true")
    assert http("GET", path).content == b"JE"


def test_offset_write_creates_only_at_zero_and_never_past_the_end(http, scratch):
    path = f"/v1/data/.my/{scratch}/new.bin"
    assert_error(put(http, path, b"x", offset=3), 404, "ENOENT")
    assert put(http, path, b"abc", offset=0).status_code == 200
    past = put(http, path, b"x", offset=4)
    assert_error(past, 416, "EINVAL")
    assert past.json()["error"]["size"] == 3
    assert http("GET", path).content == b"abc"
    for bad in ("-1", "x", "1.5", "9" * 30):
        assert_error(http("PUT", path, data=b"x", params={"offset": bad}), 400)
    assert http("GET", path).content == b"abc"


def test_preconditions_refuse_writes_based_on_a_stale_view(http, scratch):
    path = f"/v1/data/.my/{scratch}/shared.txt"
    etag = put(http, path, b"v1").headers["ETag"]
    put(http, path, b"v2 by someone else")  # another writer replaced it
    stale = http("PUT", path, data=b"!", params={"offset": 2}, headers={"If-Match": etag})
    assert_error(stale, 412, "ESTALE")
    assert stale.json()["error"]["size"] == len(b"v2 by someone else")
    assert stale.json()["error"]["etag"] == http("HEAD", path).headers["ETag"]
    assert_error(put(http, path, b"!", offset=2, expected_size=2), 412, "ESTALE")
    assert http("GET", path).content == b"v2 by someone else"
    current = http("HEAD", path).headers["ETag"]
    ok = http("PUT", path, data=b"!", params={"offset": 18, "expected_size": 18},
              headers={"If-Match": current})
    assert ok.status_code == 200 and http("GET", path).content == b"v2 by someone else!"
    # If-Match on a whole-file PUT too
    assert_error(http("PUT", path, data=b"x", headers={"If-Match": current}), 412, "ESTALE")


def test_interrupted_append_leaves_the_file_as_it_was(api_server, http, scratch):
    path = f"/v1/data/.my/{scratch}/doc.bin"
    directory = api_server.root / "data" / "demo" / scratch
    put(http, path, b"original")
    url = urlsplit(api_server.url)
    with socket.create_connection((url.hostname, url.port)) as sock:
        sock.sendall((f"PUT {path}?offset=8 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      f"Authorization: {DEMO_USERS['demo']}\r\n"
                      f"Content-Length: {1 << 20}\r\n\r\n").encode())
        sock.sendall(b"\x01" * 65536)
        deadline = time.monotonic() + 15
        while not any(p.name.startswith(".algofs-partial-") for p in directory.iterdir()):
            assert time.monotonic() < deadline, "the body never reached the server"
            time.sleep(0.05)
        assert http("GET", path).content == b"original"
    deadline = time.monotonic() + 15
    while any(p.name.startswith(".algofs-partial-") for p in directory.iterdir()):
        assert time.monotonic() < deadline, "the staged body was not removed"
        time.sleep(0.05)
    assert http("GET", path).content == b"original"
    assert sorted(p.name for p in directory.iterdir()) == ["doc.bin"]


# -- move, copy, utime --------------------------------------------------------------------------------

def move(http, source, destination, user="demo", **extra):
    return http("POST", "/v1/algofs/move", user=user, json={"from": source, "to": destination, **extra})


def test_move_a_file_and_a_whole_directory(http, client, scratch):
    base = f"/v1/data/.my/{scratch}"
    http("POST", base, json={"name": "src"})
    http("POST", f"{base}/src", json={"name": "inner"})
    put(http, f"{base}/src/a.txt", b"a")
    put(http, f"{base}/src/inner/b.txt", b"b")
    moved = move(http, f"data://.my/{scratch}/src/a.txt", f"data://.my/{scratch}/a-renamed.txt")
    assert moved.status_code == 200, moved.text
    assert moved.json()["result"]["uri"] == f"data://.my/{scratch}/a-renamed.txt"
    assert moved.json()["result"]["type"] == "file" and moved.headers["ETag"]
    assert http("GET", f"{base}/a-renamed.txt").content == b"a"
    assert http("HEAD", f"{base}/src/a.txt").status_code == 404
    assert move(http, f"data://.my/{scratch}/src", f"data://.my/{scratch}/dst").status_code == 200
    assert http("GET", f"{base}/dst/inner/b.txt").content == b"b"
    assert http("HEAD", f"{base}/src").status_code == 404
    # and the official client sees the result
    assert [d.getName() for d in client.dir(f"data://.my/{scratch}").dirs()] == ["dst"]


def test_move_refusals(http, scratch):
    base = f"data://.my/{scratch}"
    put(http, f"/v1/data/.my/{scratch}/a", b"a")
    put(http, f"/v1/data/.my/{scratch}/b", b"b")
    http("POST", f"/v1/data/.my/{scratch}", json={"name": "d"})
    assert_error(move(http, f"{base}/a", f"{base}/b"), 409, "EEXIST")
    assert_error(move(http, f"{base}/missing", f"{base}/c"), 404, "ENOENT")
    assert_error(move(http, f"{base}/d", f"{base}/d/e"), 400, "EINVAL")
    assert_error(move(http, f"{base}/a", "s3://demo-bucket/a"), 400, "EXDEV")
    assert_error(move(http, f"{base}/a", f"{base}/nowhere/a"), 404, "ENOENT")
    assert_error(move(http, f"{base}/a", f"{base}/d", overwrite=True), 409, "EISDIR")
    assert_error(move(http, "data://alice/public/hello.txt", f"{base}/stolen"), 403)
    assert_error(move(http, f"{base}/a", "data://alice/public/a"), 403)
    assert_error(move(http, f"{base}/a", "data://.my/a"), 400)  # files live inside collections
    for body in ({"from": f"{base}/a"}, {"from": 5, "to": f"{base}/x"}, {"from": "nope", "to": "x"},
                 {"from": f"{base}/a", "to": f"{base}/x", "overwrite": "yes"}):
        assert_error(http("POST", "/v1/algofs/move", json=body), 400)
    assert_error(http("POST", "/v1/algofs/move", data=b"[" * 200_000), 400)
    # overwrite replaces a file
    assert move(http, f"{base}/a", f"{base}/b", overwrite=True).status_code == 200
    assert http("GET", f"/v1/data/.my/{scratch}/b").content == b"a"


def test_renaming_a_collection_carries_its_acl(http, client):
    name = "m" + os.urandom(5).hex()
    http("POST", "/v1/data/.my", json={"name": name, "acl": {"read": ["user://*"]}})
    put(http, f"/v1/data/.my/{name}/f", b"f")
    try:
        assert move(http, f"data://.my/{name}", f"data://.my/{name}-2").status_code == 200
        assert http("GET", f"/v1/data/.my/{name}-2?acl=true").json()["acl"] == {"read": ["user://*"]}
        assert http("GET", f"/v1/data/demo/{name}-2/f", user="alice").content == b"f"
    finally:
        client.dir(f"data://.my/{name}-2").delete(force=True)


def test_copy_a_file(http, scratch):
    base = f"data://.my/{scratch}"
    put(http, f"/v1/data/.my/{scratch}/a", b"content")
    copied = http("POST", "/v1/algofs/copy", json={"from": f"{base}/a", "to": f"{base}/b"})
    assert copied.status_code == 200 and copied.json()["result"]["size"] == 7
    assert http("GET", f"/v1/data/.my/{scratch}/b").content == b"content"
    assert http("GET", f"/v1/data/.my/{scratch}/a").content == b"content"
    def copy(source, destination):
        return http("POST", "/v1/algofs/copy", json={"from": source, "to": destination})

    assert_error(copy(f"{base}/a", f"{base}/b"), 409, "EEXIST")
    http("POST", f"/v1/data/.my/{scratch}", json={"name": "d"})
    assert_error(copy(f"{base}/d", f"{base}/e"), 409, "EISDIR")
    assert_error(copy(f"{base}/a", "s3://demo-bucket/a"), 400, "EXDEV")
    # a readable file of another user can be copied into one's own collection, a private one can't
    assert http("POST", "/v1/algofs/copy", json={"from": "data://alice/public/hello.txt",
                                                 "to": f"{base}/hello.txt"}).status_code == 200
    assert_error(http("POST", "/v1/algofs/copy", json={"from": "data://alice/private/secret.txt",
                                                       "to": f"{base}/secret.txt"}), 403)


def test_set_mtime(http, scratch):
    path = f"/v1/data/.my/{scratch}/dated.txt"
    put(http, path, b"x")
    etag = http("HEAD", path).headers["ETag"]
    response = http("POST", "/v1/algofs/utime", json={"path": f"data://.my/{scratch}/dated.txt",
                                                      "mtime": OLD + 0.25})
    assert response.status_code == 200 and response.json()["result"]["last_modified"] == OLD + 0.25
    head = http("HEAD", path)
    assert head.headers["Last-Modified"] == "Mon, 01 Jan 2001 00:00:00 GMT" and head.headers["ETag"] != etag
    listed = http("GET", f"/v1/data/.my/{scratch}").json()["files"]
    assert listed[0].pop("posix")["mtime_ns"] == 978307200_250000000  # the posix extension's field
    assert listed == [{"filename": "dated.txt", "last_modified": "2001-01-01T00:00:00.250Z", "size": 1}]
    for bad in ("soon", -1, True, 1e30, None):
        assert_error(http("POST", "/v1/algofs/utime", json={"path": f"data://.my/{scratch}/dated.txt",
                                                            "mtime": bad}), 400)
    assert_error(http("POST", "/v1/algofs/utime", user="alice",
                      json={"path": "data://demo/public/hello.txt", "mtime": OLD}), 403)


# -- folder mtimes in listings ------------------------------------------------------------------------

def folder_times(http, path):
    return {f["name"]: f.get("last_modified") for f in http("GET", path).json().get("folders", [])}


def test_listed_folder_mtimes_move_with_their_entries(api_server, http, client, scratch):
    base = f"/v1/data/.my/{scratch}"
    http("POST", base, json={"name": "d"})
    directory = api_server.root / "data" / "demo" / scratch / "d"
    old_stamp = "2001-01-01T00:00:00.000Z"
    for change in (lambda: put(http, f"{base}/d/f", b"f"),
                   lambda: move(http, f"data://.my/{scratch}/d/f", f"data://.my/{scratch}/d/g"),
                   lambda: http("POST", f"{base}/d", json={"name": "sub"}),
                   lambda: http("DELETE", f"{base}/d/g")):
        os.utime(directory, (OLD, OLD))
        assert folder_times(http, base)["d"] == old_stamp
        assert change().status_code == 200
        assert folder_times(http, base)["d"] > old_stamp
    # collections in a user folder carry theirs too, and the official client still parses listings
    assert folder_times(http, "/v1/data/.my")[scratch]
    assert [d.getName() for d in client.dir(f"data://.my/{scratch}").dirs()] == ["d"]
    assert scratch in [d.getName() for d in client.dir("data://.my").dirs()]


# -- long names and paths ------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "DELETE", "POST"])
def test_names_over_255_bytes_are_enametoolong(api_server, http, scratch, method):
    long = "é" * 128  # 256 bytes
    kwargs = {"data": b"x"} if method == "PUT" else {"json": {"name": "x"}} if method == "POST" else {}
    assert_error(http(method, f"/v1/data/.my/{scratch}/{quote(long)}", **kwargs), 400, "ENAMETOOLONG")
    assert_error(http("POST", f"/v1/data/.my/{scratch}", json={"name": long}), 400, "ENAMETOOLONG")
    assert list((api_server.root / "data" / "demo" / scratch).iterdir()) == []
    assert put(http, f"/v1/data/.my/{scratch}/{quote('é' * 127 + 'x')}", b"255 bytes").status_code == 200


def test_a_4095_byte_path_works_and_a_longer_one_is_enametoolong(http, scratch):
    """PATH_MAX (4095 bytes after ``data://``) holds, whatever the length of the server root's own path."""
    parents = f"/v1/data/demo/{scratch}"
    key = f"demo/{scratch}"
    while len(key) + 1 + 200 <= 4095 - 10:
        assert http("POST", parents, json={"name": "d" * 200}).status_code == 200
        parents, key = f"{parents}/{'d' * 200}", f"{key}/{'d' * 200}"
    leaf = "f" * (4095 - len(key) - 1)
    assert len(f"{key}/{leaf}".encode()) == 4095
    path = f"{parents}/{leaf}"
    assert http("PUT", path, data=b"deep").status_code == 200
    assert http("PUT", path, data=b"er", params={"offset": 4}).status_code == 200
    assert http("GET", path).content == b"deeper"
    assert http("HEAD", path).headers["X-Data-Type"] == "file"
    assert http("GET", parents).json()["files"][0]["filename"] == leaf
    for method in ("GET", "HEAD", "PUT", "DELETE", "POST"):
        kwargs = {"data": b"x"} if method == "PUT" else {"json": {"name": "x"}} if method == "POST" else {}
        assert_error(http(method, f"{path}x", **kwargs), 400, "ENAMETOOLONG")
    assert_error(http("POST", parents, json={"name": leaf + "x"}), 400, "ENAMETOOLONG")
    assert http("DELETE", path).json() == {"result": {"deleted": 1}}
