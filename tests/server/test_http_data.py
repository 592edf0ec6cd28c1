"""Raw HTTP tests of the Data API: headers, Range/ETag, auth, paging, and every kind of bad input."""

from __future__ import annotations

import os
import re
import string
import time
from email.utils import parsedate_to_datetime

import pytest

DATE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
CITIES = "/v1/data/.my/datasets/cities.csv"


def assert_json_error(response, status):
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert isinstance(response.json()["error"]["message"], str)
    assert response.headers["X-Error-Message"]


# -- authentication ---------------------------------------------------------------------------------

def test_healthz_needs_no_key(http):
    health = http("GET", "/healthz", user=None).json()
    assert health["status"] == "ok"
    assert health["details"]["algorithms"]["algorithms"] in ("enabled", "refused")


@pytest.mark.parametrize("header", ["sim-demo-key", "Simple sim-demo-key", "simple sim-demo-key",
                                    "Bearer sim-demo-key"])
def test_all_authorization_forms(http, header):
    response = http("GET", "/v1/data/", user=None, headers={"Authorization": header})
    assert response.status_code == 200
    assert response.json()["folders"][0] == {"name": "demo"}


@pytest.mark.parametrize("headers", [{}, {"Authorization": "wrong"}, {"Authorization": "Simple "},
                                     {"Authorization": "Bearer nope"}])
@pytest.mark.parametrize("method,path", [("GET", "/v1/data/.my"), ("HEAD", CITIES),
                                         ("PUT", "/v1/data/.my/x/y"), ("POST", "/v1/algo/demo/echo"),
                                         ("GET", "/v1/algorithms/demo")])
def test_unauthenticated_calls_get_401_json(http, headers, method, path):
    body = b"x" if method in ("PUT", "POST") else None
    response = http(method, path, user=None, headers=headers, data=body)
    assert response.status_code == 401
    assert response.headers["X-Error-Message"]
    if method != "HEAD":
        assert response.json()["error"]["message"]


def test_root_listing_puts_the_caller_first(http):
    for user in ("demo", "alice", "anowell"):
        folders = [f["name"] for f in http("GET", "/v1/data/", user=user).json()["folders"]]
        assert folders[0] == user
        assert sorted(folders) == ["alice", "anowell", "demo"]


# -- HEAD / GET --------------------------------------------------------------------------------------

def test_head_file_and_directory(http):
    size = len(http("GET", CITIES).content)
    head = http("HEAD", CITIES)
    assert head.status_code == 200
    assert head.headers["X-Data-Type"] == "file"
    assert int(head.headers["Content-Length"]) == size
    assert "X-Error-Message" not in head.headers
    parsedate_to_datetime(head.headers["Last-Modified"])
    directory = http("HEAD", "/v1/data/.my/datasets")
    assert directory.status_code == 200 and directory.headers["X-Data-Type"] == "directory"


def test_head_missing_has_error_header(http):
    response = http("HEAD", "/v1/data/.my/datasets/missing.csv")
    assert response.status_code == 404
    assert response.headers["X-Error-Message"] == "path not found"
    assert response.content == b""


def test_get_missing_is_json_404(http):
    assert_json_error(http("GET", "/v1/data/.my/nope/file"), 404)
    assert_json_error(http("GET", "/v1/data/nobody/coll"), 404)


def test_listing_format(http):
    response = http("GET", "/v1/data/.my/datasets")
    assert response.headers["X-Data-Type"] == "directory"
    files = response.json()["files"]
    assert all(DATE.match(f["last_modified"]) for f in files)
    assert all(type(f["size"]) is int for f in files)
    assert "marker" not in response.json()


def test_acl_only_when_asked(http):
    assert "acl" not in http("GET", "/v1/data/.my/public").json()
    assert http("GET", "/v1/data/.my/public?acl=true").json()["acl"] == {"read": ["user://*"]}
    assert http("GET", "/v1/data/.my/datasets?acl=true").json()["acl"] == {"read": ["algo://.my/*"]}
    assert http("GET", "/v1/data/alice/private?acl=true", user="alice").json()["acl"] == {"read": []}


def test_private_collection_forbidden_to_others(http):
    assert_json_error(http("GET", "/v1/data/alice/private"), 403)
    assert_json_error(http("GET", "/v1/data/alice/private/secret.txt"), 403)
    assert http("HEAD", "/v1/data/alice/private/secret.txt").status_code == 403


# -- Range, ETag, Last-Modified -----------------------------------------------------------------------

def test_range_requests(http):
    full = http("GET", CITIES).content
    size = len(full)
    part = http("GET", CITIES, headers={"Range": "bytes=5-14"})
    assert part.status_code == 206
    assert part.headers["Content-Range"] == f"bytes 5-14/{size}"
    assert part.content == full[5:15]
    tail = http("GET", CITIES, headers={"Range": "bytes=-7"})
    assert tail.status_code == 206 and tail.content == full[-7:]
    rest = http("GET", CITIES, headers={"Range": f"bytes={size - 3}-"})
    assert rest.content == full[-3:]
    clipped = http("GET", CITIES, headers={"Range": f"bytes=0-{size * 2}"})
    assert clipped.status_code == 206 and clipped.content == full
    multi = http("GET", CITIES, headers={"Range": "bytes=0-1,4-5"})
    assert multi.status_code == 200 and multi.content == full


def test_unsatisfiable_range_is_416(http):
    size = len(http("GET", CITIES).content)
    response = http("GET", CITIES, headers={"Range": f"bytes={size}-"})
    assert_json_error(response, 416)
    assert response.headers["Content-Range"] == f"bytes */{size}"


def test_etag_validators(http, scratch):
    path = f"/v1/data/.my/{scratch}/e.txt"
    http("PUT", path, data=b"one")
    etag = http("HEAD", path).headers["ETag"]
    assert http("GET", path).headers["ETag"] == etag
    assert http("GET", path, headers={"If-None-Match": etag}).status_code == 304
    assert http("GET", path, headers={"Range": "bytes=0-0", "If-Range": etag}).status_code == 206
    http("PUT", path, data=b"two!")
    new_etag = http("HEAD", path).headers["ETag"]
    assert new_etag != etag
    stale = http("GET", path, headers={"If-None-Match": etag})
    assert stale.status_code == 200 and stale.content == b"two!"
    ignored = http("GET", path, headers={"Range": "bytes=0-0", "If-Range": etag})
    assert ignored.status_code == 200 and ignored.content == b"two!"


# -- PUT / POST / PATCH / DELETE wire format ------------------------------------------------------------

def test_put_answers_the_uri_as_addressed(http, scratch):
    response = http("PUT", f"/v1/data/.my/{scratch}/f.txt", data=b"x")
    assert response.json() == {"result": f"data://.my/{scratch}/f.txt"}
    response = http("PUT", f"/v1/data/demo/{scratch}/g.txt", data=b"x")
    assert response.json() == {"result": f"data://demo/{scratch}/g.txt"}


def test_put_errors(http, scratch):
    assert_json_error(http("PUT", f"/v1/data/.my/{scratch}/missing/f.txt", data=b"x"), 404)
    assert_json_error(http("PUT", "/v1/data/.my/file-at-user-level.txt", data=b"x"), 400)
    assert_json_error(http("PUT", "/v1/data/alice/public/x.txt", data=b"x"), 403)
    http("POST", f"/v1/data/.my/{scratch}", json={"name": "d"})
    assert_json_error(http("PUT", f"/v1/data/.my/{scratch}/d", data=b"x"), 409)


def test_mkdir_delete_wire_format(http, scratch):
    response = http("POST", f"/v1/data/.my/{scratch}", json={"name": "sub"})
    assert response.status_code == 200 and response.json() == {"result": f"data://.my/{scratch}/sub"}
    assert_json_error(http("POST", f"/v1/data/.my/{scratch}", json={"name": "sub"}), 409)
    http("PUT", f"/v1/data/.my/{scratch}/sub/a", data=b"a")
    http("PUT", f"/v1/data/.my/{scratch}/sub/b", data=b"b")
    not_empty = http("DELETE", f"/v1/data/.my/{scratch}/sub")
    assert_json_error(not_empty, 400)
    assert not_empty.json()["error"]["deleted"] == 0
    assert http("DELETE", f"/v1/data/.my/{scratch}/sub?force=true").json() == {"result": {"deleted": 2}}
    assert_json_error(http("DELETE", f"/v1/data/.my/{scratch}/sub"), 404)


def test_cannot_delete_user_folder_or_root(http):
    assert_json_error(http("DELETE", "/v1/data/.my?force=true"), 403)
    assert_json_error(http("DELETE", "/v1/data/?force=true"), 403)


@pytest.mark.parametrize("body", [b"{not json", b"[1,2]", b'{"acl": {"read": ["user://alice"]}}',
                                  b'{"acl": {"read": "user://*"}}', b"{}"])
def test_patch_rejects_bad_bodies(http, scratch, body):
    assert_json_error(http("PATCH", f"/v1/data/.my/{scratch}", data=body,
                           headers={"content-type": "application/json"}), 400)


def test_patch_only_on_collections(http, scratch):
    http("POST", f"/v1/data/.my/{scratch}", json={"name": "inner"})
    acl = {"acl": {"read": []}}
    assert_json_error(http("PATCH", f"/v1/data/.my/{scratch}/inner", json=acl), 400)
    assert_json_error(http("PATCH", "/v1/data/s3://demo-bucket", json=acl), 400)
    assert_json_error(http("PATCH", "/v1/data/demo/public", json=acl, user="alice"), 403)


@pytest.mark.parametrize("body", [b"{oops", b'"name"', b'{"name": 5}', b'{"name": "a/b"}', b'{"name": ".."}',
                                  b'{"name": "."}', b'{"name": ""}', b'{"name": "a?b"}', b'{"name": "a#b"}',
                                  b'{"name": "a%41b"}', b'{"name": "nul\\u0000"}',
                                  b'{"name": "ok", "acl": {"read": ["everyone"]}}'])
def test_mkdir_rejects_bad_input(http, scratch, body):
    assert_json_error(http("POST", f"/v1/data/.my/{scratch}", data=body,
                           headers={"Content-Type": "application/json"}), 400)


# -- paths that must be refused (sent verbatim, no client-side normalisation) ------------------------

@pytest.mark.parametrize("path", [
    "/v1/data/.my/../alice/private/secret.txt",
    "/v1/data/.my/datasets/../../alice/private",
    "/v1/data/.my/%2e%2e/alice/private",
    "/v1/data/.my/%2E%2E/%2E%2E/etc/passwd",
    "/v1/data/.my/datasets/%2e",
    "/v1/data/.my/datasets%2F..%2F..%2Falice",
    "/v1/data/.my/a%2Fb",
    "/v1/data/.my/bad%00name",
    "/v1/data/.my/q%3Fmark",
    "/v1/data/.my/hash%23tag",
    "/v1/data/.my/pct%2541",
    "/v1/data/.my/%ff%fe",
    "/v1/data/.my/.algofs-partial-123",
    "/v1/connector/s3/demo-bucket/../../../etc",
    "/v1/connector/nosuch/x",
    "/v1/data/ftp://x/y",
])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_bad_paths_are_400(raw_get, path, method):
    status, body = raw_get(path, method)
    assert status == 400
    if method == "GET":
        assert b'"error"' in body


def test_names_with_allowed_special_characters_round_trip(http, scratch):
    for name in ["a b", "ü-é", "a+b", "a;b", "a'b", "a&b=c", "[x]", "100%", string.punctuation.translate(
            str.maketrans("", "", "/?#%"))]:
        from urllib.parse import quote

        path = f"/v1/data/.my/{scratch}/{quote(name, safe='')}"
        assert http("PUT", path, data=name.encode()).status_code == 200, name
        assert http("GET", path).content == name.encode()
    listed = {f["filename"] for f in http("GET", f"/v1/data/.my/{scratch}").json()["files"]}
    assert {"a b", "ü-é", "100%"} <= listed


# -- connectors -----------------------------------------------------------------------------------------

def test_both_url_families_reach_the_same_connector_file(http):
    via_data = http("GET", "/v1/data/s3://demo-bucket/hello.txt")
    via_connector = http("GET", "/v1/connector/s3/demo-bucket/hello.txt")
    assert via_data.status_code == via_connector.status_code == 200
    assert via_data.content == via_connector.content
    assert http("GET", "/v1/connector/data/.my/datasets/cities.csv").content == http("GET", CITIES).content


def test_unknown_connector_is_404(http):
    assert_json_error(http("GET", "/v1/data/gs://bucket/x"), 404)


def test_restricted_connector(http):
    for path in ["/v1/data/s3+images://", "/v1/data/s3+images://media", "/v1/connector/s3+images/",
                 "/v1/data/s3+images://media/private/secret.txt"]:
        assert_json_error(http("GET", path), 403)
        assert http("HEAD", path).status_code == 403
    assert http("HEAD", "/v1/data/s3+images://media/images/cat.png").headers["X-Data-Type"] == "file"
    assert http("HEAD", "/v1/connector/s3+images/media/images").headers["X-Data-Type"] == "directory"
    assert_json_error(http("PUT", "/v1/data/s3+images://media/new.txt", data=b"x"), 403)


# -- paging -----------------------------------------------------------------------------------------------

def test_2500_files_paged_through_markers(api_server, http, client, scratch):
    directory = api_server.root / "data" / "demo" / scratch
    names = {f"f{i:04d}.txt" for i in range(2500)}
    for name in names:
        (directory / name).write_bytes(b"x")
    for i in range(3):
        (directory / f"dir{i}").mkdir()
    seen_files, seen_dirs, pages, marker = [], [], 0, None
    while True:
        response = http("GET", f"/v1/data/.my/{scratch}", params={"marker": marker} if marker else None)
        body = response.json()
        pages += 1
        page_len = len(body.get("files", [])) + len(body.get("folders", []))
        assert page_len <= 1000
        seen_dirs += [f["name"] for f in body.get("folders", [])]
        seen_files += [f["filename"] for f in body.get("files", [])]
        marker = body.get("marker")
        if not marker:
            break
        assert re.fullmatch(r"[A-Za-z0-9_-]+", marker)
    assert pages == 3
    assert seen_dirs == ["dir0", "dir1", "dir2"]
    assert len(seen_files) == len(set(seen_files)) == 2500 and set(seen_files) == names
    # the official client follows the markers the same way
    assert sum(1 for _ in client.dir(f"data://.my/{scratch}").files()) == 2500


def list_all(http, folder: str) -> tuple[list[str], int]:
    names, pages, marker = [], 0, None
    while True:
        body = http("GET", f"/v1/data/.my/{folder}", params={"marker": marker} if marker else None).json()
        pages += 1
        names += [f["name"] for f in body.get("folders", [])] + [f["filename"] for f in body.get("files", [])]
        marker = body.get("marker")
        if not marker:
            return names, pages


def test_a_remembered_large_directory_still_shows_every_change(api_server, http, scratch):
    """The server keeps the sorted names of large directories between pages; a change must still show,
    even one made right after a listing, within the file system's timestamp granularity."""
    directory = api_server.root / "data" / "demo" / scratch
    for i in range(1500):
        (directory / f"f{i:04d}.txt").write_bytes(b"x" * (i % 7))
    settled = time.time() - 60
    os.utime(directory, (settled, settled))  # old enough to be remembered
    names, pages = list_all(http, scratch)
    assert len(names) == 1500 and pages == 2
    (directory / "f0000.txt").write_bytes(b"grown")  # same name, new size: listed afresh, no rescan
    (directory / "added.txt").write_bytes(b"new")
    (directory / "f0999.txt").unlink()
    names, _ = list_all(http, scratch)
    assert "added.txt" in names and "f0999.txt" not in names and len(names) == 1500
    first = http("GET", f"/v1/data/.my/{scratch}").json()["files"]
    assert {f["filename"]: f["size"] for f in first}["f0000.txt"] == 5


def test_entries_removed_between_pages_are_skipped(api_server, http, scratch):
    directory = api_server.root / "data" / "demo" / scratch
    for i in range(2100):
        (directory / f"f{i:04d}.txt").write_bytes(b"x")
    body = http("GET", f"/v1/data/.my/{scratch}").json()
    assert len(body["files"]) == 1000 and body["files"][-1]["filename"] == "f0999.txt"
    for i in range(1000, 1500):
        (directory / f"f{i:04d}.txt").unlink()
    rest, marker = [], body["marker"]
    while marker:
        page = http("GET", f"/v1/data/.my/{scratch}", params={"marker": marker}).json()
        rest += [f["filename"] for f in page.get("files", [])]
        marker = page.get("marker")
    assert rest == [f"f{i:04d}.txt" for i in range(1500, 2100)]


def test_a_page_of_unlistable_entries_does_not_end_the_listing(api_server, http, scratch):
    """A full page of names that are neither file nor folder (broken links) is skipped, and the marker
    still leads on to the files after it."""
    directory = api_server.root / "data" / "demo" / scratch
    for i in range(1000):
        (directory / f"a{i:04d}").symlink_to(directory / "nowhere")
    for i in range(10):
        (directory / f"b{i}.txt").write_bytes(b"x")
    names, pages = list_all(http, scratch)
    assert names == [f"b{i}.txt" for i in range(10)] and pages == 2


def test_demo_directory_with_5000_files(client):
    names = [f.getName() for f in client.dir("data://.my/many_files").files()]
    assert len(names) >= 5000 and names[0] == "file-00000.txt"


def test_invalid_marker(http):
    assert_json_error(http("GET", "/v1/data/.my/many_files", params={"marker": "!!!"}), 400)
    assert_json_error(http("GET", "/v1/data/.my/many_files", params={"marker": "eHl6"}), 400)


# -- generic errors ---------------------------------------------------------------------------------------

def test_unknown_route_and_method_are_json(http):
    assert_json_error(http("GET", "/v2/whatever"), 404)
    assert_json_error(http("OPTIONS", CITIES), 405)
