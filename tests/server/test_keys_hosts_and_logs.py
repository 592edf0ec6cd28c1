"""Hardening of `algofs serve` for shared machines (issue 15): random keys, Host check, bounded logs,
a users file that JupyterHub can change while the server runs."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import psutil
import pytest
import requests

from algofs_jupyter.server.embedded_server import EmbeddedServer
from algofs_jupyter.server.users import DEMO_USERS
from algofs_jupyter.supervise import ChildProcess

from .test_cli import start_serve, stop


def serve(root: Path, port: int, *args: str) -> ChildProcess:
    """`algofs serve` as a child, ready once its ready file exists."""
    return start_serve(list(args), root, port, {})


def eventually(condition, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def status_with(url: str, key: str, path: str = "/v1/data/.my") -> int:
    return requests.get(url + path, headers={"Authorization": key}, timeout=10).status_code


# ----- random keys ------------------------------------------

def test_embedded_demo_server_uses_random_keys_in_private_files(tmp_path):
    with EmbeddedServer(tmp_path / "root", demo=True, large_file_mb=0) as server:
        published = set(DEMO_USERS.values())
        assert set(server.users) == set(DEMO_USERS)
        assert not published & set(server.users.values())
        for key in published:
            assert status_with(server.url, key) == 401
        assert status_with(server.url, server.users["alice"]) == 200
        assert oct(server.users_file.stat().st_mode & 0o777) == "0o600"
        assert oct(server.users_file.parent.stat().st_mode & 0o777) == "0o700"
        argv = " ".join(psutil.Process(server.pid).cmdline())
        environ = psutil.Process(server.pid).environ()
        deadline = time.monotonic() + 10  # tornado logs a request after answering it
        while "GET /v1/data/.my alice" not in (log := server.log_path.read_text()):
            assert time.monotonic() < deadline, log
            time.sleep(0.05)
        for key in server.users.values():
            assert key not in argv and key not in " ".join(environ.values()) and key not in log


def test_demo_with_a_users_file_drops_the_published_keys(tmp_path, free_port):
    (tmp_path / "users.json").write_text(json.dumps({"demo": "a-private-key"}))
    proc = serve(tmp_path, free_port, "--demo", "--demo-large-file-mb", "0",
                 "--users-file", str(tmp_path / "users.json"))
    try:
        url = f"http://127.0.0.1:{free_port}"
        assert status_with(url, "a-private-key") == 200
        for key in DEMO_USERS.values():
            assert status_with(url, key) == 401
    finally:
        stop(proc)


def test_users_file_changes_apply_without_restart(tmp_path, free_port):
    users = tmp_path / "users.json"
    users.write_text(json.dumps({"users": {"ann": "key-ann"}}))
    proc = serve(tmp_path, free_port, "--users-file", str(users))
    try:
        url = f"http://127.0.0.1:{free_port}"
        assert status_with(url, "key-ann") == 200
        assert status_with(url, "key-bob") == 401
        tmp = users.with_name("users.tmp")
        tmp.write_text(json.dumps({"users": {"bob": "key-bob"}}))
        os.replace(tmp, users)  # what the hub hook does
        assert eventually(lambda: status_with(url, "key-bob") == 200)
        assert status_with(url, "key-ann") == 401, "a key removed from the file is revoked"
        listing = requests.get(url + "/v1/data/", headers={"Authorization": "key-bob"}, timeout=10).json()
        assert "bob" in [entry["name"] for entry in listing["folders"]]
        users.write_text("{ not json")
        time.sleep(1.5)  # past the reload interval: a broken file must keep the previous keys
        assert status_with(url, "key-bob") == 200
    finally:
        output = stop(proc)
    assert "key-bob" not in output and "key-ann" not in output


# ----- Host header (DNS rebinding) ------------------------------------------

@pytest.mark.parametrize("path", ["/healthz", "/v1/data/.my", "/v1/algo/demo/echo", "/no/such/route"])
def test_foreign_host_header_is_refused_before_anything_else(api_server, path):
    response = requests.get(api_server.url + path, timeout=10,
                            headers={"Host": "rebound.example:80", "Authorization": DEMO_USERS["demo"]})
    assert response.status_code == 403
    assert "Host header not allowed" in response.json()["error"]["message"]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "LOCALHOST.", "[::1]"])
def test_loopback_host_headers_are_answered(api_server, host):
    port = api_server.url.rsplit(":", 1)[1]
    for header in (host, f"{host}:{port}"):
        response = requests.get(api_server.url + "/v1/data/.my", timeout=10,
                                headers={"Host": header, "Authorization": DEMO_USERS["demo"]})
        assert response.status_code == 200, header


def test_allowed_host_option_names_a_proxy_host(tmp_path, free_port):
    proc = serve(tmp_path, free_port, "--demo", "--demo-large-file-mb", "0", "--allowed-host", "algofs-api")
    try:
        url = f"http://127.0.0.1:{free_port}/healthz"
        assert requests.get(url, headers={"Host": f"algofs-api:{free_port}"}, timeout=10).status_code == 200
        assert requests.get(url, headers={"Host": "other-api"}, timeout=10).status_code == 403
    finally:
        stop(proc)


# ----- the log ------------------------------------------

def test_a_huge_uri_adds_little_to_the_access_log(api_server):
    before = api_server.log_path.stat().st_size
    marker = "z" * 60_000
    response = requests.get(f"{api_server.url}/v1/data/.my?padding={marker}", timeout=10,
                            headers={"Authorization": DEMO_USERS["demo"]})
    assert response.status_code == 200
    assert eventually(lambda: api_server.log_path.stat().st_size > before)
    time.sleep(0.2)
    with open(api_server.log_path, "rb") as handle:
        handle.seek(before)
        added = handle.read()
    assert len(added) < 2_000 and b"60" in added  # the line says how long the URI was


def test_log_file_is_rotated_at_its_size_limit(tmp_path, free_port):
    log = tmp_path / "serve.log"
    proc = serve(tmp_path, free_port, "--demo", "--demo-large-file-mb", "0",
                 "--log-file", str(log), "--log-max-bytes", "4096")
    try:
        session = requests.Session()
        for index in range(300):
            session.get(f"http://127.0.0.1:{free_port}/v1/data/.my/{'q' * 100}{index}",
                        headers={"Authorization": DEMO_USERS["demo"]}, timeout=10)
    finally:
        output = stop(proc)
    files = sorted(tmp_path.glob("serve.log*"))
    assert [f.name for f in files] == ["serve.log", "serve.log.1", "serve.log.2", "serve.log.3"]
    assert all(f.stat().st_size <= 4096 for f in files)
    assert "/v1/data/.my/" not in output, "with --log-file nothing is logged to stderr"
