"""``algofs serve`` command line: users and keys, never a key in argv or logs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import psutil
import requests

from algofs_jupyter.supervise import ChildProcess


def start_serve(args: list[str], root, port: int, env_extra: dict[str, str]) -> ChildProcess:
    """``algofs serve`` as a child, ready once its ready file exists; its stdout and stderr go to a log."""
    ready = root / "ready.json"
    ready.unlink(missing_ok=True)
    child = ChildProcess("algofs serve", root / "serve-output.log")
    child.log_path.unlink(missing_ok=True)  # this run's output only
    child.spawn([sys.executable, "-m", "algofs_jupyter", "serve", "--root", str(root / "srv"),
                 "--port", str(port), "--ready-file", str(ready), *args], {**os.environ, **env_extra})
    try:
        child.wait_ready(ready.exists, 30)
    except BaseException:
        child.stop()
        raise
    return child


def stop(child: ChildProcess) -> str:
    """SIGTERM; what the server wrote to stdout and stderr."""
    child.stop(term_timeout=15)
    return child.log_path.read_text(errors="replace")


def test_single_user_key_from_environment(tmp_path, free_port):
    proc = start_serve(["--user", "carol"], tmp_path, free_port, {"ALGOFS_SERVE_API_KEY": "sim-carol-secret"})
    try:
        base = f"http://127.0.0.1:{free_port}"
        assert "sim-carol-secret" not in " ".join(psutil.Process(proc.pid).cmdline())
        ok = requests.get(base + "/v1/data/", headers={"Authorization": "Simple sim-carol-secret"})
        assert ok.json()["folders"][0] == {"name": "carol"}
        assert requests.get(base + "/v1/data/", headers={"Authorization": "sim-demo-key"}).status_code == 401
        assert requests.put(base + "/v1/data/.my/c/f", data=b"x",
                            headers={"Authorization": "sim-carol-secret"}).status_code == 404
    finally:
        output = stop(proc)
    assert "sim-carol-secret" not in output
    assert "GET /v1/data/ carol" in output  # access log names the user, never the key


def test_users_file_toml_and_json(tmp_path, free_port):
    (tmp_path / "users.toml").write_text('[users]\ndave = "sim-dave"\nerin = "sim-erin"\n')
    proc = start_serve(["--users-file", str(tmp_path / "users.toml")], tmp_path, free_port, {})
    try:
        base = f"http://127.0.0.1:{free_port}"
        for user in ("dave", "erin"):
            listing = requests.get(base + "/v1/data/", headers={"Authorization": f"sim-{user}"}).json()
            assert listing["folders"][0]["name"] == user
    finally:
        stop(proc)
    (tmp_path / "users.json").write_text(json.dumps({"frank": "sim-frank"}))
    proc = start_serve(["--users-file", str(tmp_path / "users.json")], tmp_path, free_port, {})
    try:
        response = requests.get(f"http://127.0.0.1:{free_port}/v1/data/.my",
                                headers={"Authorization": "sim-frank"})
        assert response.status_code == 200
    finally:
        stop(proc)


def test_refuses_to_start_without_users(tmp_path):
    result = subprocess.run([sys.executable, "-m", "algofs_jupyter", "serve", "--root", str(tmp_path)],
                            capture_output=True, text=True, timeout=30,
                            env={k: v for k, v in os.environ.items() if k != "ALGOFS_SERVE_API_KEY"})
    assert result.returncode != 0 and "no users" in result.stderr
    command = [sys.executable, "-m", "algofs_jupyter", "serve", "--root", str(tmp_path), "--user", "x"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30,
                            env={k: v for k, v in os.environ.items() if k != "ALGOFS_SERVE_API_KEY"})
    assert result.returncode != 0 and "api-key" in result.stderr


def test_embedded_server_keeps_keys_out_of_argv_and_logs(api_server, http):
    http("GET", "/v1/data/.my")
    cmdline = " ".join(psutil.Process(api_server.pid).cmdline())
    assert "--users-file" in cmdline
    assert not any(key in cmdline for key in api_server.users.values())
    assert (api_server.users_file.stat().st_mode & 0o777) == 0o600
    # tornado writes the access line after the response has gone out: give it a moment to land
    deadline = time.monotonic() + 5
    while "GET /v1/data/.my demo" not in (log := api_server.log_path.read_text()) \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "GET /v1/data/.my demo" in log
    assert not any(key in log for key in api_server.users.values())


def test_demo_seeding_is_idempotent(tmp_path):
    from algofs_jupyter.server.demo.seed import seed

    seed(tmp_path, large_file_mb=1)
    cities = tmp_path / "data" / "demo" / "datasets" / "cities.csv"
    cities.write_text("changed by the user\n")
    seed(tmp_path, large_file_mb=1)
    assert cities.read_text() == "changed by the user\n"
    assert len(list((tmp_path / "data" / "demo" / "many_files").iterdir())) == 5000
    assert (tmp_path / "data" / "demo" / "large" / "large.bin").stat().st_size == 1024 * 1024
