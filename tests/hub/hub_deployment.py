"""The pieces of a real single-machine JupyterHub for tests: local accounts, the shared venv, the hub.

Everything started here is stopped by the context managers, also when a test fails: the hub and its
children, every process left under a test account's uid, FUSE mounts under their homes, the accounts
themselves (``userdel -r``) and the state directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pwd
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import requests

from algofs_jupyter.mount.mount_table import algofs_mounts
from algofs_jupyter.supervise import ChildProcess
from algofs_jupyter.testing.ports import free_ports

REPO = Path(__file__).resolve().parents[2]
HUB_CONFIG = REPO / "deploy" / "jupyterhub_config.py"
#: The world-readable venv is cached between runs (dependencies reinstalled only when pyproject changes).
VENV_CACHE = Path(os.environ.get("ALGOFS_HUB_TEST_VENV", "/opt/algofs-hub/venv"))


def user_venv() -> Path:
    """deploy/user-venv.sh into the cache, with this checkout's sources (one copy per checkout)."""
    src = VENV_CACHE.parent / f"src-{hashlib.sha256(str(REPO).encode()).hexdigest()[:10]}"
    subprocess.run([str(REPO / "deploy" / "user-venv.sh"), str(VENV_CACHE), str(src)], check=True,
                   stdout=subprocess.DEVNULL, timeout=900)
    return VENV_CACHE


def proxy_command() -> str | None:
    """configurable-http-proxy as ./dev.sh setup installs it (inside the venv), else from PATH."""
    in_venv = Path(sys.prefix) / "node_modules" / ".bin" / "configurable-http-proxy"
    return str(in_venv) if in_venv.exists() else shutil.which("configurable-http-proxy")


# ----- local accounts ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Account:
    name: str
    uid: int
    gid: int
    home: Path


def processes_of(uid: int) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["uids"]):
        uids = proc.info["uids"]
        if uids is not None and uid in (uids.real, uids.effective):
            found.append(proc)
    return found


def algofs_mounts_under(directory: Path) -> list[str]:
    prefix = str(directory).rstrip("/") + "/"
    return [mountpoint for mountpoint in algofs_mounts() if (mountpoint + "/").startswith(prefix)]


def remove_account(name: str) -> None:
    """Kill what runs under the account, lazily unmount FUSE mounts in its home, delete it."""
    try:
        account = pwd.getpwnam(name)
    except KeyError:
        return
    for proc in processes_of(account.pw_uid):
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(processes_of(account.pw_uid), timeout=10)
    for mountpoint in algofs_mounts_under(Path(account.pw_dir)):
        subprocess.run(["fusermount3", "-u", "-z", mountpoint], check=False, capture_output=True)
    subprocess.run(["userdel", "-r", name], check=False, capture_output=True)


@contextlib.contextmanager
def local_accounts(names: list[str], system: list[str] = ()) -> Iterator[dict[str, Account]]:
    """Create login accounts (``useradd -m``) and system accounts; all removed on exit."""
    created: list[str] = []
    try:
        for name in [*names, *system]:
            remove_account(name)  # a leftover of an interrupted run
            if name in system:
                cmd = ["useradd", "--system", "--no-create-home", "-s", "/usr/sbin/nologin", name]
            else:
                cmd = ["useradd", "-m", "-s", "/bin/bash", name]
            subprocess.run(cmd, check=True, capture_output=True)
            created.append(name)
        accounts = {}
        for name in created:
            entry = pwd.getpwnam(name)
            accounts[name] = Account(name, entry.pw_uid, entry.pw_gid, Path(entry.pw_dir))
        yield accounts
    finally:
        for name in created:
            remove_account(name)


def run_as(account: Account, *cmd: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """A command as ``account`` (its uid and gid only), from its home, with a minimal environment."""
    return subprocess.run(list(cmd), user=account.uid, group=account.gid, extra_groups=[],
                          cwd=account.home, env={"HOME": str(account.home), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=timeout)


# ----- the hub -------------------------------------------------------------------------------------------

@dataclass
class Hub:
    venv: Path
    url: str
    api_address: str
    state: Path
    admin_token: str
    child: ChildProcess

    def api(self, method: str, path: str, token: str | None = None, **kwargs) -> requests.Response:
        headers = {"Authorization": f"token {token or self.admin_token}"}
        return requests.request(method, f"{self.url}/hub/api{path}", headers=headers, timeout=30, **kwargs)

    def user_request(self, user: str, path: str, token: str, method: str = "GET") -> requests.Response:
        return requests.request(method, f"{self.url}/user/{user}{path}", timeout=30, allow_redirects=False,
                                headers={"Authorization": f"token {token}"})

    @property
    def log_path(self) -> Path:
        return self.child.log_path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def spawn(self, user: str, timeout: float = 240) -> None:
        created = self.api("POST", f"/users/{user}")
        assert created.status_code in (201, 409), created.text
        started = self.api("POST", f"/users/{user}/server")
        assert started.status_code in (201, 202), started.text
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            server = self.api("GET", f"/users/{user}").json().get("servers", {}).get("")
            if server and server.get("ready"):
                return
            assert self.child.alive(), self.log()[-3000:]
            time.sleep(0.5)
        raise TimeoutError(f"{user}'s server not ready:\n{self.log()[-3000:]}")

    def stop_server(self, user: str, timeout: float = 60) -> None:
        response = self.api("DELETE", f"/users/{user}/server")
        assert response.status_code in (202, 204), response.text
        deadline = time.monotonic() + timeout
        while self.api("GET", f"/users/{user}").json().get("servers"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{user}'s server did not stop")
            time.sleep(0.3)

    def user_token(self, user: str) -> str:
        response = self.api("POST", f"/users/{user}/tokens", json={"expires_in": 3600})
        assert response.status_code == 201, response.text
        return response.json()["token"]


TEST_OVERRIDES = """\
# tests/hub: the repository's deploy/jupyterhub_config.py plus what only a test needs.
load_subconfig({config!r})
c.JupyterHub.authenticator_class = "dummy"  # no passwords in a test; the deployment uses PAM
c.Authenticator.allowed_users = set({users!r})
c.JupyterHub.services.append({{"name": "test-admin", "api_token": {token!r}}})
c.JupyterHub.load_roles.append({{"name": "test-admin", "services": ["test-admin"],
                               "scopes": ["admin:users", "admin:servers", "tokens", "list:users",
                                          "admin:groups"]}})
c.Spawner.start_timeout = 240
c.Spawner.http_timeout = 240
"""


@contextlib.contextmanager
def running_hub(venv: Path, users: list[str], service_user: str) -> Iterator[Hub]:
    """``jupyterhub -f`` the deployment config through a test overlay, on 127.0.0.1; stopped on exit."""
    state = Path(tempfile.mkdtemp(prefix="algofs-hub-", dir="/var/tmp"))
    os.chmod(state, 0o755)
    token = secrets.token_hex(32)
    overlay = state / "hub" / "test_config.py"
    overlay.parent.mkdir(mode=0o700)
    overlay.write_text(TEST_OVERRIDES.format(config=str(HUB_CONFIG), users=sorted(users), token=token))
    names = ("PORT", "HUB_PORT", "PROXY_API_PORT", "API_PORT")
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "ALGORITHMIA_API", "ALGORITHMIA_API_KEY", "JUPYTERHUB_API_TOKEN")}
    env.update({f"ALGOFS_HUB_{name}": str(port) for name, port in ports.items()})
    cgroup = f"algofs-hubtest-{secrets.token_hex(4)}"  # delegated to the service by the config: removed below
    env.update(ALGOFS_HUB_VENV=str(venv), ALGOFS_HUB_STATE=str(state), ALGOFS_HUB_SERVICE_USER=service_user,
               ALGOFS_HUB_PROXY=proxy_command() or "configurable-http-proxy", ALGOFS_HUB_IP="127.0.0.1",
               ALGOFS_HUB_CGROUP=cgroup, PATH=f"{venv / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}")
    child = ChildProcess("jupyterhub", state / "hub" / "hub.log")
    hub = Hub(venv, f"http://127.0.0.1:{ports['PORT']}", f"http://127.0.0.1:{ports['API_PORT']}", state,
              token, child)
    try:
        child.spawn([str(venv / "bin" / "jupyterhub"), "-f", str(overlay)], env, cwd=state / "hub")
        child.wait_ready(lambda: hub_up(hub), 120)
        yield hub
    finally:
        # SIGTERM (the hub stops its servers, service and proxy), then SIGKILL whatever is left of the group
        child.stop(term_timeout=60, kill_leftovers=True)
        kill_leftover_proxy(state / "hub" / "jupyterhub-proxy.pid")
        remove_cgroup(cgroup)
        shutil.rmtree(state, ignore_errors=True)


def remove_cgroup(name: str) -> None:
    """A delegated cgroup and whatever the server made below it (each level emptied, then removed)."""
    from algofs_jupyter.server.algo_cgroups import CGROUP_ROOT, V1_CONTROLLERS, remove_tree

    remove_tree([CGROUP_ROOT / c / name for c in V1_CONTROLLERS])


def kill_leftover_proxy(pid_file: Path) -> None:
    """The proxy runs in its own session; the hub stops it, unless the hub itself had to be killed."""
    try:
        proxy = psutil.Process(int(pid_file.read_text()))
        if "configurable-http-proxy" in " ".join(proxy.cmdline()):
            proxy.kill()
    except (OSError, ValueError, psutil.Error):
        pass


def hub_up(hub: Hub) -> bool:
    """The hub's REST API and the shared API server both answer."""
    try:
        hub_answers = hub.api("GET", "/users").status_code == 200
        return hub_answers and requests.get(hub.api_address + "/healthz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


# ----- a hub with users and groups but no servers (no accounts, no venv: this venv's jupyterhub) ------------

BARE_HUB = """\
c.JupyterHub.ip = c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.command = [{proxy!r}]
c.JupyterHub.db_url = "sqlite:///{state}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{state}/jupyterhub_cookie_secret"
c.JupyterHub.pid_file = "{state}/jupyterhub.pid"
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.admin_users = set({admins!r})
c.JupyterHub.api_page_default_limit = c.JupyterHub.api_page_max_limit = {page}
c.JupyterHub.services = [{{"name": "test-admin", "api_token": {admin!r}}},
                         {{"name": "algofs-groups", "api_token": {sync!r}}}]
c.JupyterHub.load_roles = [
    {{"name": "test-admin", "services": ["test-admin"], "scopes": ["admin:users", "admin:groups"]}},
    {{"name": "algofs-groups", "services": ["algofs-groups"], "scopes": {scopes!r}}}]
"""


@dataclass
class BareHub:
    url: str
    admin_token: str
    sync_token: str
    child: ChildProcess

    @property
    def api_url(self) -> str:
        return f"{self.url}/hub/api"

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = {"Authorization": f"token {self.admin_token}"}
        response = requests.request(method, f"{self.api_url}{path}", headers=headers, timeout=30, **kwargs)
        assert response.status_code < 300, (method, path, response.status_code, response.text)
        return response


@contextlib.contextmanager
def bare_hub(scopes: tuple[str, ...], admins: list[str], page: int = 2) -> Iterator[BareHub]:
    """A hub whose API pages every list by ``page`` items; ``sync_token`` is a service's with ``scopes``;
    the hub admins ``admins`` exist from the start."""
    state = Path(tempfile.mkdtemp(prefix="algofs-barehub-"))
    port, hub_port, proxy_api_port = free_ports(3)
    admin, sync = secrets.token_hex(32), secrets.token_hex(32)
    (state / "config.py").write_text(BARE_HUB.format(
        port=port, hub_port=hub_port, proxy_api_port=proxy_api_port, proxy=proxy_command(), state=state,
        page=page, admins=sorted(admins), admin=admin, sync=sync, scopes=list(scopes)))
    child = ChildProcess("jupyterhub", state / "hub.log")
    hub = BareHub(f"http://127.0.0.1:{port}", admin, sync, child)
    env = {key: value for key, value in os.environ.items() if not key.startswith("JUPYTERHUB_")}
    try:
        child.spawn([str(Path(sys.prefix) / "bin" / "jupyterhub"), "-f", str(state / "config.py")], env,
                    cwd=state)
        child.wait_ready(lambda: _answers(hub), 60)
        yield hub
    finally:
        child.stop(term_timeout=30, kill_leftovers=True)
        kill_leftover_proxy(state / "jupyterhub-proxy.pid")
        shutil.rmtree(state, ignore_errors=True)


def _answers(hub: BareHub) -> bool:
    try:
        return requests.get(f"{hub.api_url}/groups", headers={"Authorization": f"token {hub.admin_token}"},
                            timeout=2).status_code == 200
    except requests.RequestException:
        return False
