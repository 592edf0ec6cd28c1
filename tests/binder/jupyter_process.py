"""A real Jupyter server as a child process (own session), stopped with SIGTERM so the extension cleans up."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import requests

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
        self.process: subprocess.Popen | None = None

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
        log = open(self.log_path, "wb")  # kept open for the child's lifetime
        extra = {}
        if self.user:
            extra = {"user": self.user[0], "group": self.user[1], "extra_groups": []}
        self.process = subprocess.Popen(
            self.command,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=self.cwd,
            **extra,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"jupyter exited ({self.process.returncode}):\n{self.log()}")
            try:
                if self.get("/api/status").status_code == 200:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"jupyter did not answer in {timeout}s:\n{self.log()}")

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
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
