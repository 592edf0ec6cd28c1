"""``algofs serve``: the embedded Algorithmia-compatible API server."""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

from ..sizes import parse_size
from .access_log import DEFAULT_LOG_MAX_BYTES, LOG_BACKUPS
from .algo_cgroups import OwnerCaps
from .algo_sandbox import SandboxPolicy

DEFAULT_PORT = 8899
DEFAULT_ROOT = Path.home() / ".local" / "share" / "algofs" / "serve"
KEY_ENV = "ALGOFS_SERVE_API_KEY"


def add_commands(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "serve", help="run the embedded Algorithmia-compatible API server",
        description="Serve the Algorithmia Data and Algorithm APIs from a local directory (docs/server.md).",
    )
    add = parser.add_argument
    add("--root", type=Path, default=DEFAULT_ROOT, help=f"data directory (default {DEFAULT_ROOT})")
    add("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    add("--port", type=int, default=DEFAULT_PORT, help=f"port, 0 = any free one (default {DEFAULT_PORT})")
    add("--user", help=f"name of the single user (with --api-key or ${KEY_ENV})")
    add("--api-key", help=f"that user's API key; prefer ${KEY_ENV}, argv is visible to other users")
    add("--users-file", type=Path, help="JSON or TOML mapping user names to API keys")
    add("--demo", action="store_true", help="load the demo content and demo users into the root")
    add("--demo-large-file-mb", type=int, default=None, metavar="N",
        help="size of data://demo/large/large.bin made by --demo (sparse; default 1024, 0 = none)")
    add("--storage", metavar="URL", default=None,
        help="where the hosted data lives: s3://BUCKET[/PREFIX] (default: ROOT/data on disk); "
             "credentials the standard AWS ways (env, ~/.aws, AWS_PROFILE), never on the command line")
    add("--s3-endpoint", metavar="URL", default=None,
        help="S3 endpoint for --storage (default: AWS, or AWS_ENDPOINT_URL_S3 / the AWS config file)")
    add("--s3-region", metavar="R", default=None, help="S3 region for --storage (default: AWS config)")
    add("--demo-many-files", type=int, default=None, metavar="N",
        help="files in data://demo/many_files made by --demo (default 5000; an S3 bucket takes ~200 PUTs/s)")
    add("--ready-file", type=Path, help="write {url, port, pid} as JSON here once listening")
    add("--log-level", default="INFO", help="logging level (default INFO)")
    add("--log-file", type=Path, help="log here instead of stderr, rotated at --log-max-bytes")
    add("--log-max-bytes", type=int, default=DEFAULT_LOG_MAX_BYTES, metavar="N",
        help=f"rotate --log-file at this size, keeping {LOG_BACKUPS} old files "
             f"(default {DEFAULT_LOG_MAX_BYTES})")
    add("--allowed-host", action="append", default=[], metavar="NAME",
        help="a Host header to answer besides 127.0.0.1, localhost, [::1] and --host (repeatable; the name "
             "clients use behind a proxy or a Kubernetes Service; '*' = any, which gives up the DNS "
             "rebinding check)")
    add("--admin", action="append", default=[], metavar="USER",
        help="a user who may call the admin API: create users and organizations (repeatable)")
    add("--organizations-file", type=Path, metavar="FILE",
        help="JSON organizations and their members kept by JupyterHub, re-read on change (docs/server.md)")
    add_algorithm_arguments(parser)
    add_quota_arguments(parser)
    parser.set_defaults(func=run_serve)


def add_algorithm_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of algorithm execution (docs/server.md, "Algorithms")."""
    add = parser.add_argument
    add("--executor", default="local", metavar="local|dask://HOST:PORT",
        help="where algorithm calls run: local warm workers (default) or a Dask distributed scheduler")
    add("--sandbox", default="auto", choices=["auto", "bwrap", "none"],
        help="isolation of algorithm workers (auto: bubblewrap when it works here)")
    add("--max-calls-per-user", type=int, default=8, metavar="N",
        help="concurrent algorithm calls per user before 429 (default 8)")
    add("--max-calls", type=int, default=32, metavar="N",
        help="concurrent algorithm calls overall before 429 (default 32)")
    add("--max-workers", type=int, default=8, metavar="N", help="warm worker processes overall (default 8)")
    add("--worker-idle-seconds", type=float, default=300.0, metavar="S",
        help="reap workers idle this long (default 300)")
    add("--worker-nice", type=int, default=10, choices=range(20), metavar="N",
        help="run algorithm workers this much nicer than the server (default 10; 0: same priority)")
    caps = OwnerCaps()
    add("--owner-max-processes", type=int, default=caps.processes, metavar="N",
        help=f"tasks of all of one owner's algorithm workers together (cgroup; default {caps.processes}, "
             "0 = no cap)")
    add("--owner-max-memory", type=parse_size, default=caps.memory_bytes, metavar="SIZE",
        help="memory of all of one owner's workers together, their /tmp included (cgroup; default 1G)")
    add("--owner-cpus", type=float, default=caps.cpus, metavar="N",
        help=f"CPU bandwidth of one owner's workers together, in cores (cgroup; default {caps.cpus:g})")
    add("--owner-caps-file", type=Path, metavar="FILE",
        help="JSON per-owner caps overriding those three, re-read on change (docs/server.md)")
    add("--owner-caps", default="auto", choices=["auto", "none"],
        help="enforce owner caps with cgroups (auto: v2 delegated or root, v1 as root; none: off)")
    add("--owner-caps-cgroup", metavar="PATH",
        help="a cgroup delegated to this server, relative to the hierarchy root (e.g. algofs): where a "
             "non-root server makes the owners' cgroups (default: its own cgroup; docs/deploy.md)")
    add("--worker-scratch", type=parse_size, default=SandboxPolicy.scratch_bytes, metavar="SIZE",
        help="size of each worker's private /tmp (default 256M)")
    add("--allow-unisolated-algorithms", action="store_true",
        help="on a server with several users, run algorithms even where the sandbox or the owner caps "
             "cannot be enforced here (otherwise calls and builds answer 503 and /healthz says why)")


def collect_users(args: argparse.Namespace) -> dict[str, str]:
    from .users import DEMO_USERS, load_users_file

    # The published demo keys only for a bare `--demo` run by hand: a user or users file replaces them.
    demo_keys = args.demo and not args.users_file and not args.user
    users: dict[str, str] = dict(DEMO_USERS) if demo_keys else {}
    if args.users_file:
        users.update(load_users_file(args.users_file))
    key = args.api_key or os.environ.get(KEY_ENV)
    if args.user:
        if not key:
            raise SystemExit(f"algofs serve: --user needs --api-key or ${KEY_ENV}")
        users[args.user] = key
    elif args.api_key:
        raise SystemExit("algofs serve: --api-key needs --user")
    if not users and not args.users_file:
        raise SystemExit("algofs serve: no users: give --user/--api-key, --users-file or --demo")
    return users


def algorithm_options(args: argparse.Namespace, multi_user: bool = True):
    from .algo_pool import PoolLimits
    from .algo_services import AlgorithmOptions

    pool = PoolLimits(total=args.max_workers, per_user=max(1, min(args.max_workers, 6)),
                      per_algorithm=max(1, min(args.max_workers, 4)), idle_seconds=args.worker_idle_seconds)
    secrets = tuple(p.expanduser().resolve() for p in [args.users_file, args.log_file, args.owner_caps_file,
                                                       args.organizations_file] if p is not None)
    caps = OwnerCaps(processes=args.owner_max_processes, memory_bytes=args.owner_max_memory,
                     cpus=args.owner_cpus)
    return AlgorithmOptions(executor=args.executor, sandbox=args.sandbox,
                            max_calls_per_user=args.max_calls_per_user, max_calls=args.max_calls, pool=pool,
                            secret_paths=secrets, worker_nice=args.worker_nice, owner_caps=caps,
                            caps_file=args.owner_caps_file, cgroups=args.owner_caps,
                            cgroup_parent=args.owner_caps_cgroup,
                            scratch_bytes=args.worker_scratch, multi_user=multi_user,
                            allow_unisolated=args.allow_unisolated_algorithms)


def add_quota_arguments(parser: argparse.ArgumentParser) -> None:
    """Per-user storage quotas of the hosted data (docs/server.md, "Storage quotas")."""
    from .quota import DEFAULT_LIMITS, parse_byte_limit, parse_file_limit

    add = parser.add_argument
    add("--quota-bytes", type=parse_byte_limit, default=DEFAULT_LIMITS.bytes, metavar="SIZE",
        help="how much each user's data:// may hold, e.g. 10G (default: unlimited)")
    add("--quota-files", type=parse_file_limit, default=DEFAULT_LIMITS.files, metavar="N",
        help="how many files and folders each user's data:// may hold (default: unlimited)")
    add("--quotas-file", type=Path, metavar="FILE",
        help="JSON per-user quotas overriding those two, re-read on change (docs/server.md)")


def quota_table(args: argparse.Namespace):
    from .quota import QuotaLimits, QuotaTable

    try:
        return QuotaTable(QuotaLimits(args.quota_bytes, args.quota_files), args.quotas_file)
    except ValueError as exc:
        raise SystemExit(f"algofs serve: --quotas-file: {exc}") from exc


def run_serve(args: argparse.Namespace) -> int:
    from .access_log import configure_logging
    from .app import serve_forever
    from .demo.seed import DEFAULT_LARGE_FILE_MB, MANY_FILES, seed
    from .storage.select import StorageConfig
    from .users import multi_user_server

    configure_logging(args.log_level, args.log_file, args.log_max_bytes)
    users = collect_users(args)
    root = args.root.expanduser().resolve()
    storage = StorageConfig(args.storage, args.s3_endpoint, args.s3_region)
    try:
        storage.validate()
    except ValueError as exc:
        raise SystemExit(f"algofs serve: --storage: {exc}") from exc
    if args.demo:
        large = DEFAULT_LARGE_FILE_MB if args.demo_large_file_mb is None else args.demo_large_file_mb
        many = MANY_FILES if args.demo_many_files is None else args.demo_many_files
        seed(root, large_file_mb=large, many_files=many)
        if storage.is_s3:
            from .demo.seed import seed_storage
            from .storage.select import hosted_storage

            seed_storage(root, hosted_storage(root, storage))
    asyncio.run(serve_forever(root, users, args.host, args.port, args.ready_file,
                              users_file=args.users_file, allowed_hosts=args.allowed_host,
                              algorithm_options=algorithm_options(args, multi_user_server(users,
                                                                                          args.users_file)),
                              storage=storage, quotas=quota_table(args), admins=frozenset(args.admin),
                              organizations_file=args.organizations_file))
    return 0
