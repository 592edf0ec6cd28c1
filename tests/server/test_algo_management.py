"""The algorithm management API through the official client (2.0.5), unchanged, against ``algofs serve``.

Every call here answered "no API endpoint" before this API existed.
"""

from __future__ import annotations

import pytest

from .algo_helpers import publish_source, unique, upload

ECHO_V1 = "def apply(input):\n    return {'v': 1, 'input': input}\n"
ECHO_V2 = "def apply(input):\n    return {'v': 2, 'input': input}\n"


@pytest.fixture
def new_algo(client):
    name = unique("m")
    algo = client.algo(f"demo/{name}")
    created = algo.create(details={"label": "Made by a test"}, settings={"algorithm_callability": "public"})
    return name, algo, created


def test_exists_and_create(client, new_algo):
    name, algo, created = new_algo
    assert created["name"] == name and created["details"]["label"] == "Made by a test"
    assert created["resource_type"] == "algorithm" and created["id"]
    assert algo.exists() is True
    assert client.algo(f"demo/{unique('missing')}").exists() is False
    assert client.algo("demo/echo").exists() is True  # an algorithm put on disk (demo content)
    with pytest.raises(Exception, match="409"):  # the client turns every 4xx into this
        algo.create(details={}, settings={})


def test_compile_publish_versions_builds(client, http, new_algo):
    name, algo, _ = new_algo
    assert upload(api_url(http), "demo", name, ECHO_V1).status_code == 200
    compiled = algo.compile()
    assert compiled["compilation"]["successful"] is True
    sha = compiled["version_info"]["git_hash"]
    assert len(sha) == 40 and compiled["build"]["status"] == "succeeded"

    first = algo.publish(version_info={"version_type": "minor", "release_notes": "first"})
    assert first["version_info"]["semantic_version"] == "0.1.0"
    assert first["version_info"]["git_hash"] == sha
    assert client.algo(f"demo/{name}").pipe("x").result == {"v": 1, "input": "x"}

    upload(api_url(http), "demo", name, ECHO_V2)
    second = algo.publish(version_info={"version_type": "major"})  # builds the new source itself
    assert second["version_info"]["semantic_version"] == "1.0.0"
    third = algo.publish(version_info={"version_type": "revision"})
    assert third["version_info"]["semantic_version"] == "1.0.1"

    versions = algo.versions()
    assert [v["version_info"]["semantic_version"] for v in versions["results"]] == ["1.0.1", "1.0.0", "0.1.0"]
    assert versions["marker"] is None and versions["next_link"] is None
    page = algo.versions(limit=2)
    assert len(page["results"]) == 2 and page["marker"] and page["next_link"]
    rest = algo.versions(limit=2, marker=page["marker"])
    assert [v["version_info"]["semantic_version"] for v in rest["results"]] == ["0.1.0"]
    assert algo.info(sha)["version_info"]["semantic_version"] == "0.1.0"
    assert algo.info()["results"][0]["version_info"]["semantic_version"] == "1.0.1"

    # version lookups as the hosted API resolved them
    assert client.algo(f"demo/{name}/0.1.0").pipe(1).result["v"] == 1
    assert client.algo(f"demo/{name}/0.*").pipe(1).result["v"] == 1
    assert client.algo(f"demo/{name}/1.x").pipe(1).result["v"] == 2
    assert client.algo(f"demo/{name}/latest").pipe(1).result["v"] == 2
    assert client.algo(f"demo/{name}/{sha}").pipe(1).result["v"] == 1  # a build by git hash, owner only

    builds = algo.get_builds()
    assert len(builds["results"]) == 2 and {b["status"] for b in builds["results"]} == {"succeeded"}
    build_id = builds["results"][0]["build_id"]
    assert algo.get_build(build_id)["build_id"] == build_id
    assert "apply" in algo.get_build_logs(build_id)["logs"]

    listing = http("GET", "/v1/algorithms/demo").json()["results"]
    assert {"name": name, "versions": ["1.0.1", "1.0.0", "0.1.0"], "latest": "1.0.1"} in listing


@pytest.mark.parametrize("source, expected", [
    ("def apply(input:\n    return 1\n", "SyntaxError"),
    ("import no_such_module_here\n\ndef apply(input):\n    return 1\n", "ModuleNotFoundError"),
    ("def handle(input):\n    return 1\n", "defines no function apply"),
])
def test_failed_builds_report_the_error(http, new_algo, source, expected):
    name, algo, _ = new_algo
    upload(api_url(http), "demo", name, source)
    compiled = algo.compile()
    assert compiled["compilation"]["successful"] is False
    assert expected in compiled["compilation"]["output"]
    assert compiled["build"]["status"] == "failed"
    build = algo.get_builds()["results"][0]
    assert build["status"] == "failed" and expected in algo.get_build_logs(build["build_id"])["logs"]
    response = http("POST", f"/v1/algorithms/demo/{name}/versions",
                    json={"version_info": {"version_type": "minor"}})
    assert response.status_code == 400
    assert response.json()["error"]["error_type"] == "BuildFailed"
    assert expected in response.json()["error"]["logs"]
    assert algo.versions()["results"] == []


def test_update_with_the_client_and_with_json(http, new_algo):
    name, algo, _ = new_algo
    # the 2.0.5 client form-encodes its dicts (keys only): accepted, changes nothing
    assert algo.update(details={"summary": "lost by the client"})["details"]["label"] == "Made by a test"
    body = http("PUT", f"/v1/algorithms/demo/{name}", json={"details": {"summary": "A summary"}}).json()
    assert body["details"]["summary"] == "A summary" and body["details"]["label"] == "Made by a test"


def test_only_the_owner_manages(http, alice, new_algo):
    name, _, _ = new_algo
    other = alice.algo(f"demo/{name}")
    with pytest.raises(Exception, match="403"):
        other.compile()
    base = f"/v1/algorithms/demo/{name}"
    for method, path in [("PUT", f"{base}/source"), ("POST", f"{base}/versions"),
                         ("PUT", base), ("GET", f"{base}/builds"),
                         ("POST", "/v1/algorithms/demo")]:
        response = http(method, path, user="alice", data=b"{}", headers={"Content-Type": "application/json"})
        assert response.status_code == 403, (method, path, response.text)


def test_private_algorithms_are_invisible_to_others(client, alice, http):
    name = unique("p")
    publish_source(api_url(http), "demo", name, ECHO_V1, private=True)
    assert client.algo(f"demo/{name}").pipe("x").result["v"] == 1
    with pytest.raises(Exception, match="Non-Algorithm related Failure"):
        alice.algo(f"demo/{name}").pipe("x")  # 404
    names = [a["name"] for a in http("GET", "/v1/algorithms/demo", user="alice").json()["results"]]
    assert name not in names


@pytest.mark.parametrize("body", [b"[" * 200_000, b"{\"details\": " * 100_000, b"not json", b"[1, 2]"])
def test_bad_management_bodies_are_4xx(http, body):
    response = http("POST", "/v1/algorithms/demo", data=body, headers={"Content-Type": "application/json"})
    assert 400 <= response.status_code < 500 and response.json()["error"]["message"]


@pytest.mark.parametrize("files", [{"../x.py": "", "algorithm.py": ""}, {"helper.py": "x = 1"},
                                   {"algorithm.py": 3}])
def test_bad_source_uploads_are_4xx(http, new_algo, files):
    name, _, _ = new_algo
    response = http("PUT", f"/v1/algorithms/demo/{name}/source", json={"files": files})
    assert response.status_code == 400 and response.json()["error"]["message"]


def test_source_upload_with_several_files(client, http, new_algo):
    name, algo, _ = new_algo
    files = {"algorithm.py": "from helper import double\n\ndef apply(input):\n    return double(input)\n",
             "helper.py": "def double(x):\n    return 2 * x\n"}
    assert http("PUT", f"/v1/algorithms/demo/{name}/source", json={"files": files}).status_code == 200
    assert http("GET", f"/v1/algorithms/demo/{name}/source").json()["files"] == files
    algo.publish(version_info={"version_type": "major"})
    assert client.algo(f"demo/{name}").pipe(21).result == 42


def api_url(http) -> str:
    return http("GET", "/healthz", user=None).url.rsplit("/healthz", 1)[0]
