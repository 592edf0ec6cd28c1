"""Algorithms on a shared server run as ``deploy/jupyterhub_config.py`` runs it: ``algofs serve`` as a system
account (not root), its users file rewritten by the hub hook, a cgroup delegated to the account, and a
second real account that tries to get in through predictable paths (issue 22).

Each test failed on the code before the allow-list box: a warm worker read the users file once the hook had
replaced it (finding 1); a squatted ``/tmp/algofs-code-<uid>`` made every call answer 500 (finding 2); one
owner's unreaped children took the uid's whole ``RLIMIT_NPROC`` and other owners' workers and builds
failed to start (finding 3); one owner's processes and ``/tmp`` took memory without an owner-wide cap
(finding 5); a public algorithm read, re-shared, deleted and planted its caller's private data (finding 4).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import stat
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import Algorithmia
import pytest
import requests
from hub_deployment import Account, local_accounts, remove_cgroup, run_as, user_venv

from algofs_jupyter.hub_keys import write_users
from algofs_jupyter.server.algo_cgroups import CGROUP_ROOT, delegate_v1
from algofs_jupyter.supervise import ChildProcess

SERVICE = "algofsisosvc"
INTRUDER = "algofsisoeve"
OWNER_TASKS = 40
OWNER_MEMORY = 300 << 20

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="creates local accounts and cgroups: needs root"),
    pytest.mark.skipif(not shutil.which("useradd"), reason="needs useradd"),
    pytest.mark.skipif(not shutil.which("bwrap"), reason="needs bubblewrap"),
    pytest.mark.skipif(not (CGROUP_ROOT / "pids" / "cgroup.procs").exists(), reason="needs cgroup v1 (this "
                       "machine kind); cgroup v2 hosts delegate with systemd, docs/deploy.md"),
    pytest.mark.timeout(600),
]

PEEK = """
import os, uuid
WORKER = uuid.uuid4().hex

def readable(path):
    try:
        with open(path, "rb") as handle:
            return handle.read(200).decode("utf-8", "replace")
    except OSError as exc:
        return None

def apply(input):
    import glob
    environs = {p: readable(p) for p in glob.glob("/proc/[0-9]*/environ")}
    return {"worker": WORKER, "seen": {p: readable(p) for p in input["paths"]},
            "root": sorted(os.listdir("/")), "environs": environs}
"""

ECHO = "def apply(input):\n    return input\n"

FORK_BOMB = """
import os, time

def apply(input):
    made = 0
    for _ in range(200):
        try:
            pid = os.fork()
        except OSError:
            break
        if pid == 0:
            time.sleep(120)
            os._exit(0)
        made += 1
    time.sleep(float(input))  # keep the children (and this worker) alive while others call
    return made
"""

MEMORY_HOG = """
import os

def apply(input):
    got = 0
    children = []
    for n in range(4):  # each: 15 MiB in /tmp (tmpfs, charged to the owner too), then up to 200 MiB anonymous
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            done = 0
            try:
                with open(f"/tmp/fill{n}", "wb") as handle:
                    for _ in range(15):
                        handle.write(b"x" * (1 << 20))
                        done += 1
            except OSError:
                pass
            block = []
            try:
                for _ in range(200):
                    block.append(bytearray(b"y" * (1 << 20)))
                    done += 1
            except MemoryError:
                pass
            os.write(write, str(done).encode())
            os._exit(0)
        os.close(write)
        children.append(read)
    for fd in children:
        got += int(os.read(fd, 32) or b"0")
    return got
"""


@dataclass
class SharedServer:
    url: str
    root: Path
    users_file: Path
    log_file: Path
    keys: dict[str, str]
    service: Account
    intruder: Account
    cgroup: str

    def client(self, user: str) -> Algorithmia.client.Client:
        return Algorithmia.client(api_key=self.keys[user], api_address=self.url)

    def publish(self, user: str, name: str, source: str) -> None:
        algo = self.client(user).algo(f"{user}/{name}")
        if not algo.exists():
            algo.create(details={"label": name}, settings={"algorithm_callability": "public"})
        response = requests.put(f"{self.url}/v1/algorithms/{user}/{name}/source", data=source.encode(),
                                headers={"Authorization": self.keys[user]}, timeout=30)
        response.raise_for_status()
        algo.publish(version_info={"version_type": "minor"})

    def call(self, user: str, name: str, data: object, timeout: float = 60) -> requests.Response:
        return requests.post(f"{self.url}/v1/algo/{name}", json=data, params={"timeout": str(timeout)},
                             headers={"Authorization": self.keys[user]}, timeout=timeout + 30)


def chown_tree(path: Path, account: Account) -> None:
    for item in [path, *path.rglob("*")]:
        os.chown(item, account.uid, account.gid)


def planted_names(service: Account) -> list[str]:
    """The names an earlier version (or a guess) would use in /tmp for the service account."""
    return [f"algofs-code-{service.uid}", f"algofs-{service.uid}", f"algofs-serve-{service.uid}"]


@pytest.fixture(scope="module")
def shared_server() -> Iterator[SharedServer]:
    venv = user_venv()
    with local_accounts([INTRUDER], system=[SERVICE]) as accounts:
        service, intruder = accounts[SERVICE], accounts[INTRUDER]
        # what another account plants before the server starts: the old predictable staging and runtime dirs
        for name in planted_names(service):
            done = run_as(intruder, "/bin/sh", "-c", f"mkdir -p /tmp/{name}/planted && chmod 777 /tmp/{name}")
            assert done.returncode == 0, done.stderr
        # not under /tmp (the box's /tmp is its own anyway): where deploy/jupyterhub_config.py keeps its state
        Path("/srv").mkdir(exist_ok=True)
        state = Path(tempfile.mkdtemp(prefix="algofs-iso-", dir="/srv"))
        cgroup = f"algofs-test-{uuid.uuid4().hex[:8]}"
        child = ChildProcess("algofs serve", state / "log" / "child.log")
        try:
            os.chmod(state, 0o755)
            for sub in ("root", "log", "api"):
                (state / sub).mkdir(mode=0o700)
            chown_tree(state, service)
            users_file = state / "api" / "users.json"
            keys = {name: secrets.token_urlsafe(24) for name in ("bob", "mallory", "trudy", "oscar")}
            write_users(users_file, keys, SERVICE)
            assert delegate_v1(cgroup, service.uid, service.gid)
            ready = state / "api" / "ready.json"
            log_file = state / "log" / "serve.log"
            command = [str(venv / "bin" / "python"), "-m", "algofs_jupyter", "serve",
                       "--root", str(state / "root"), "--port", "0", "--users-file", str(users_file),
                       "--log-file", str(log_file),
                       "--ready-file", str(ready), "--owner-caps-cgroup", cgroup,
                       "--owner-max-processes", str(OWNER_TASKS), "--owner-max-memory", str(OWNER_MEMORY),
                       "--worker-scratch", "64M"]
            child.spawn(command, {"PATH": "/usr/bin:/bin", "HOME": str(state)}, cwd=state / "root",
                        user=service.uid, group=service.gid)
            child.wait_ready(ready.exists, 60)
            url = json.loads(ready.read_text())["url"]
            yield SharedServer(url, state / "root", users_file, log_file, keys, service, intruder, cgroup)
        finally:
            child.stop(kill_leftovers=True)
            remove_cgroup(cgroup)
            shutil.rmtree(state, ignore_errors=True)
            for name in planted_names(service):
                shutil.rmtree(f"/tmp/{name}", ignore_errors=True)


def test_the_server_runs_its_workers_boxed_and_capped(shared_server):
    details = requests.get(shared_server.url + "/healthz", timeout=10).json()["details"]["algorithms"]
    assert details["algorithms"] == "enabled" and details["sandbox"] == "bwrap", details
    assert details["owner_caps"] == "cgroup-v1" and details["multi_user"], details
    assert details["default_caps"]["processes"] == OWNER_TASKS


def test_a_warm_worker_never_sees_the_users_file_even_after_the_hub_replaces_it(shared_server):
    shared_server.publish("bob", "peek", PEEK)
    paths = {"paths": [str(shared_server.users_file), str(shared_server.log_file),
                       str(shared_server.root / "data" / "mallory"), "/etc/shadow", "/etc/passwd"]}
    first = shared_server.call("bob", "bob/peek", paths).json()["result"]
    # what the hub hook does when a user is added: an atomic rewrite (os.replace) of the users file
    keys = {**shared_server.keys, "carol": secrets.token_urlsafe(24)}
    write_users(shared_server.users_file, keys, SERVICE)
    time.sleep(1.5)  # the server re-reads it within a second; the old mask was dropped at the replace
    second = shared_server.call("bob", "bob/peek", paths).json()["result"]
    assert second["worker"] == first["worker"]  # the same warm process before and after the replacement
    for seen in (first, second):
        assert all(content is None for content in seen["seen"].values()), seen["seen"]
        assert not {"srv", "home", "root", "var"} & set(seen["root"]), seen["root"]
        assert all("ALGOFS_SERVE" not in (text or "") for text in seen["environs"].values()), seen["environs"]
    for key in keys.values():
        assert key not in json.dumps(second)


def test_predictable_paths_planted_by_another_account_are_never_used(shared_server):
    shared_server.publish("bob", "echo", ECHO)
    assert shared_server.call("bob", "bob/echo", "hello").json()["result"] == "hello"
    for name in planted_names(shared_server.service):
        planted = Path("/tmp") / name
        assert sorted(p.name for p in planted.iterdir()) == ["planted"]  # nothing of ours went in
        info = planted.lstat()
        assert info.st_uid == shared_server.intruder.uid and stat.S_IMODE(info.st_mode) == 0o777


def test_one_owners_fork_bomb_leaves_other_owners_calls_and_builds_working(shared_server):
    shared_server.publish("bob", "echo", ECHO)
    shared_server.publish("mallory", "bomb", FORK_BOMB)
    answers: dict = {}

    def bomb() -> None:
        answers["bomb"] = shared_server.call("mallory", "mallory/bomb", 8, timeout=60).json()

    thread = threading.Thread(target=bomb)
    thread.start()
    try:
        time.sleep(3)  # the bomb has forked all it can and holds its children
        # bob's worker starts while mallory's children hold every task mallory may have
        shared_server.publish("bob", "echo", ECHO + "# v2\n")  # a build, and a new worker
        for n in range(3):
            reply = shared_server.call("bob", "bob/echo", f"still here {n}", timeout=30).json()
            assert reply.get("result") == f"still here {n}", reply
    finally:
        thread.join(90)
    made = answers["bomb"]["result"]
    assert 0 < made < OWNER_TASKS, answers  # the owner's cgroup stopped the forks, not the uid's rlimit


def test_one_owners_memory_is_capped_across_its_processes_and_its_tmp(shared_server):
    shared_server.publish("trudy", "hog", MEMORY_HOG)  # not mallory: her bomb's children still hold her tasks
    shared_server.publish("bob", "echo", ECHO + "# v3\n")
    reply = shared_server.call("trudy", "trudy/hog", None, timeout=60).json()
    if "result" in reply:  # the children that were not killed report what they got: not 4 x 215 MiB
        assert reply["result"] * (1 << 20) < OWNER_MEMORY + (64 << 20), reply
    owner_group = next((CGROUP_ROOT / "memory" / shared_server.cgroup).glob("algofs-serve-*/trudy"))
    peak = int((owner_group / "memory.max_usage_in_bytes").read_text())
    assert peak <= OWNER_MEMORY + (8 << 20), peak
    assert shared_server.call("bob", "bob/echo", "fine").json()["result"] == "fine"


PROBE = """
import Algorithmia

def attempt(action):
    try:
        return repr(action())[:80]
    except Exception as exc:
        return "refused: " + type(exc).__name__ + " " + str(exc)[:80]

def apply(input):
    client = Algorithmia.client()
    private = input["named"].rsplit("/", 1)[0]
    return {
        "named": attempt(lambda: client.file(input["named"]).getString()),
        "unnamed": attempt(lambda: client.file(private + "/diary.txt").getString()),
        "make_public": attempt(lambda: client.dir(private).update_permissions(
            Algorithmia.acl.ReadAcl.public)),
        "delete": attempt(lambda: client.file(input["named"]).delete()),
        "plant": attempt(lambda: client.file(private + "/planted.txt").put("gotcha")),
    }
"""


def test_a_public_algorithm_gets_only_what_its_caller_names(shared_server):
    bob = shared_server.client("bob")
    private = bob.dir("data://.my/private_notes")
    if not private.exists():
        private.create()
    bob.file("data://.my/private_notes/diary.txt").put("bob's diary")
    bob.file("data://.my/private_notes/input.txt").put("for the algorithm")
    shared_server.publish("oscar", "probe", PROBE)  # an owner whose tasks no earlier test holds
    seen = shared_server.call("bob", "oscar/probe", {"named": "data://.my/private_notes/input.txt"}).json()
    result = seen["result"]
    assert result["named"] == "'for the algorithm'", result
    for action in ("unnamed", "make_public", "delete", "plant"):
        refused = result[action].startswith("refused") and "AttributeError" not in result[action]
        assert refused, (action, result)
    assert bob.file("data://.my/private_notes/input.txt").getString() == "for the algorithm"
    assert not bob.file("data://.my/private_notes/planted.txt").exists()
    assert bob.dir("data://.my/private_notes").get_permissions().read_acl != Algorithmia.acl.AclType.public


READ_BY_DESCRIPTOR = """
import json, os, sys
from algofs_jupyter.fs.local_reads import LocalReads
asked = json.load(sys.stdin)  # the keys come on stdin, never on a command line
found = {}
for user, key in asked["keys"].items():
    reads = LocalReads(asked["socket"], asked["uid"], "Simple " + key, 10)
    try:
        opened = reads.open(asked["uri"])
        found[user] = os.pread(opened.fd, 100, 0).decode()
    except OSError as exc:
        found[user] = type(exc).__name__
    finally:
        reads.close()
print(json.dumps(found))
"""


def test_another_account_reads_by_descriptor_only_what_its_key_may_read(shared_server):
    """The local-reads socket of a server running as a service account (docs/api-extensions.md §13): a
    process of another account reaches it and gets bob's private file with bob's key, and with mallory's
    the refusal her GET gets."""
    bob = shared_server.client("bob")
    bob.dir("data://.my/localreads").create()
    bob.file("data://.my/localreads/notes.txt").put("bob's notes")
    url = shared_server.url + "/v1/data/bob/localreads/notes.txt"
    assert requests.get(url, headers={"Authorization": shared_server.keys["mallory"]}).status_code == 403
    capabilities = requests.get(shared_server.url + "/v1/algofs/capabilities",
                                headers={"Authorization": shared_server.keys["bob"]}).json()
    advertised = capabilities["local_reads"]
    assert advertised["uid"] == shared_server.service.uid
    assert "local-reads" in capabilities["backends"]["data"]
    venv_python = str(user_venv() / "bin" / "python")
    intruder = shared_server.intruder
    asked = {"socket": advertised["socket"], "uid": advertised["uid"], "uri": "data://bob/localreads/notes.txt",
             "keys": {"bob": shared_server.keys["bob"], "mallory": shared_server.keys["mallory"]}}
    done = subprocess.run([venv_python, "-c", READ_BY_DESCRIPTOR], input=json.dumps(asked), user=intruder.uid,
                          group=intruder.gid, extra_groups=[], cwd=intruder.home, capture_output=True,
                          text=True, timeout=60, env={"HOME": str(intruder.home), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"bob": "bob's notes", "mallory": "PermissionError"}
