"""``algofs mount`` / ``unmount`` / ``status`` / ``recover``.

The API key comes from ``ALGORITHMIA_API_KEY`` or ``--api-key-file`` (never from argv, which ``ps``
shows to everyone); the API address from ``--api-address`` or ``ALGORITHMIA_API``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

from .options import MountOptions, add_arguments, default_cache_dir, parse_size

__all__ = ["add_commands", "parse_size", "read_api_key"]

def read_api_key(args: argparse.Namespace) -> str | None:
    if getattr(args, "api_key_file", None):
        return Path(args.api_key_file).read_text().strip() or None
    return os.environ.get("ALGORITHMIA_API_KEY") or None


def _api_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--api-address", default=os.environ.get("ALGORITHMIA_API"),
                        help="API base URL (default: $ALGORITHMIA_API)")
    parser.add_argument("--api-key-file", help="file holding the API key (default: $ALGORITHMIA_API_KEY)")


def add_commands(sub: argparse._SubParsersAction) -> None:
    mount = sub.add_parser("mount", help="mount Algorithmia data as a filesystem")
    mount.add_argument("mountpoint")
    _api_options(mount)
    mount.add_argument("--foreground", action="store_true", help="stay attached (default: run in background)")
    add_arguments(mount)
    mount.add_argument("--log-file", help="daemon log (background mode)")
    mount.set_defaults(func=cmd_mount)

    unmount = sub.add_parser("unmount", help="unmount an algofs mount")
    unmount.add_argument("mountpoint")
    unmount.set_defaults(func=cmd_unmount)

    status = sub.add_parser("status", help="state, cache and uploads of algofs mounts")
    status.add_argument("mountpoint", nargs="?")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=cmd_status)

    recover = sub.add_parser("recover", help="list (and re-upload) bytes whose upload failed")
    recover.add_argument("--cache-dir", type=Path, default=default_cache_dir())
    recover.add_argument("--upload", action="store_true", help="upload every entry, delete it on success")
    recover.add_argument("--json", action="store_true")
    _api_options(recover)
    recover.set_defaults(func=cmd_recover)


def cmd_mount(args: argparse.Namespace) -> int:
    api_key = read_api_key(args)
    options = MountOptions.from_arguments(args)
    conflict = options.conflict()
    if conflict is not None:
        print(f"algofs mount: {conflict}", file=sys.stderr)
        return 2
    if args.foreground:
        from .daemon import MountDaemon

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        from ..parent_watch import watch_parent

        watch_parent()
        return MountDaemon(args.mountpoint, args.api_address, api_key, options).run()
    from .mount_process import MountProcess

    if not args.api_address:
        print("algofs mount: --api-address or $ALGORITHMIA_API is required", file=sys.stderr)
        return 2
    process = MountProcess(args.mountpoint, args.api_address, api_key, options=options,
                           log_file=args.log_file,
                           exit_with_parent=False)  # the daemon outlives this command by design
    try:
        process.start()
    except (RuntimeError, TimeoutError) as exc:
        print(f"algofs mount: {exc}", file=sys.stderr)
        return 1
    print(f"mounted {process.mountpoint} (daemon pid {process.pid}, log {process.log_path})")
    return 0


def cmd_unmount(args: argparse.Namespace) -> int:
    from .mount_process import cleanup_stale, fusermount, is_mounted

    if cleanup_stale(args.mountpoint):
        print(f"removed stale mount {args.mountpoint}")
        return 0
    if not is_mounted(args.mountpoint):
        print(f"algofs unmount: {args.mountpoint} is not an algofs mount", file=sys.stderr)
        return 1
    result = fusermount(args.mountpoint)
    if result.returncode != 0:
        print(f"algofs unmount: {result.stderr.strip()}", file=sys.stderr)
        return 1
    return 0


def _summary(status: dict) -> str:
    cache, uploads, backend = status["cache"], status["uploads"], status["backend"]
    ratio = cache.get("hit_ratio")
    lines = [
        f"{status['mountpoint']}: {status['state']} "
        f"(pid {status['pid']}, user {status.get('username') or '?'})",
        f"  api: {status['api_address']} ({'reachable' if backend['reachable'] else 'DOWN'}"
        + (f", last error: {backend['last_error']}" if backend.get("last_error") else "") + ")",
        f"  cache: {cache['size_bytes'] / 2**20:.1f} MiB of {cache['limit_bytes'] / 2**20:.0f} MiB, "
        f"{cache.get('blocks', 0)} blocks, hits {cache['hits']}, misses {cache['misses']}"
        + (f" ({ratio:.0%})" if ratio is not None else "")
        + f", fetched {cache['bytes_fetched'] / 2**20:.1f} MiB",
        f"  uploads: {uploads['in_flight']} in flight, {uploads['done']} done, {uploads['failed']} failed, "
        f"{uploads['recovery']} in recovery ({status['recovery']['directory']})",
    ]
    return "\n".join(lines)


def cmd_status(args: argparse.Namespace) -> int:
    from . import control
    from .mount_table import algofs_mounts, mount_path

    mounts = [mount_path(args.mountpoint)] if args.mountpoint else algofs_mounts()
    results, code = [], 0
    for mountpoint in mounts:
        try:
            results.append(control.query(mountpoint, "status"))
        except (ConnectionError, RuntimeError, OSError) as exc:
            results.append({"mountpoint": mountpoint, "state": "unreachable", "error": str(exc)})
            code = 1
    if args.json:
        print(json.dumps(results[0] if args.mountpoint else results, indent=2))
    elif not results:
        print("no algofs mounts")
    else:
        for status in results:
            print(_summary(status) if status["state"] in ("mounted", "starting")
                  else f"{status['mountpoint']}: {status['state']} ({status.get('error')})")
    return code


def cmd_recover(args: argparse.Namespace) -> int:
    from .claims import salvage_staging
    from .recovery import RecoveryStore

    store = RecoveryStore(args.cache_dir)
    salvage_staging(args.cache_dir / "staging", store)  # a crashed daemon's unsent files, if any
    entries = store.entries()
    if not args.upload:
        if args.json:
            print(json.dumps([e.as_dict() for e in entries], indent=2))
        for entry in [] if args.json else entries:
            saved = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry.saved_at))
            print(f"{entry.id}  {entry.size:>12}  {saved}  {entry.path}  ({entry.error})")
        if not entries and not args.json:
            print(f"nothing to recover in {store.directory}")
        return 0
    from ..fs.data_api import DataClient

    api_key, failed = read_api_key(args), 0
    for entry in entries:
        client = DataClient(args.api_address or entry.api_address or None, api_key)
        try:
            store.upload(entry, client)
            print(f"uploaded {entry.path} ({entry.size} bytes)")
        except OSError as exc:
            failed += 1
            print(f"failed {entry.path}: {exc}", file=sys.stderr)
    return 1 if failed else 0
