"""``EmbeddedServer``: run ``algofs serve`` as a supervised child (tests, the Jupyter extension, the demo).

API keys reach the child through a users file with mode 0600 inside the root, never through argv. Every key
is random, the demo users' too: the published demo keys are only for ``algofs serve --demo`` run by hand.
Readiness: the child writes a ready file with its URL once listening, then ``GET /healthz`` must answer.
The child's lifecycle is ``supervise.ChildProcess``.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from pathlib import Path
from types import TracebackType

import requests

from ..parent_watch import PARENT_PID_ENV
from ..private_dirs import make_private_dirs
from ..supervise import ChildOwner, ChildProcess
from .users import DEMO_USERS


class EmbeddedServer(ChildOwner):
    def __init__(self, root: str | os.PathLike, port: int = 0, demo: bool = False,
                 users: dict[str, str] | None = None, host: str = "127.0.0.1",
                 large_file_mb: int | None = None, storage: str | None = None,
                 s3_endpoint: str | None = None, s3_region: str | None = None,
                 env: dict[str, str] | None = None, many_files: int | None = None,
                 exit_with_parent: bool = True, quota_bytes: int | None = None,
                 quota_files: int | None = None, quotas_file: str | os.PathLike | None = None,
                 one_person: bool = False):
        """``storage``/``s3_*``: ``--storage s3://…`` and its endpoint/region; ``env``: extra variables for
        the child (e.g. ``AWS_SHARED_CREDENTIALS_FILE``: credentials never go into argv).
        ``exit_with_parent``: the server stops once this process is gone (``parent_watch``), so a killed
        Jupyter server or kernel leaves no ``algofs serve`` behind. ``quota_*``: ``--quota-bytes``,
        ``--quota-files`` and ``--quotas-file`` (per-user storage quotas; none by default). ``one_person``:
        every user of this server is whoever started it (the Jupyter extension's demo server, whose keys only
        it holds), so its algorithms may run where the box cannot be fully enforced
        (``--allow-unisolated-algorithms``, docs/server.md)."""
        self.root = Path(root).resolve()
        self.port = port
        self.host = host
        self.demo = demo
        self.storage = storage  # "s3://BUCKET/PREFIX", None: the root's own directory
        self.extra_env = dict(env or {})
        self.exit_with_parent = exit_with_parent
        self.one_person = one_person
        optional: dict[str, object] = {"--storage": storage, "--s3-endpoint": s3_endpoint,
                                       "--s3-region": s3_region, "--quota-bytes": quota_bytes,
                                       "--quota-files": quota_files, "--quotas-file": quotas_file}
        if demo:
            optional |= {"--demo-large-file-mb": large_file_mb, "--demo-many-files": many_files}
        #: the flags given a value, in ``algofs serve``'s own spelling
        self.serve_flags = [part for flag, value in optional.items() if value not in (None, "")
                            for part in (flag, str(value))]
        if users is None:
            names = list(DEMO_USERS) if demo else ["user"]
            users = {name: "algofs-" + secrets.token_urlsafe(24) for name in names}
        if not users:
            raise ValueError("EmbeddedServer needs at least one user")
        self.users = dict(users)
        first = "demo" if demo and "demo" in self.users else next(iter(self.users))
        self.username: str = first
        self.api_key: str = self.users[first]
        self.url: str | None = None
        state = self.root / "meta"
        self.users_file = state / "embedded-users.json"
        self.ready_file = state / "embedded-ready.json"
        self.log_path = state / "embedded-serve.log"
        self._child = ChildProcess("algofs serve", self.log_path)

    def _write_users_file(self) -> None:
        make_private_dirs(self.users_file.parent)  # the log and the ready file live here too
        fd = os.open(self.users_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump({"users": self.users}, handle)

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "algofs_jupyter", "serve", "--root", str(self.root),
               "--host", self.host, "--port", str(self.port),
               "--users-file", str(self.users_file), "--ready-file", str(self.ready_file),
               "--log-file", str(self.log_path)]
        if self.demo:
            cmd.append("--demo")
        if self.one_person:
            cmd.append("--allow-unisolated-algorithms")
        return cmd + self.serve_flags

    def start(self, timeout: float = 60.0) -> EmbeddedServer:
        if self._child.popen is not None:
            raise RuntimeError("already started")
        self._write_users_file()
        self.ready_file.unlink(missing_ok=True)
        secret_vars = ("ALGOFS_SERVE_API_KEY", "ALGORITHMIA_API_KEY")
        env = {k: v for k, v in os.environ.items() if k not in secret_vars}
        env.update(self.extra_env)
        if self.exit_with_parent:
            env[PARENT_PID_ENV] = str(os.getpid())
        self._spawn_until_ready(self.command(), env, timeout)
        return self

    def ready(self) -> bool:
        """The ready file names the URL and ``GET /healthz`` answers 200."""
        if not self.ready_file.exists():
            return False
        self.url = json.loads(self.ready_file.read_text())["url"]
        try:
            return requests.get(self.url + "/healthz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def stop(self, timeout: float = 10.0) -> None:
        self._child.stop(term_timeout=timeout)
        self.ready_file.unlink(missing_ok=True)

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
