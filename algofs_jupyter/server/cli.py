"""``algofs serve``: the embedded Algorithmia-compatible API server."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

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
    parser.set_defaults(func=run_serve)


def collect_users(args: argparse.Namespace) -> dict[str, str]:
    from .users import DEMO_USERS, load_users_file

    users: dict[str, str] = dict(DEMO_USERS) if args.demo else {}
    if args.users_file:
        users.update(load_users_file(args.users_file))
    key = args.api_key or os.environ.get(KEY_ENV)
    if args.user:
        if not key:
            raise SystemExit(f"algofs serve: --user needs --api-key or ${KEY_ENV}")
        users[args.user] = key
    elif args.api_key:
        raise SystemExit("algofs serve: --api-key needs --user")
    if not users:
        raise SystemExit("algofs serve: no users: give --user/--api-key, --users-file or --demo")
    return users


def run_serve(args: argparse.Namespace) -> int:
    from .app import serve_forever
    from .demo.seed import DEFAULT_LARGE_FILE_MB, MANY_FILES, seed
    from .storage.select import StorageConfig

    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
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
    asyncio.run(serve_forever(root, users, args.host, args.port, args.ready_file, storage))
    return 0
