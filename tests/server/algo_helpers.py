"""Helpers for the algorithm tests: a server with extra ``algofs serve`` options, publishing code."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import Algorithmia
import requests

from algofs_jupyter.server.embedded_server import EmbeddedServer
from algofs_jupyter.server.users import DEMO_USERS

DEMO_ALGORITHMS = Path(__file__).resolve().parents[2] / "algofs_jupyter" / "server" / "demo" / "algorithms"


class ServerWithOptions(EmbeddedServer):
    """``EmbeddedServer`` plus extra command-line options (caps, executor, idle reaping).

    ``light=True``: the demo users and the demo algorithms only, without seeding the demo data (5,000+
    files, seconds on a loaded machine).
    """

    def __init__(self, root, extra_args: list[str], light: bool = False, **kwargs):
        if light:
            kwargs.setdefault("users", dict(DEMO_USERS))
            shutil.copytree(DEMO_ALGORITHMS, Path(root) / "algorithms", dirs_exist_ok=True)
        super().__init__(root, **kwargs)
        self.extra_args = list(extra_args)

    def command(self) -> list[str]:
        return [*super().command(), *self.extra_args]


def unique(prefix: str = "a") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def upload(url: str, user: str, name: str, source: str) -> requests.Response:
    response = requests.put(f"{url}/v1/algorithms/{user}/{name}/source", data=source.encode(),
                            headers={"Authorization": DEMO_USERS[user], "Content-Type": "text/x-python"},
                            timeout=30)
    return response


def publish_source(url: str, user: str, name: str, source: str, version_type: str = "minor",
                   private: bool = False) -> dict:
    """Create (if needed), upload and publish with the official client; returns the publish answer."""
    client = Algorithmia.client(api_key=DEMO_USERS[user], api_address=url)
    algo = client.algo(f"{user}/{name}")
    if not algo.exists():
        algo.create(details={"label": name},
                    settings={"algorithm_callability": "private" if private else "public"})
    upload(url, user, name, source).raise_for_status()
    return algo.publish(version_info={"version_type": version_type})
