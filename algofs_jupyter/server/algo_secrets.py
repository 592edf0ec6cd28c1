"""Algorithm secrets: values an algorithm's owner stores once and its runs read as environment variables.

As on the hosted service, ``algo.set_secret(short_name, secret_key, secret_value)`` stores a value under an
environment variable name (``secret_key``); every worker of that algorithm, and of no other, starts with
it in its environment (``algo_box.AlgorithmBox.prepare``). Builds get none. The value is never answered
back (listings carry the names and descriptions only), never logged (the access log has URIs, not bodies),
never put on a command line: the sandbox gets it in bwrap's own environment (``algo_sandbox.launch_spec``).

On disk: ``<root>/algorithm-secrets/<algorithm id>.json``, the folder 0700 and each file 0600, written
by rename. The server root is one of the box's secret paths, so no sandbox can bind it. Keyed by the
algorithm's id: an algorithm deleted and made again under the same name does not inherit them.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from pathlib import Path

from .errors import ApiError, bad_request

PROVIDER = {"id": "algofs-internal", "name": "internal", "description": "Secrets kept by this algofs server "
            "(0600 files under its root), given to the algorithm's runs as environment variables",
            "is_default": True, "is_enabled": True, "resource_type": "secret_provider"}
SECRET_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
#: Names the worker itself needs, or that would change how its interpreter or loader starts.
RESERVED = re.compile(r"^(PATH|HOME|LANG|LC_\w*|TMPDIR|PWD|SHELL|USER|PYTHON\w*|LD_\w*|ALGORITHMIA_\w*|"
                      r"ALGOFS_\w*)$", re.IGNORECASE)
MAX_VALUE = 64 * 1024
MAX_SECRETS = 100
_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def _public(secret: dict) -> dict:
    return {k: v for k, v in secret.items() if k != "value"}


class SecretStore:
    """Concurrency: event loop only (handlers and worker starts read whole files; writes replace them)."""

    def __init__(self, root: Path):
        self.folder = root / "algorithm-secrets"

    def _path(self, algorithm_id: str) -> Path:
        if not _ID.match(algorithm_id):
            raise ApiError(404, "No such algorithm")
        return self.folder / f"{algorithm_id}.json"

    def _read(self, algorithm_id: str) -> list[dict]:
        try:
            return json.loads(self._path(algorithm_id).read_text())["secrets"]
        except FileNotFoundError:
            return []
        except (OSError, ValueError, KeyError) as exc:
            raise ApiError(500, "the algorithm's secrets cannot be read") from exc

    def _write(self, algorithm_id: str, secrets: list[dict]) -> None:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)
        path = self._path(algorithm_id)
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump({"secrets": secrets}, out)
        os.replace(tmp, path)

    def listing(self, algorithm_id: str) -> dict:
        """``GET /v1/algorithms/<id>/secrets``: names and descriptions, never the values."""
        return {"marker": None, "next_link": None,
                "results": [_public(s) for s in self._read(algorithm_id)]}

    def put(self, algorithm_id: str, body: dict, now: str) -> dict:
        """``POST /v1/algorithms/<id>/secrets``: a new secret, or a new value for the same ``secret_key``."""
        key, value = body.get("secret_key"), body.get("secret_value")
        short_name, description = body.get("short_name"), body.get("description", "")
        if not isinstance(key, str) or not SECRET_KEY.match(key):
            raise bad_request("secret_key must be an environment variable name: letters, digits and "
                              "underscores, not starting with a digit, at most 128")
        if RESERVED.match(key):
            raise bad_request(f"secret_key {key} is a name the algorithm's worker sets itself")
        if not isinstance(value, str) or "\0" in value or len(value.encode()) > MAX_VALUE:
            raise bad_request("secret_value must be text of at most 64 KiB without NUL characters")
        if not isinstance(short_name, str) or not 0 < len(short_name) <= 100:
            raise bad_request("short_name must be 1-100 characters")
        if not isinstance(description, str) or len(description) > 1000:
            raise bad_request("description must be text of at most 1000 characters")
        if body.get("provider_id", PROVIDER["id"]) != PROVIDER["id"]:
            raise bad_request(f"provider_id must be {PROVIDER['id']} (GET /v1/secret-provider)")
        owner_type, owner_id = body.get("owner_type", "algorithm"), body.get("owner_id", algorithm_id)
        if owner_type != "algorithm" or owner_id != algorithm_id:
            raise bad_request("owner_type must be algorithm and owner_id this algorithm's id")
        secrets = self._read(algorithm_id)
        old = next((s for s in secrets if s["secret_key"] == key), None)
        if old is None and len(secrets) >= MAX_SECRETS:
            raise bad_request(f"an algorithm has at most {MAX_SECRETS} secrets")
        secret = {"id": old["id"] if old else str(uuid.uuid4()), "short_name": short_name,
                  "description": description, "secret_key": key, "owner_type": "algorithm",
                  "owner_id": algorithm_id, "provider_id": PROVIDER["id"],
                  "created": old["created"] if old else now, "updated": now, "value": value}
        self._write(algorithm_id, [s for s in secrets if s is not old] + [secret])
        return _public(secret)

    def environment(self, algorithm_id: str) -> dict[str, str]:
        """What a worker of this algorithm starts with: ``{secret_key: value}``."""
        try:
            return {s["secret_key"]: s["value"] for s in self._read(algorithm_id)}
        except ApiError:
            return {}
