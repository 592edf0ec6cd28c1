"""Warm workers, call caps, sandboxing and error redaction, against real ``algofs serve`` processes.

Each test here fails on the per-call-process executor: there the second call saw a fresh process, 16
concurrent calls all ran, the algorithm read the server's key, and non-owners got stack traces.
"""

from __future__ import annotations

import os
import sys
import time

import Algorithmia
import pytest
import requests
from Algorithmia.errors import AlgorithmException

from algofs_jupyter.server.users import DEMO_USERS

from .algo_helpers import ServerWithOptions, publish_source, unique

STATEFUL = """
import uuid
TOKEN = uuid.uuid4().hex
CALLS = [0]

def apply(input):
    CALLS[0] += 1
    print("call", CALLS[0])
    if input == "sleep":
        import time
        time.sleep(30)
    return {"token": TOKEN, "calls": CALLS[0], "version": VERSION}
"""


def stateful(version: int) -> str:
    return STATEFUL + f"\nVERSION = {version}\n"


@pytest.fixture(scope="module")
def reaping_server(tmp_path_factory):
    """A demo server whose idle workers are reaped after 1 s."""
    server = ServerWithOptions(tmp_path_factory.mktemp("algo-reap"), ["--worker-idle-seconds", "1"],
                               light=True)
    with server:
        yield server


def place_on_disk(root, user: str, name: str, source: str) -> None:
    """An algorithm put on the server's disk by hand (works without the management API)."""
    version = root / "algorithms" / user / name / "1.0.0"
    version.mkdir(parents=True)
    (version / "algorithm.py").write_text(source)


def demo_client(server, user="demo"):
    return Algorithmia.client(api_key=DEMO_USERS[user], api_address=server.url)


def test_warm_worker_is_reused_killed_on_timeout_and_replaced_on_new_version(reaping_server):
    name = unique("w")
    publish_source(reaping_server.url, "demo", name, stateful(1))
    algo = demo_client(reaping_server).algo(f"demo/{name}")
    algo.set_options(timeout=20, stdout=True)
    first = algo.pipe("a")
    second = algo.pipe("b")
    assert second.result["token"] == first.result["token"]  # same process, code loaded once
    assert second.result["calls"] == first.result["calls"] + 1
    assert second.metadata.stdout == f"call {second.result['calls']}\n"  # stdout per call, not accumulated

    algo.set_options(timeout=1)
    with pytest.raises(AlgorithmException, match="timed out"):
        algo.pipe("sleep")
    algo.set_options(timeout=20)
    after = algo.pipe("c")
    assert after.result["token"] != first.result["token"] and after.result["calls"] == 1  # a fresh worker

    publish_source(reaping_server.url, "demo", name, stateful(2))
    upgraded = algo.pipe("d")
    assert upgraded.result["version"] == 2 and upgraded.result["token"] != after.result["token"]
    pinned = demo_client(reaping_server).algo(f"demo/{name}/0.1.0").pipe("e")
    assert pinned.result["version"] == 1
    assert pinned.result["token"] != after.result["token"]  # the old version's worker was retired


def test_workers_run_at_a_lower_cpu_priority_than_the_server(reaping_server):
    """Busy algorithms must not starve the API server of CPU (issue 15's /healthz over 100 ms)."""
    name = unique("n")
    source = "import os\n\ndef apply(input):\n    return os.nice(0)\n"
    publish_source(reaping_server.url, "demo", name, source)
    worker = demo_client(reaping_server).algo(f"demo/{name}").pipe("x").result
    server = os.nice(0)  # the server inherits the test's priority
    assert worker == min(19, server + 10) and worker > server


def test_idle_workers_are_reaped(reaping_server):
    name = unique("r")
    publish_source(reaping_server.url, "demo", name, stateful(1))
    algo = demo_client(reaping_server).algo(f"demo/{name}")
    token = algo.pipe("a").result["token"]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # reaped after 1 s idle; the reaper runs every 0.5 s
        time.sleep(1.5)
        if algo.pipe("b").result["token"] != token:
            break
        token = algo.pipe("b").result["token"]
    else:
        pytest.fail("the idle worker was never reaped")


def test_a_crashing_worker_is_replaced(reaping_server):
    name = unique("c")
    publish_source(reaping_server.url, "demo", name,
                   "import os\n\ndef apply(input):\n    if input == 'die':\n        os._exit(3)\n"
                   "    return 'ok'\n")
    algo = demo_client(reaping_server).algo(f"demo/{name}")
    with pytest.raises(AlgorithmException, match="exited with status 3"):
        algo.pipe("die")
    assert algo.pipe("x").result == "ok"


@pytest.fixture(scope="module")
def capped_server(tmp_path_factory):
    server = ServerWithOptions(tmp_path_factory.mktemp("algo-caps"),
                               ["--max-calls-per-user", "2", "--max-calls", "3"], light=True)
    with server:
        yield server


def call(server, user, path, body, **params):
    return requests.post(f"{server.url}/v1/algo/{path}", params=params, data=body, timeout=30,
                         headers={"Authorization": DEMO_USERS[user], "Content-Type": "text/plain"})


def test_concurrent_calls_are_capped_per_user_and_overall(capped_server):
    for _ in range(2):
        assert call(capped_server, "demo", "demo/sleep", "3", output="void").status_code == 200
    refused = call(capped_server, "demo", "demo/sleep", "3", output="void")
    assert refused.status_code == 429
    assert refused.json()["error"]["error_type"] == "TooManyRequests"
    assert "demo" in refused.json()["error"]["message"] and refused.headers["Retry-After"]
    # alice has a cap of her own
    assert call(capped_server, "alice", "demo/sleep", "3", output="void").status_code == 200
    overall = call(capped_server, "anowell", "demo/echo", "hi")
    assert overall.status_code == 429 and "this server" in overall.json()["error"]["message"]
    deadline = time.monotonic() + 30
    while call(capped_server, "demo", "demo/echo", "back").status_code == 429:  # slots free once calls end
        assert time.monotonic() < deadline
        time.sleep(0.5)


SNOOP = r"""
import glob, os, resource

def readable(path):
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8", "replace")
    except OSError as exc:
        return "ERR " + type(exc).__name__

def apply(input):
    environs = {p: readable(p) for p in glob.glob("/proc/[0-9]*/environ")}
    environs["ppid"] = readable(f"/proc/{os.getppid()}/environ")
    return {
        "uid": os.getuid(),
        "environ": environs,
        "users_file": readable(input["users_file"]),
        "other_data": readable(input["other_data"]),
        "limits": {name: resource.getrlimit(getattr(resource, name))[1]
                   for name in ("RLIMIT_AS", "RLIMIT_CPU", "RLIMIT_NPROC", "RLIMIT_FSIZE")},
    }
"""

HOG = r"""
import os

def apply(input):
    if input == "memory":
        try:
            block = bytearray(2 << 30)
            return "allocated %d" % len(block)
        except MemoryError:
            return "MemoryError"
    if input == "disk":
        try:
            with open("/tmp/big", "wb") as handle:
                for _ in range(400):
                    handle.write(b"x" * (1 << 20))
            return "wrote 400 MiB"
        except OSError as exc:
            return type(exc).__name__ + " " + str(exc.errno)
"""


class KeyInEnvironmentServer(ServerWithOptions):
    """``algofs serve --user keyholder`` with the key in ALGOFS_SERVE_API_KEY (how it is run by hand).

    The key comes from a 0600 file through a small exec wrapper, so it is in no argv.
    """

    def command(self) -> list[str]:
        key_file = self.root / "meta" / "serve-key"
        key_file.parent.mkdir(parents=True, exist_ok=True)
        key_file.touch(mode=0o600)
        key_file.write_text(SERVER_KEY)
        wrapper = ("import os, sys; os.environ['ALGOFS_SERVE_API_KEY'] = open(sys.argv[1]).read(); "
                   "os.execv(sys.executable, [sys.executable, *sys.argv[2:]])")
        return [sys.executable, "-c", wrapper, str(key_file), *super().command()[1:], "--user", "keyholder"]


SERVER_KEY = "sim-" + "s3cret" * 4


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("algo-keys")
    with KeyInEnvironmentServer(root, [], light=True) as server:
        yield server


def test_algorithms_cannot_read_keys_users_file_or_other_users_data(keyed_server):
    secret_data = keyed_server.root / "data" / "alice" / "secrets"
    secret_data.mkdir(parents=True, exist_ok=True)
    (secret_data / "diary.txt").write_text("alice's private diary")
    name = unique("snoop")
    place_on_disk(keyed_server.root, "demo", name, SNOOP)
    seen = demo_client(keyed_server).algo(f"demo/{name}").pipe(
        {"users_file": str(keyed_server.users_file), "other_data": str(secret_data / "diary.txt")}).result
    everything = repr(seen)
    for secret in ("s3cret", "sim-alice-key", "sim-demo-key"):
        assert secret not in everything
    assert "diary" not in seen["other_data"]
    if os.geteuid() == 0:
        assert seen["uid"] != 0
    limits = seen["limits"]
    assert 0 < limits["RLIMIT_AS"] <= 4 << 30 and 0 < limits["RLIMIT_CPU"] <= 24 * 3600
    assert 0 < limits["RLIMIT_NPROC"] <= 1024 and 0 < limits["RLIMIT_FSIZE"] <= 1 << 30


def test_memory_and_file_size_limits(keyed_server):
    name = unique("hog")
    place_on_disk(keyed_server.root, "demo", name, HOG)
    algo = demo_client(keyed_server).algo(f"demo/{name}")
    algo.set_options(timeout=60)
    assert algo.pipe("memory").result == "MemoryError"
    assert algo.pipe("disk").result.startswith("OSError 27")  # EFBIG: RLIMIT_FSIZE


def test_non_owners_get_no_stack_trace_or_paths(client, alice, http):
    with pytest.raises(AlgorithmException) as owner:
        client.algo("demo/fail").pipe("boom")
    assert "ValueError" in owner.value.stack_trace
    with pytest.raises(AlgorithmException) as other:
        alice.algo("demo/fail").pipe("boom")
    assert "always fails" in other.value.message and not other.value.stack_trace
    body = http("POST", "/v1/algo/demo/fail", user="alice", data=b"x",
                headers={"Content-Type": "text/plain"}).json()
    assert body["error"]["stacktrace"] == "" and body["error"]["stack_trace"] == ""


def test_absolute_paths_are_hidden_from_non_owners(http):
    name = unique("path")
    url = http("GET", "/healthz", user=None).url.rsplit("/healthz", 1)[0]
    publish_source(url, "demo", name, "def apply(input):\n    open('/srv/secret/place/file.txt')\n")
    mine = http("POST", f"/v1/algo/demo/{name}", data=b"x", headers={"Content-Type": "text/plain"}).json()
    assert "/srv/secret/place/file.txt" in mine["error"]["message"] and mine["error"]["stacktrace"]
    theirs = http("POST", f"/v1/algo/demo/{name}", user="alice", data=b"x",
                  headers={"Content-Type": "text/plain"}).json()
    assert "file.txt" in theirs["error"]["message"] and "/srv" not in theirs["error"]["message"]


@pytest.mark.parametrize("depth", [200_000])
def test_deeply_nested_json_input_is_400(http, depth):
    response = http("POST", "/v1/algo/demo/echo", data=b"[" * depth + b"]" * depth,
                    headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and "nested" in response.json()["error"]["message"]


def runner_processes(server) -> dict[str, int]:
    """Live workers (direct children of the server: bwrap, or the runner itself without a sandbox),
    counted per staged code directory, i.e. per algorithm version."""
    import psutil

    counts: dict[str, int] = {}
    for proc in psutil.Process(server.pid).children():
        try:
            argv = proc.cmdline()
        except psutil.Error:
            continue
        if not argv:
            continue
        if argv[0].endswith("bwrap"):
            code = argv[argv.index("/run/algofs") - 1] if "/run/algofs" in argv else None
        else:
            code = argv[-1] if any(a.endswith("algorithm_runner.py") for a in argv) else None
        if code:
            counts[code] = counts.get(code, 0) + 1
    return counts


@pytest.fixture(scope="module")
def bounded_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("algo-bounds")
    server = ServerWithOptions(root, ["--max-calls-per-user", "20", "--max-calls", "40"], light=True)
    sleep2 = root / "algorithms" / "demo" / "sleep2" / "1.0.0"
    sleep2.mkdir(parents=True)
    source = (root / "algorithms/demo/sleep/1.0.0/algorithm.py").read_text()
    (sleep2 / "algorithm.py").write_text(source + "\n# sleep2\n")  # other bytes: its own staged copy
    with server:
        yield server


def test_pool_is_bounded_per_algorithm_and_per_owner(bounded_server):
    for path in ["demo/sleep"] * 6 + ["demo/sleep2"] * 6:
        assert call(bounded_server, "demo", path, "3", output="void").status_code == 200
    seen_total, seen_versions = 0, 0
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        counts = runner_processes(bounded_server)
        seen_total = max(seen_total, sum(counts.values()))
        seen_versions = max([seen_versions, *counts.values()])
        time.sleep(0.1)
    assert 0 < seen_versions <= 4  # per algorithm version
    assert seen_total <= 6  # per owner (and under the overall 8)
    # anowell's calls are not starved by demo's full share: 2 slots of the overall 8 are left
    assert call(bounded_server, "anowell", "anowell/Pinky", "narf?").status_code == 200


def test_a_venv_under_tmp_stays_importable_in_the_sandbox(tmp_path, monkeypatch):
    """bwrap gives workers a private /tmp; a checkout or venv cloned under /tmp (as CI may) would vanish
    with it and every algorithm importing the client failed with "No module named 'Algorithmia'"."""
    from algofs_jupyter.server import algo_sandbox
    from algofs_jupyter.server.algo_sandbox import SandboxPolicy, launch_spec

    site = tmp_path / "venv" / "lib" / "site-packages"
    site.mkdir(parents=True)
    # the interpreter a root server gives a leased uid: the system Python plus our site-packages
    monkeypatch.setattr(algo_sandbox, "python_for", lambda as_uid: (algo_sandbox.SYSTEM_PYTHON, [str(site)]))
    staged = tmp_path / "staged"
    (staged / "algo").mkdir(parents=True)
    argv = launch_spec(SandboxPolicy(mode="bwrap"), staged, 61000, None, "http://127.0.0.1:1",
                       sandboxed=True).argv
    assert str(tmp_path).startswith("/tmp/")
    tmpfs = max(i for i, arg in enumerate(argv) if arg == "--tmpfs" and argv[i + 1] == "/tmp")
    binds = [i for i in range(len(argv) - 2) if argv[i] == "--ro-bind" and argv[i + 1] == str(site)]
    assert binds and binds[0] > tmpfs and argv[binds[0] + 2] == str(site), argv
