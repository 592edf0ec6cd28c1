"""JupyterHub on one machine: real local users, each with ~/algofs mounted over one shared API server.

Used as-is by tests/hub/ and described in docs/deploy.md. Everything site-specific comes from
environment variables (defaults in brackets):

  ALGOFS_HUB_VENV           [/opt/algofs/venv]  venv every user can run (deploy/user-venv.sh)
  ALGOFS_HUB_STATE          [/srv/algofs]       hub database, API server root, users file, logs
  ALGOFS_HUB_SERVICE_USER   [algofs]            system account the API server runs as
  ALGOFS_HUB_API_PORT       [8731]              the API server's port on 127.0.0.1
  ALGOFS_HUB_IP / _PORT     [127.0.0.1 / 8000]  where the proxy listens for browsers
  ALGOFS_HUB_HUB_PORT       [8081]              the hub's internal API port (127.0.0.1)
  ALGOFS_HUB_PROXY_API_PORT [8001]              configurable-http-proxy's API port (127.0.0.1)
  ALGOFS_HUB_PROXY          [configurable-http-proxy]  path of the proxy executable
  ALGOFS_HUB_CGROUP         [algofs]            cgroup delegated to the API server for algorithm caps
  ALGOFS_HUB_QUOTA_BYTES    [10G]               every user's storage quota (overrides: api/quotas.json)
  ALGOFS_HUB_QUOTA_FILES    [1000000]           every user's file-count quota
  ALGOFS_HUB_ORG_PREFIX     []                  only hub groups named <prefix><org> are organizations
  ALGOFS_HUB_ORG_ADMINS_PROPERTY [algofs_admins] group property naming the org's admins
  ALGOFS_HUB_ORG_HUB_ADMINS [1]                 1: hub admins in a group are its org's admins; 0: not
  ALGOFS_HUB_GROUPS_INTERVAL [2]                seconds between two reads of the hub's groups

Identity: the hub mints one random key per user in a pre-spawn hook, stores it in the API server's users
file (re-read by the server on change) and writes it to the user's ~/.algofs/api-key (0600) as that user.
The single-user server gets only the file's path. Authentication of people stays the hub's business
(PAM here: local accounts and their passwords).

Teams: hub groups are AlgoFS organizations (``data://<group>/…``). A second hub service
(``algofs_jupyter/hub_groups.py``, as the service account, its token limited to reading groups and users)
rewrites the API server's organizations file within seconds of a group change; docs/deploy.md, "Teams".
"""

import asyncio
import os
import pwd
from pathlib import Path

from algofs_jupyter.hub_groups import SERVICE_SCOPES
from algofs_jupyter.hub_keys import ensure_user_key, hand_over_key

c = get_config()  # noqa: F821 - provided by JupyterHub when it loads this file

VENV = Path(os.environ.get("ALGOFS_HUB_VENV", "/opt/algofs/venv"))
STATE = Path(os.environ.get("ALGOFS_HUB_STATE", "/srv/algofs"))
SERVICE_USER = os.environ.get("ALGOFS_HUB_SERVICE_USER", "algofs")
API_PORT = int(os.environ.get("ALGOFS_HUB_API_PORT", "8731"))
API_ADDRESS = f"http://127.0.0.1:{API_PORT}"
USERS_FILE = STATE / "api" / "users.json"
API_ROOT = STATE / "api" / "root"
#: per-owner caps on algorithm workers and per-user storage quotas (optional overrides; docs/server.md),
#: both re-read on change
CAPS_FILE = STATE / "api" / "owner-caps.json"
QUOTAS_FILE = STATE / "api" / "quotas.json"
QUOTA_BYTES = os.environ.get("ALGOFS_HUB_QUOTA_BYTES", "10G")
QUOTA_FILES = os.environ.get("ALGOFS_HUB_QUOTA_FILES", "1000000")
#: the hub's groups as organizations, kept by the algofs-groups service (the API's own: API_ROOT)
ORGANIZATIONS_FILE = STATE / "api" / "hub-organizations.json"
ORG_PREFIX = os.environ.get("ALGOFS_HUB_ORG_PREFIX", "")
ORG_ADMINS_PROPERTY = os.environ.get("ALGOFS_HUB_ORG_ADMINS_PROPERTY", "algofs_admins")
ORG_HUB_ADMINS = os.environ.get("ALGOFS_HUB_ORG_HUB_ADMINS", "1") != "0"
GROUPS_INTERVAL = os.environ.get("ALGOFS_HUB_GROUPS_INTERVAL", "2")
#: the cgroup (v1: in pids, memory and cpu) handed to the service account for its owners' caps
CGROUP = os.environ.get("ALGOFS_HUB_CGROUP", "algofs")


def prepare_state() -> None:
    """Hub files root-only; API files owned by the service account, unreadable by notebook users."""
    service = pwd.getpwnam(SERVICE_USER)
    STATE.mkdir(mode=0o755, parents=True, exist_ok=True)
    for directory, owner in ((STATE / "hub", None), (STATE / "api", service), (API_ROOT, service),
                             (STATE / "api" / "log", service)):
        directory.mkdir(mode=0o700, exist_ok=True)
        os.chmod(directory, 0o700)
        if owner is not None:
            os.chown(directory, owner.pw_uid, owner.pw_gid)
    if not USERS_FILE.exists():
        from algofs_jupyter.hub_keys import write_users

        write_users(USERS_FILE, {}, SERVICE_USER)
    if not ORGANIZATIONS_FILE.exists():  # the server reads it from its start; the service fills it
        from algofs_jupyter.hub_keys import replace_private_file

        replace_private_file(ORGANIZATIONS_FILE, '{"organizations": {}}\n', SERVICE_USER)
    # Kernel-enforced caps per algorithm owner need a cgroup the (non-root) service may manage. On a cgroup
    # v1 host the hub (root) delegates one; on cgroup v2 run the service under systemd with Delegate=yes
    # (docs/deploy.md). Without one the server refuses to run algorithms and /healthz says why.
    from algofs_jupyter.server.algo_cgroups import delegate_v1

    delegate_v1(CGROUP, service.pw_uid, service.pw_gid)


prepare_state()

# ----- the hub and its proxy: loopback only; a TLS-terminating reverse proxy goes in front ----------------
c.JupyterHub.ip = os.environ.get("ALGOFS_HUB_IP", "127.0.0.1")
c.JupyterHub.port = int(os.environ.get("ALGOFS_HUB_PORT", "8000"))
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = int(os.environ.get("ALGOFS_HUB_HUB_PORT", "8081"))
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{os.environ.get('ALGOFS_HUB_PROXY_API_PORT', '8001')}"
c.ConfigurableHTTPProxy.command = [os.environ.get("ALGOFS_HUB_PROXY", "configurable-http-proxy")]
c.JupyterHub.db_url = f"sqlite:///{STATE / 'hub' / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(STATE / "hub" / "jupyterhub_cookie_secret")
c.JupyterHub.authenticator_class = "pam"

# ----- the shared API server, a hub-managed service (started and stopped with the hub) -------------------
c.JupyterHub.services = [{
    "name": "algofs-api",
    "user": SERVICE_USER,
    "cwd": str(API_ROOT),
    "command": [str(VENV / "bin" / "python"), "-m", "algofs_jupyter", "serve",
                "--root", str(API_ROOT), "--host", "127.0.0.1", "--port", str(API_PORT),
                "--users-file", str(USERS_FILE), "--log-file", str(STATE / "api" / "log" / "serve.log"),
                "--owner-caps-cgroup", CGROUP, "--owner-caps-file", str(CAPS_FILE),
                "--quota-bytes", QUOTA_BYTES, "--quota-files", QUOTA_FILES,
                "--quotas-file", str(QUOTAS_FILE), "--organizations-file", str(ORGANIZATIONS_FILE)],
}, {
    # hub groups -> organizations: JupyterHub has no hook on group changes, so this polls its API
    "name": "algofs-groups",
    "user": SERVICE_USER,
    "cwd": str(STATE / "api"),
    "command": [str(VENV / "bin" / "python"), "-m", "algofs_jupyter.hub_groups",
                "--organizations-file", str(ORGANIZATIONS_FILE), "--interval", GROUPS_INTERVAL,
                "--prefix", ORG_PREFIX, "--admins-property", ORG_ADMINS_PROPERTY,
                *([] if ORG_HUB_ADMINS else ["--no-hub-admins"])],
}]
c.JupyterHub.load_roles = [{"name": "algofs-groups", "services": ["algofs-groups"],
                            "scopes": list(SERVICE_SCOPES)}]

# ----- single-user servers: one local process per user, as that user, from the shared venv ---------------
c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = [str(VENV / "bin" / "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab"
c.Spawner.environment = {"ALGORITHMIA_API": API_ADDRESS}


async def hand_user_their_key(spawner) -> None:
    """Mint (first spawn) or reuse the user's key and put it in their 0600 key file; pass only the path.

    Threads keep the hub's event loop free while the file lock and the as-the-user write are waited for.
    """
    name = spawner.user.name
    key = await asyncio.to_thread(ensure_user_key, USERS_FILE, name, SERVICE_USER)
    key_file = await asyncio.to_thread(hand_over_key, name, key)
    spawner.args = [
        f"--AlgofsApp.api_address={API_ADDRESS}",
        f"--AlgofsApp.api_key_file={key_file}",
        f"--AlgofsApp.username={name}",
        "--AlgofsApp.embedded_server=False",
        "--AlgofsApp.mountpoint=algofs",
        # answers 403, not jupyter_server's 500, for a path the API refuses (shown as d--x--x--x)
        "--ServerApp.contents_manager_class=algofs_jupyter.jupyter.contents.AlgofsContentsManager",
    ]


c.Spawner.pre_spawn_hook = hand_user_their_key
