"""Every ``/algofs/*`` route of docs/rest-api.md against a real Jupyter server and the demo API server."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

ROUTES = [
    ("GET", "status"),
    ("POST", "mount"),
    ("POST", "unmount"),
    ("GET", "cache"),
    ("DELETE", "cache"),
    ("GET", "algorithms"),
    ("GET", "organizations"),
    ("POST", "pipe"),
    ("POST", "publish"),
]
STATUS_KEYS = {
    "mode",
    "mounted",
    "mountpoint",
    "mountpoint_abs",
    "reason",
    "api_address",
    "embedded_server",
    "username",
    "cache",
}
CACHE_KEYS = {
    "size_bytes",
    "limit_bytes",
    "hits",
    "misses",
    "hit_ratio",
    "bytes_fetched",
    "entries",
    "uploads_in_flight",
    "uploads_failed",
    "small_files",
    "server_files",
}


@pytest.mark.parametrize(("method", "route"), ROUTES)
async def test_route_refuses_unauthenticated_calls(jp_fetch, method, route):
    kwargs = {"body": json.dumps({"algorithm": "demo/echo", "input": "x"})} if method == "POST" else {}
    response = await jp_fetch(
        "algofs", route, method=method, headers={"Authorization": ""}, raise_error=False, **kwargs
    )
    assert response.code == 403


async def test_every_documented_route_is_served(algofs_app):
    served = {pattern for pattern, *_rest in algofs_app.handlers}
    assert served == {f"/algofs/{route}" for _method, route in ROUTES}
    doc = (Path(__file__).parents[3] / "docs" / "rest-api.md").read_text()
    for method, route in ROUTES:
        assert f"{method} /algofs/{route}" in doc


async def test_status_before_mounting(call, api_server, jp_root_dir):
    code, status = await call("GET", "status")
    assert code == 200
    assert set(status) == STATUS_KEYS
    assert status["mounted"] is False
    assert status["mode"] in ("unmounted", "fallback")
    assert status["mountpoint"] == "algofs"
    assert Path(status["mountpoint_abs"]) == Path(jp_root_dir).resolve() / "algofs"
    assert status["api_address"] == api_server.url.rstrip("/")
    assert status["embedded_server"] is False
    assert status["username"] == "demo"
    assert api_server.api_key not in json.dumps(status)


async def test_cache_stats_and_clear_while_unmounted(call):
    code, stats = await call("GET", "cache")
    assert code == 200 and set(stats) == CACHE_KEYS
    assert stats["entries"] == [] and stats["limit_bytes"] == 64 * 1024 * 1024
    code, cleared = await call("DELETE", "cache")
    assert code == 200 and cleared["size_bytes"] == 0


async def test_algorithm_list(call):
    code, body = await call("GET", "algorithms")
    assert code == 200
    by_name = {f"{algo['user']}/{algo['name']}": algo for algo in body["algorithms"]}
    assert {"demo/echo", "demo/fail", "anowell/Pinky"} <= set(by_name)
    echo = by_name["demo/echo"]
    assert echo["versions"][-1] == "latest"
    assert {"0.9.0", "1.0.0"} <= set(echo["versions"])


async def test_pipe_text_json_and_binary(call):
    code, body = await call(
        "POST", "pipe", {"algorithm": "demo/echo", "input": "hello", "content_type": "text"}
    )
    assert code == 200
    assert body["result"] == "hello" and body["content_type"] == "text" and body["duration"] >= 0

    code, body = await call(
        "POST", "pipe", {"algorithm": "demo/echo/1.0.0", "input": '{"a": [1, 2]}', "content_type": "json"}
    )
    assert code == 200 and body["result"] == {"a": [1, 2]} and body["content_type"] == "json"

    payload = bytes(range(256))
    code, body = await call(
        "POST",
        "pipe",
        {
            "algorithm": "demo/echo/latest",
            "content_type": "binary",
            "input": base64.b64encode(payload).decode(),
        },
    )
    assert code == 200 and body["content_type"] == "binary"
    assert base64.b64decode(body["result"]) == payload


async def test_pipe_algorithm_error_is_422(call):
    code, body = await call(
        "POST", "pipe", {"algorithm": "demo/fail", "input": "boom", "content_type": "text"}
    )
    assert code == 422
    assert "always fails" in body["message"]
    assert body["error_type"]


@pytest.mark.parametrize(
    "payload",
    [
        {"input": "x"},
        {"algorithm": "not an algorithm", "input": "x"},
        {"algorithm": "demo/echo", "input": "{oops", "content_type": "json"},
        {"algorithm": "demo/echo", "input": "!!!", "content_type": "binary"},
        {"algorithm": "demo/echo", "input": "x", "content_type": "yaml"},
        {"algorithm": "demo/echo", "input": "x", "timeout": "soon"},
    ],
)
async def test_pipe_bad_requests_are_400(call, payload):
    code, body = await call("POST", "pipe", payload)
    assert code == 400
    assert body["message"]


@pytest.mark.parametrize("path", ["../outside", "/etc/algofs", ""])
async def test_mount_refuses_paths_outside_the_root(call, path):
    code, body = await call("POST", "mount", {"path": path})
    assert code == 400 and body["message"]


async def test_mount_reports_fallback_without_fuse(call, monkeypatch):
    monkeypatch.setenv("ALGOFS_DISABLE_FUSE", "1")
    code, status = await call("POST", "mount")
    assert code == 200
    assert status["mode"] == "fallback" and status["mounted"] is False
    assert "ALGOFS_DISABLE_FUSE" in status["reason"]


@pytest.mark.fuse
async def test_mount_read_cache_unmount(call, requires_fuse, no_stale_mounts, jp_root_dir, api_server):
    code, status = await call("POST", "mount", {"path": "work/algofs"})
    assert code == 200, status
    assert status["mode"] == "fuse" and status["mounted"] is True, status
    assert status["mountpoint"] == "work/algofs"
    mountpoint = Path(status["mountpoint_abs"])
    assert mountpoint == Path(jp_root_dir).resolve() / "work" / "algofs"
    assert "datasets" in os.listdir(mountpoint / "data" / "demo")
    text = (mountpoint / "data" / "demo" / "datasets" / "cities.csv").read_text()
    assert text.splitlines()[0]

    code, stats = await call("GET", "cache")
    assert code == 200 and set(stats) == CACHE_KEYS
    assert any(
        entry["path"].endswith("cities.csv") and entry["cached_bytes"] > 0 for entry in stats["entries"]
    )
    assert stats["bytes_fetched"] >= len(text.encode())

    code, cleared = await call("DELETE", "cache")
    assert code == 200
    assert not any(
        entry["path"].endswith("cities.csv") and entry["cached_bytes"] for entry in cleared["entries"]
    )

    code, status = await call("GET", "status")
    assert status["mounted"] is True and status["cache"] is not None
    assert api_server.api_key not in json.dumps(status)

    code, status = await call("POST", "unmount")
    assert code == 200
    assert status["mounted"] is False and status["mode"] == "unmounted"
    assert not os.path.ismount(mountpoint)


async def test_publish_shows_a_failed_builds_log(call):
    """The panel's publish (issue 27, item 3): a new version, then a failed build answered with its log."""
    name = "panel_" + os.urandom(4).hex()
    code, body = await call("POST", "publish", {"algorithm": f"demo/{name}",
                                                "source": "def apply(input):\n    return input * 3\n"})
    assert code == 200 and body["ok"] is True and body["version"] == "0.1.0", body
    code, body = await call("POST", "publish", {"algorithm": f"demo/{name}", "version": "major",
                                                "source": "def apply(input:\n    return 1\n"})
    assert code == 200 and body["ok"] is False and body["version"] is None
    assert "SyntaxError" in body["logs"] and "line 1" in body["logs"]
    assert f"(build {body['build_id']})" in body["message"]  # the log stays at .../builds/<id>/logs
    assert "Build failed" in body["message"] and "SyntaxError" in body["message"]


@pytest.mark.parametrize("payload", [{"source": "x"}, {"algorithm": "demo/x"},
                                     {"algorithm": "demo/x", "source": "x", "version": "huge"},
                                     {"algorithm": "not a name", "source": "x"},
                                     {"algorithm": "anowell/not_mine", "source": "def apply(i): return i"}])
async def test_publish_bad_requests_are_400(call, payload):
    code, body = await call("POST", "publish", payload)
    assert code == 400 and body["message"]
