"""``EmbeddedServer``: run ``algofs serve`` as a child process (tests, the Jupyter extension, the demo).

API keys reach the child through a users file with mode 0600 inside the root, never through argv.
Readiness: the child writes a ready file with its URL once listening, then ``GET /healthz`` must answer.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import requests

from .users import DEMO_USERS


class EmbeddedServer:
    def __init__(self, root: str | os.PathLike, port: int = 0, demo: bool = False,
                 users: dict[str, str] | None = None, host: str = "127.0.0.1",
                 large_file_mb: int | None = None, storage: str | None = None,
                 s3_endpoint: str | None = None, s3_region: str | None = None,
                 env: dict[str, str] | None = None, many_files: int | None = None):
        """``storage``/``s3_*``: ``--storage s3://…`` and its endpoint/region; ``env``: extra variables for
        the child (e.g. ``AWS_SHARED_CREDENTIALS_FILE``: credentials never go into argv)."""
        self.root = Path(root).resolve()
        self.port = port
        self.host = host
        self.demo = demo
        self.large_file_mb = large_file_mb
        self.many_files = many_files
        self.storage = storage
        self.s3_endpoint = s3_endpoint
        self.s3_region = s3_region
        self.extra_env = dict(env or {})
        if users is None:
            users = dict(DEMO_USERS) if demo else {"user": "sim-" + secrets.token_urlsafe(18)}
        if not users:
            raise ValueError("EmbeddedServer needs at least one user")
        self.users = dict(users)
        first = "demo" if demo and "demo" in self.users else next(iter(self.users))
        self.username: str = first
        self.api_key: str = self.users[first]
        self.url: str | None = None
        self.process: subprocess.Popen | None = None
        state = self.root / "meta"
        self.users_file = state / "embedded-users.json"
        self.ready_file = state / "embedded-ready.json"
        self.log_path = state / "embedded-serve.log"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def _write_users_file(self) -> None:
        self.users_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.users_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump({"users": self.users}, handle)

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "algofs_jupyter", "serve", "--root", str(self.root),
               "--host", self.host, "--port", str(self.port),
               "--users-file", str(self.users_file), "--ready-file", str(self.ready_file)]
        for flag, value in (("--storage", self.storage), ("--s3-endpoint", self.s3_endpoint),
                            ("--s3-region", self.s3_region)):
            if value:
                cmd += [flag, value]
        if self.demo:
            cmd.append("--demo")
            if self.large_file_mb is not None:
                cmd += ["--demo-large-file-mb", str(self.large_file_mb)]
            if self.many_files is not None:
                cmd += ["--demo-many-files", str(self.many_files)]
        return cmd

    def start(self, timeout: float = 60.0) -> EmbeddedServer:
        if self.process is not None:
            raise RuntimeError("already started")
        self._write_users_file()
        self.ready_file.unlink(missing_ok=True)
        secret_vars = ("ALGOFS_SERVE_API_KEY", "ALGORITHMIA_API_KEY")
        env = {k: v for k, v in os.environ.items() if k not in secret_vars}
        env.update(self.extra_env)
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        try:
            self.process = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                            env=env, start_new_session=True)
        finally:
            log.close()
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"algofs serve exited with {self.process.returncode}:\n{self.log_tail()}")
            if self.ready_file.exists():
                self.url = json.loads(self.ready_file.read_text())["url"]
                try:
                    if requests.get(self.url + "/healthz", timeout=2).status_code == 200:
                        return
                except requests.RequestException:
                    pass
            time.sleep(0.05)
        raise TimeoutError(f"algofs serve not ready after {timeout} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        proc, self.process = self.process, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
        self.ready_file.unlink(missing_ok=True)

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
