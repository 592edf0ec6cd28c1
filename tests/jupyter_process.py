"""A real Jupyter server as a child process (``supervise.ChildProcess``: own session, log file), stopped with
SIGTERM to its group so the extension cleans up.

Shared by tests/jupyter and tests/binder: tests/ is on ``sys.path`` because its conftest.py sits there.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import requests

from algofs_jupyter.supervise import ChildProcess

CONTENTS_MANAGER = "algofs_jupyter.jupyter.contents.AlgofsContentsManager"


class JupyterProcess:
    def __init__(
        self,
        command: list[str],
        port: int,
        token: str,
        env: dict,
        log_path: Path,
        preexec_user: tuple[int, int] | None = None,
        cwd: str | None = None,
    ):
        self.command, self.port, self.token, self.env, self.log_path = command, port, token, env, log_path
        self.user = preexec_user
        self.cwd = cwd
        self._child = ChildProcess("jupyter", log_path)

    @property
    def process(self) -> subprocess.Popen | None:
        return self._child.popen

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, route: str, **kwargs) -> requests.Response:
        return requests.get(
            f"{self.url}{route}", headers={"Authorization": f"token {self.token}"}, timeout=60, **kwargs
        )

    def request(self, method: str, route: str, **kwargs) -> requests.Response:
        return requests.request(
            method,
            f"{self.url}{route}",
            headers={"Authorization": f"token {self.token}"},
            timeout=60,
            **kwargs,
        )

    def start(self, timeout: float = 120.0) -> JupyterProcess:
        self.log_path.unlink(missing_ok=True)  # this run's output only
        uid, gid = self.user or (None, None)
        self._child.spawn(self.command, self.env, cwd=self.cwd, user=uid, group=gid)
        try:
            self._child.wait_ready(self._answers, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _answers(self) -> bool:
        try:
            return self.get("/api/status").status_code == 200
        except requests.ConnectionError:
            return False

    def wait_for(self, predicate, timeout: float = 60.0, what: str = "condition"):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = predicate()
            if last:
                return last
            time.sleep(0.3)
        raise AssertionError(f"timed out waiting for {what}; last {last!r}\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:] if self.log_path.exists() else ""

    def stop(self, timeout: float = 30.0) -> None:
        self._child.stop(term_timeout=timeout, term_group=True)
