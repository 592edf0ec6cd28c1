"""The hosted service's algorithm lifecycle through the official client (2.0.5), against ``algofs serve``.

Issue 27, item 3: a new algorithm starts from its language's template, so the client's own programmatic
workflow (create → compile → pipe on the build hash → publish → info → versions) runs with no upload in
between (before, compile answered 400: a new algorithm had no source); builds by id and their logs;
secrets that reach that algorithm's runs and no other's; SCM status; languages and environments; error
lists. Algorithms live on the server's local disk whatever the data storage, so one local server serves.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import stat
import tarfile
from pathlib import Path

import Algorithmia
import pytest
import requests

from algofs_jupyter.server.algo_templates import SPECIFICATION_ID, template_files, template_tarball
from algofs_jupyter.server.users import DEMO_USERS

from .algo_helpers import ServerWithOptions, unique, upload

READ_SECRET = ("import os\n\ndef apply(input):\n"
               "    return {'token': os.environ.get('MY_TOKEN'), 'other': os.environ.get('OTHER_TOKEN')}\n")


@pytest.fixture(scope="module")
def server(local_api_server):
    return local_api_server


@pytest.fixture(scope="module")
def demo(server) -> Algorithmia.client.Client:
    return Algorithmia.client(api_key=DEMO_USERS["demo"], api_address=server.url)


@pytest.fixture(scope="module")
def alice(server) -> Algorithmia.client.Client:
    return Algorithmia.client(api_key=DEMO_USERS["alice"], api_address=server.url)


def get(server, path: str, user: str = "demo") -> requests.Response:
    return requests.get(server.url + path, headers={"Authorization": DEMO_USERS[user]}, timeout=30)


def post(server, path: str, body: object, user: str = "demo") -> requests.Response:
    headers = {"Authorization": DEMO_USERS[user]}
    return requests.post(server.url + path, json=body, headers=headers, timeout=60)


def created(demo, label: str = "Made by a test") -> tuple[str, object, dict]:
    name = unique("lc")
    algo = demo.algo(f"demo/{name}")
    return name, algo, algo.create(details={"label": label}, settings={"algorithm_callability": "public"})


def test_the_clients_programmatic_workflow_end_to_end(demo, alice):
    """The official client's own test_algorithm_programmatic_create_process, against a real server."""
    name = unique("hello")
    full_path = "demo/" + name
    details = {"summary": "Example Summary", "label": "QA", "tagline": "Example Tagline"}
    settings = {"source_visibility": "open", "algorithm_environment": "abcd-123", "license": "apl",
                "network_access": "isolated", "pipeline_enabled": False}
    created_algo = demo.algo(full_path)
    response = created_algo.create(details=details, settings=settings, version_info={"sample_input": "hello"})
    assert response["name"] == name and response["settings"]["language"] == "python3"

    response = created_algo.compile()  # was a 400: no source
    assert response["name"] == name and response["compilation"]["successful"] is True
    git_hash = response["version_info"]["git_hash"]
    algo_with_build = demo.algo(full_path + "/" + git_hash)
    assert algo_with_build.pipe("John").result == "hello John"

    response = algo_with_build.publish(
        details={"label": "testing123"}, settings={"algorithm_callability": "private"},
        version_info={"release_notes": "created programmatically", "sample_input": "John",
                      "version_type": "minor"})
    assert response["version_info"]["semantic_version"] == "0.1.0"
    assert response["details"]["label"] == "testing123"  # publish stores details and settings, as hosted
    assert response["settings"]["algorithm_callability"] == "private"

    assert created_algo.info(git_hash)["version_info"]["semantic_version"] == "0.1.0"
    versions = created_algo.versions()["results"]
    assert [v["version_info"]["semantic_version"] for v in versions] == ["0.1.0"]
    assert demo.algo(full_path).pipe("Ada").result == "hello Ada"
    with pytest.raises(Exception, match="Non-Algorithm related Failure"):
        alice.algo(full_path).pipe("Ada")  # private since the publish: 404 for others


def test_builds_by_id_and_their_logs(server, demo, alice):
    name, algo, _ = created(demo)
    first = algo.compile()
    upload(server.url, "demo", name, "def apply(input):\n    return 2\n").raise_for_status()
    second = algo.compile()
    builds = algo.get_builds()["results"]  # newest first
    assert [b["build_id"] for b in builds] == [second["build"]["build_id"], first["build"]["build_id"]]
    page = algo.get_builds(limit=1)
    assert len(page["results"]) == 1 and page["marker"]
    assert algo.get_builds(limit=1, marker=page["marker"])["results"][0]["build_id"] == builds[1]["build_id"]
    build = algo.get_build(builds[1]["build_id"])
    assert build["status"] == "succeeded" and build["commit_sha"] == first["version_info"]["git_hash"]
    assert "apply(input) found" in algo.get_build_logs(build["build_id"])["logs"]
    with pytest.raises(Exception, match="build not found"):
        algo.get_build("00000000-0000-0000-0000-000000000000")
    with pytest.raises(Exception, match="not authorized"):
        alice.algo(f"demo/{name}").get_build_logs(build["build_id"])


def test_a_failed_build_has_its_log_and_is_listed_with_the_errors(server, demo):
    name, algo, made = created(demo)
    upload(server.url, "demo", name, "def apply(input:\n    return 1\n").raise_for_status()
    compiled = algo.compile()
    assert compiled["build"]["status"] == "failed"
    logs = algo.get_build_logs(compiled["build"]["build_id"])["logs"]
    assert "SyntaxError" in logs and "algorithm.py" in logs
    assert "algorithm_runner" not in logs and "/run/algofs" not in logs  # the author's frames only
    errors = demo.get_algorithm_errors(made["id"])
    assert errors[0]["error_type"] == "BuildFailed" and "SyntaxError" in errors[0]["message"]


def test_a_secret_reaches_that_algorithms_runs_and_no_other(server, demo, alice):
    name, algo, made = created(demo)
    other_name, other, other_made = created(demo)
    for each in (name, other_name):
        upload(server.url, "demo", each, READ_SECRET).raise_for_status()
    value = "s3cr3t-" + unique("v")
    assert demo.get_secret_providers()[0]["id"]
    answer = algo.set_secret("token", "MY_TOKEN", value, description="a test token")
    assert answer["secret_key"] == "MY_TOKEN" and value not in json.dumps(answer)
    other.set_secret("other", "OTHER_TOKEN", "the other one's")

    algo.publish(version_info={"version_type": "minor"})
    other.publish(version_info={"version_type": "minor"})
    assert demo.algo(f"demo/{name}").pipe(1).result == {"token": value, "other": None}
    assert demo.algo(f"demo/{other_name}").pipe(1).result == {"token": None, "other": "the other one's"}
    # another caller's call of the algorithm runs with the algorithm's secrets (as hosted), not theirs
    assert alice.algo(f"demo/{name}").pipe(1).result["token"] == value

    listed = algo.get_secrets()
    assert [s["secret_key"] for s in listed["results"]] == ["MY_TOKEN"]
    assert value not in json.dumps(listed)
    # a new value reaches the next call (warm workers with the old one are retired)
    algo.set_secret("token", "MY_TOKEN", value + "-2")
    assert demo.algo(f"demo/{name}").pipe(1).result["token"] == value + "-2"

    # stored 0600 in a 0700 folder; never on a command line, never in the server's log
    stored = Path(server.root) / "algorithm-secrets" / f"{made['id']}.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert stat.S_IMODE(stored.parent.stat().st_mode) == 0o700
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        assert value.encode() not in cmdline, pid
    assert value not in server.log_path.read_text(errors="replace")

    # the owner's only: others get 403, an unknown id 404, bad bodies 400
    with pytest.raises(Exception, match="not authorized"):
        alice.algo(f"demo/{name}").get_secrets()
    body = {"secret_key": "X", "secret_value": "v", "short_name": "x"}
    assert post(server, f"/v1/algorithms/{made['id']}/secrets", body, user="alice").status_code == 403
    assert get(server, "/v1/algorithms/00000000-0000-4000-8000-000000000000/secrets").status_code == 404
    for bad in ({"secret_key": "PATH", "secret_value": "/evil", "short_name": "p"},
                {"secret_key": "LD_PRELOAD", "secret_value": "x", "short_name": "p"},
                {"secret_key": "1BAD", "secret_value": "x", "short_name": "p"},
                {"secret_key": "OK", "secret_value": 3, "short_name": "p"},
                {"secret_key": "OK", "secret_value": "x", "short_name": ""},
                {"secret_key": "OK", "secret_value": "x", "short_name": "p", "provider_id": "vault"}):
        response = post(server, f"/v1/algorithms/{made['id']}/secrets", bad)
        assert response.status_code == 400 and response.json()["error"]["message"], bad
    assert other_made["id"] != made["id"]


def test_scm_languages_environments_and_the_template(server, demo, tmp_path):
    name, algo, _ = created(demo)
    scms = demo.scms()["results"]
    assert [s["id"] for s in scms] == ["internal"] and scms[0]["default"] is True
    assert algo.get_scm_status()["scm_connection_status"] == "active"
    languages = demo.get_supported_languages()
    assert [lang["name"] for lang in languages] == ["python3"]
    environments = demo.get_environment("python3")["environments"]
    assert len(environments) == 1 and environments[0]["machine_type"] == "CPU"
    assert demo.get_environment("r36")["error"]["message"].startswith("no environments")
    demo.get_template(environments[0]["environment_specification_id"], str(tmp_path / "t"))
    assert 'return f"hello {input}"' in (tmp_path / "t" / "algorithm.py").read_text()
    with pytest.raises(Exception, match="400"):  # the client shows no more of a 4xx
        demo.algo(f"demo/{unique('java')}").create(details={}, settings={"language": "java11"})
    body = {"name": unique("java"), "settings": {"language": "java11"}}
    refused = post(server, "/v1/algorithms/demo", body)
    assert "python3 algorithms only" in refused.json()["error"]["message"]


def test_error_lists_are_the_owners(server, demo, alice):
    name, algo, made = created(demo)
    upload(server.url, "demo", name, "def apply(input):\n    raise ValueError('bad input ' + str(input))\n")
    algo.publish(version_info={"version_type": "minor"})
    with pytest.raises(Algorithmia.errors.AlgorithmException, match="bad input 7"):
        demo.algo(f"demo/{name}").pipe(7)
    errors = demo.get_algorithm_errors(made["id"])
    assert errors[0]["error_type"] == "AlgorithmError" and "bad input 7" in errors[0]["message"]
    assert errors[0]["algorithm"] == f"demo/{name}" and errors[0]["version"] == "0.1.0"
    assert any(e["id"] == errors[0]["id"] for e in demo.get_user_errors("demo"))
    assert alice.get_user_errors("alice") == [] or all(e["algorithm"].startswith("alice/")
                                                      for e in alice.get_user_errors("alice"))
    assert alice.get_user_errors("demo")["error"]["message"].startswith("Caller is not authorized")
    with pytest.raises(Exception, match="not authorized"):
        alice.get_algorithm_errors(made["id"])
    assert "error" in demo.get_organization_errors(unique("noorg"))


def test_template_tarball_unpacks_to_the_template():
    with tarfile.open(fileobj=io.BytesIO(template_tarball(SPECIFICATION_ID)), mode="r:gz") as tar:
        assert tar.getnames() == sorted(template_files())


def test_an_organizations_algorithms_secrets_and_errors_are_its_members(tmp_path):
    """Issue 27, items 1 and 3 together: members of ``lab`` (hub file) manage ``lab/<algo>``'s secrets and
    read the organization's error list; someone outside it gets 403, an unknown organization 404."""
    users = {name: secrets.token_urlsafe(24) for name in ("ann", "bob", "cat")}
    orgs = tmp_path / "organizations.json"
    orgs.write_text(json.dumps({"organizations": {"lab": {"members": {"ann": "admin", "bob": "member"}}}}))
    args = ["--organizations-file", str(orgs), "--allow-unisolated-algorithms"]
    with ServerWithOptions(tmp_path / "root", args, users=users) as server:
        def client(name):
            return Algorithmia.client(api_key=users[name], api_address=server.url)

        ann, bob, cat = client("ann"), client("bob"), client("cat")
        name = unique("lab")
        made = ann.algo(f"lab/{name}").create(details={"label": name}, settings={})
        source = ("import os\n\ndef apply(input):\n    if input == 'fail':\n"
                  "        raise ValueError('lab broke')\n    return os.environ.get('LAB_TOKEN')\n")
        headers = {"Authorization": users["ann"], "Content-Type": "text/x-python"}
        requests.put(f"{server.url}/v1/algorithms/lab/{name}/source", data=source.encode(), timeout=30,
                     headers=headers).raise_for_status()
        bob.algo(f"lab/{name}").set_secret("token", "LAB_TOKEN", "lab-value")  # a member, not the creator
        ann.algo(f"lab/{name}").publish(version_info={"version_type": "minor"})
        assert cat.algo(f"lab/{name}").pipe("x").result == "lab-value"  # the algorithm's secret, any caller
        with pytest.raises(Algorithmia.errors.AlgorithmException, match="lab broke"):
            cat.algo(f"lab/{name}").pipe("fail")

        listed = bob.get_organization_errors("lab")
        assert listed[0]["algorithm"] == f"lab/{name}" and "lab broke" in listed[0]["message"]
        assert bob.get_algorithm_errors(made["id"])[0]["id"] == listed[0]["id"]
        assert cat.get_organization_errors("lab")["error"]["message"].startswith("Caller is not authorized")
        assert cat.get_organization_errors("nolab")["error"]["message"] == "no such organization"
        with pytest.raises(Exception, match="not authorized"):
            cat.algo(f"lab/{name}").get_secrets()
        assert [s["secret_key"] for s in bob.algo(f"lab/{name}").get_secrets()["results"]] == ["LAB_TOKEN"]
