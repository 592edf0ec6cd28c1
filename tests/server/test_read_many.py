"""``POST /v1/algofs/read-many`` (docs/api-extensions.md §12) over raw HTTP, split by the mount's decoder:
each file answers what its GET answers (bytes, ETag, or the same error), others' private data included."""

from __future__ import annotations

import errno
import os

import pytest

from algofs_jupyter.fs import read_many
from algofs_jupyter.server.read_many import CONTENT_TYPE, MAX_BYTES, MAX_PATHS


def ask(http, uris: list[str], user: str = "demo"):
    return http("POST", "/v1/algofs/read-many", json={"paths": uris}, user=user)


def split(response, uris: list[str]) -> read_many.ManyResult:
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == CONTENT_TYPE
    assert int(response.headers["Content-Length"]) == len(response.content)
    return read_many.decode(response.content, {uri: uri for uri in uris})


def test_capabilities_offer_read_many_on_every_backend(http) -> None:
    body = http("GET", "/v1/algofs/capabilities").json()
    assert body["extensions"]["read-many"] == 1
    assert all("read-many" in offered for offered in body["backends"].values())


def test_files_come_with_their_etags_and_each_error_is_what_its_get_gets(http, scratch) -> None:
    blobs = {"a.bin": os.urandom(5000), "empty.txt": b"", "b c%.txt": b"spaces and a percent"}
    for name, data in blobs.items():
        assert http("PUT", f"/v1/data/.my/{scratch}/{name.replace('%', '%25')}", data=data).status_code == 200
    http("POST", f"/v1/data/.my/{scratch}", json={"name": "sub"})
    uris = [f"data://.my/{scratch}/{name}" for name in blobs] + [
        f"data://.my/{scratch}/missing", f"data://.my/{scratch}/sub", "data://alice/private/secret.txt",
        f"data://.my/{scratch}/a.bin"]  # asked twice: answered twice
    result = split(ask(http, uris), uris)
    for name, data in blobs.items():
        got = result[f"data://.my/{scratch}/{name}"]
        get = http("GET", f"/v1/data/.my/{scratch}/{name.replace('%', '%25')}")
        assert got == (data, get.headers["ETag"]) and get.content == data
    assert isinstance(result[f"data://.my/{scratch}/missing"], FileNotFoundError)
    assert http("GET", f"/v1/data/.my/{scratch}/missing").status_code == 404
    assert isinstance(result[f"data://.my/{scratch}/sub"], OSError)
    assert result[f"data://.my/{scratch}/sub"].errno == errno.EISDIR
    secret = result["data://alice/private/secret.txt"]
    assert isinstance(secret, PermissionError)  # what demo's GET of it gets
    assert http("GET", "/v1/data/alice/private/secret.txt").status_code == 403
    assert split(ask(http, ["data://alice/private/secret.txt"], user="alice"),
                 ["data://alice/private/secret.txt"])["data://alice/private/secret.txt"][0] == \
        http("GET", "/v1/data/alice/private/secret.txt", user="alice").content


def test_an_answer_holds_at_most_max_bytes_the_rest_is_left_to_a_get(http, scratch) -> None:
    big = os.urandom(MAX_BYTES // 2 + 1)
    for name in ("one", "two"):
        assert http("PUT", f"/v1/data/.my/{scratch}/{name}", data=big).status_code == 200
    uris = [f"data://.my/{scratch}/one", f"data://.my/{scratch}/two"]
    result = split(ask(http, uris), uris)
    assert result[uris[0]][0] == big
    too_big = result[uris[1]]
    assert isinstance(too_big, OSError) and too_big.errno == errno.EFBIG


@pytest.mark.parametrize("body", [{}, {"paths": "data://.my/x"}, {"paths": [1, 2]},
                                  {"paths": ["data://.my/x"] * (MAX_PATHS + 1)}])
def test_bad_requests_get_a_400_json_error(http, body) -> None:
    response = http("POST", "/v1/algofs/read-many", json=body)
    assert response.status_code == 400 and response.json()["error"]["message"]


def test_bad_paths_get_their_own_errors_and_strangers_get_401(http) -> None:
    uris = ["not a uri", "data://", "data://.my"]
    result = split(ask(http, uris), uris)
    assert all(isinstance(result[uri], OSError) for uri in uris)
    assert http("POST", "/v1/algofs/read-many", json={"paths": []}, user=None).status_code == 401
    assert split(ask(http, []), []) == {}
