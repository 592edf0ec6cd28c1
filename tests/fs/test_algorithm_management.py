"""The management calls of ``fs/algorithm_api`` (look up, create, upload source, publish) and ``publish()``
on them, against a real ``algofs serve``; transient faults come from a real proxy (tests/fault_proxy.py)."""

from __future__ import annotations

import time
import uuid
from collections import Counter

import pytest
from fault_proxy import FaultProxy

from algofs_jupyter.fs.algorithm_api import (
    BuildFailed,
    algorithm_info,
    algorithm_versions,
    create_algorithm,
    publish_version,
    upload_source,
)
from algofs_jupyter.fs.api_session import ApiSession
from algofs_jupyter.publish import PublishError, publish
from algofs_jupyter.server.embedded_server import EmbeddedServer

SOURCE = "def apply(input):\n    return input * 2\n"


class FailFirst(FaultProxy):
    """Answers 503 to the first request for each of ``paths`` before it reaches the server, and counts
    every request the client sent per path (``sent``), the failed ones included."""

    def __init__(self, upstream: str, paths: set[str]):
        super().__init__(upstream)
        self.failing = set(paths)
        self.sent: Counter[str] = Counter()

    def _should_fail(self, path: str) -> bool:
        with self.lock:
            self.sent[path] += 1
            if path in self.failing:
                self.failing.discard(path)
                self.injected += 1
                return True
            return False


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def test_create_upload_publish_and_a_failed_build(api_server: EmbeddedServer) -> None:
    name = unique("mgmt")
    session = ApiSession(api_server.url, api_server.api_key)
    try:
        with pytest.raises(FileNotFoundError, match=f"algo://demo/{name}"):
            algorithm_info(session, "demo", name)
        created = create_algorithm(session, "demo", name)
        assert created["name"] == name and created["settings"]["algorithm_callability"] == "public"
        with pytest.raises(FileExistsError, match="already exists"):
            create_algorithm(session, "demo", name)
        uploaded = upload_source(session, "demo", name, {"algorithm.py": SOURCE})
        assert uploaded["files"] == ["algorithm.py"]
        # the whole source in one PUT: sending it again leaves the same commit
        assert upload_source(session, "demo", name, {"algorithm.py": SOURCE})["commit_sha"] == \
            uploaded["commit_sha"]
        published = publish_version(session, "demo", name, "minor")
        assert published.semantic_version == "0.1.0" and published.git_hash == uploaded["commit_sha"]
        assert algorithm_versions(session, "demo", name) == ["0.1.0"]
        assert algorithm_info(session, "demo", name)["name"] == name

        upload_source(session, "demo", name, {"algorithm.py": "def apply(input:\n    return 1\n"})
        with pytest.raises(BuildFailed) as failed:
            publish_version(session, "demo", name, "major")
        assert "SyntaxError" in failed.value.logs and failed.value.target == f"demo/{name}"
        assert algorithm_versions(session, "demo", name) == ["0.1.0"]  # nothing was published
        with pytest.raises(OSError, match="version_type"):
            publish_version(session, "demo", name, "huge")
    finally:
        session.close()


def test_refusals_are_the_sessions_errors(api_server: EmbeddedServer) -> None:
    session = ApiSession(api_server.url, api_server.api_key)
    try:
        with pytest.raises(PermissionError, match="not authorized"):
            create_algorithm(session, "anowell", unique("theirs"))
        with pytest.raises(FileNotFoundError):
            upload_source(session, "demo", unique("missing"), {"algorithm.py": SOURCE})
        name = unique("bad")
        create_algorithm(session, "demo", name, private=True)
        assert algorithm_info(session, "demo", name)["settings"]["algorithm_callability"] == "private"
        with pytest.raises(OSError, match="algorithm.py") as refused:
            upload_source(session, "demo", name, {"helper.py": "x = 1\n"})
        assert api_server.api_key not in str(refused.value) and api_server.api_key not in repr(session)
    finally:
        session.close()


def test_transient_503s_during_publish_are_retried(api_server: EmbeddedServer) -> None:
    """The old publish path (its own requests.Session) failed on the first 503 of the GET."""
    name = unique("flaky")
    base = f"/v1/algorithms/demo/{name}"
    with FailFirst(api_server.url, {base, f"{base}/source"}) as proxy:
        result = publish(f"demo/{name}", SOURCE, api_address=proxy.url, api_key=api_server.api_key)
        assert result.ok and result.version == "0.1.0", result.logs
        assert proxy.injected == 2
        assert proxy.sent[base] == 2 and proxy.sent[f"{base}/source"] == 2  # each retried once
        assert proxy.sent["/v1/algorithms/demo"] == 1 and proxy.sent[f"{base}/versions"] == 1


def test_a_publish_post_is_never_sent_twice(api_server: EmbeddedServer) -> None:
    """A 503 on POST .../versions may come after the server acted: it is reported, not replayed."""
    name = unique("once")
    versions = f"/v1/algorithms/demo/{name}/versions"
    with FailFirst(api_server.url, {versions}) as proxy:
        with pytest.raises(PublishError, match=f"cannot publish demo/{name}: injected") as raised:
            publish(f"demo/{name}", SOURCE, api_address=proxy.url, api_key=api_server.api_key)
        assert proxy.sent[versions] == 1
    assert api_server.api_key not in str(raised.value)
    session = ApiSession(api_server.url, api_server.api_key)
    try:
        assert algorithm_versions(session, "demo", name) == []
    finally:
        session.close()


def test_an_unreachable_api_fails_in_bounded_time(free_port: int) -> None:
    started = time.monotonic()
    with pytest.raises(PublishError, match=f"cannot reach the API at http://127.0.0.1:{free_port}"):
        publish("demo/nowhere", SOURCE, api_address=f"http://127.0.0.1:{free_port}", api_key="secret-key",
                timeout=1.0)
    assert time.monotonic() - started < 5
