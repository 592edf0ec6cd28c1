"""The algorithm box on a root-run server (issue 22): per-caller warm workers, per-owner uids, no network
but this API, leftovers killed with their worker, and a server that cannot isolate refusing to run code.

The service-account deployment (non-root, delegated cgroup, a second real account) is tested in
tests/hub/test_algorithm_isolation.py.
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
import uuid
from pathlib import Path

import psutil
import pytest
import requests

from algofs_jupyter.server.users import DEMO_USERS

from .algo_helpers import ServerWithOptions, publish_source, unique

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="per-owner uids and cgroups: needs a root server")

REMEMBER = """
import os
LAST = [None, None]

def apply(input):
    previous = list(LAST)
    LAST[:] = [input, os.environ.get("ALGORITHMIA_API_KEY")]
    return {"previous": previous, "uid": os.getuid()}
"""

NETWORK = """
import socket

def apply(input):
    try:
        socket.create_connection(("127.0.0.1", int(input)), timeout=2).close()
        return "connected"
    except OSError as exc:
        return type(exc).__name__
"""

DETACH = """
import subprocess, sys

def apply(input):
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", input], start_new_session=True,
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return "left one behind"
"""


def call(server, user: str, path: str, data, **params) -> requests.Response:
    return requests.post(f"{server.url}/v1/algo/{path}", json=data, params=params,
                         headers={"Authorization": DEMO_USERS[user]}, timeout=90)


@pytest.fixture(scope="module")
def boxed(tmp_path_factory):
    root = tmp_path_factory.mktemp("algo-box")
    with ServerWithOptions(root, ["--worker-idle-seconds", "2"], light=True) as server:
        yield server


def test_a_warm_worker_serves_one_caller_only(boxed):
    name = unique("remember")
    publish_source(boxed.url, "anowell", name, REMEMBER)
    first = call(boxed, "alice", f"anowell/{name}", "alice's secret input").json()["result"]
    assert first["previous"] == [None, None]
    other = call(boxed, "demo", f"anowell/{name}", "demo's input").json()["result"]
    assert other["previous"] == [None, None]  # not alice's input, not alice's (revoked) token
    again = call(boxed, "alice", f"anowell/{name}", "more").json()["result"]
    assert again["previous"][0] == "alice's secret input"  # alice's own worker stayed warm
    assert first["uid"] == other["uid"] == again["uid"]  # one owner, one uid, whoever calls


def test_owners_never_share_a_uid(boxed):
    name = unique("whoami")
    uids = set()
    for owner in ("demo", "anowell", "alice"):
        publish_source(boxed.url, owner, name, REMEMBER)
        uids.add(call(boxed, owner, f"{owner}/{name}", "x").json()["result"]["uid"])
    assert len(uids) == 3 and 0 not in uids


def test_no_network_but_this_api_unless_the_algorithm_asks_for_it(boxed):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    try:
        name = unique("net")
        publish_source(boxed.url, "demo", name, NETWORK)
        assert call(boxed, "demo", f"demo/{name}", port).json()["result"] == "ConnectionRefusedError"
        server_port = int(boxed.url.rsplit(":", 1)[1])  # this API is reached through the box's forwarder only
        assert call(boxed, "demo", f"demo/{name}", server_port).json()["result"] == "ConnectionRefusedError"
        headers = {"Authorization": DEMO_USERS["demo"]}
        requests.put(f"{boxed.url}/v1/algorithms/demo/{name}", json={"settings": {"network_access": "full"}},
                      headers=headers, timeout=30).raise_for_status()
        publish_source(boxed.url, "demo", name, NETWORK + "# full\n")
        assert call(boxed, "demo", f"demo/{name}", port).json()["result"] == "connected"
    finally:
        listener.close()


def test_echo_through_the_api_forwarder(boxed):
    name = unique("client")
    source = ("import Algorithmia\n\ndef apply(input):\n"
              "    return Algorithmia.client().algo('demo/echo').pipe(input).result\n")
    publish_source(boxed.url, "demo", name, source)
    assert call(boxed, "demo", f"demo/{name}", "through the box").json()["result"] == "through the box"


def marked(marker: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if marker in (proc.info["cmdline"] or []):
            found.append(proc)
    return found


@pytest.fixture(scope="module")
def unboxed(tmp_path_factory):
    """No sandbox (the operator allowed it): the owner's cgroup still takes everything a worker left."""
    args = ["--sandbox", "none", "--allow-unisolated-algorithms", "--worker-idle-seconds", "1"]
    with ServerWithOptions(tmp_path_factory.mktemp("algo-unboxed"), args, light=True) as server:
        yield server


def test_a_detached_process_does_not_outlive_its_worker(unboxed):
    name = unique("detach")
    publish_source(unboxed.url, "demo", name, DETACH)
    marker = "algofs-escape-" + uuid.uuid4().hex
    assert call(unboxed, "demo", f"demo/{name}", marker).json()["result"] == "left one behind"
    assert marked(marker)  # it is running, in its own session, outside the worker's process group
    deadline = time.monotonic() + 20  # the idle worker is reaped after 1 s, its cgroup emptied
    while marked(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    leftovers = marked(marker)
    for proc in leftovers:
        proc.kill()
    assert not leftovers


@pytest.mark.parametrize("flags", [["--sandbox", "none"], ["--owner-caps", "none"]])
def test_a_multi_user_server_that_cannot_isolate_refuses_to_run_code(tmp_path, flags):
    with ServerWithOptions(tmp_path, flags, light=True) as server:
        health = requests.get(server.url + "/healthz", timeout=10).json()["details"]["algorithms"]
        assert health["algorithms"] == "refused" and "--allow-unisolated-algorithms" in health["refusal"]
        reply = call(server, "anowell", "anowell/Pinky", "narf")
        assert reply.status_code == 503, reply.text
        assert "cannot keep their algorithms apart" in reply.json()["error"]["message"]
        assert "cannot keep their algorithms apart" in server.log_path.read_text()


def test_an_owners_caps_from_the_operators_file_are_the_kernels(tmp_path):
    caps_file = tmp_path / "owner-caps.json"
    caps_file.write_text('{"users": {"anowell": {"processes": 7, "memory_bytes": 268435456}}}')
    with ServerWithOptions(tmp_path / "root", ["--owner-caps-file", str(caps_file)], light=True) as server:
        assert call(server, "anowell", "anowell/Pinky", "narf").status_code == 200
        assert call(server, "demo", "demo/echo", "x").status_code == 200
        name = f"algofs-serve-{server.pid}"
        tree = {c: next(Path("/sys/fs/cgroup", c).rglob(name)) for c in ("pids", "memory")}
        assert (tree["pids"] / "anowell" / "pids.max").read_text().strip() == "7"
        assert int((tree["memory"] / "anowell" / "memory.limit_in_bytes").read_text()) == 256 << 20
        assert (tree["pids"] / "demo" / "pids.max").read_text().strip() == "64"  # the default


def test_what_a_killed_server_left_is_swept_by_the_next_one(tmp_path):
    """SIGKILL gives a server no chance to remove its cgroups and staged code; the next server does."""
    first = ServerWithOptions(tmp_path / "first", [], light=True).start()
    try:
        assert call(first, "anowell", "anowell/Pinky", "narf").status_code == 200
        name = f"algofs-serve-{first.pid}"
        cgroups = [p for c in ("pids", "memory", "cpu") for p in Path("/sys/fs/cgroup", c).rglob(name)]
        runtimes = [p for p in Path(tempfile.gettempdir()).glob(f"{name}-*")]
        assert cgroups and runtimes
        os.kill(first.pid, 9)
    finally:
        first.stop()  # reaps it: a zombie still has its /proc entry
    with ServerWithOptions(tmp_path / "second", [], light=True):
        assert not [p for p in cgroups if p.exists()] and not [p for p in runtimes if p.exists()]
