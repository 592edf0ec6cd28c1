"""The ``algofs`` command line. Each component registers its own subcommands.

A component module exposes ``add_commands(subparsers)``; every subcommand sets ``func`` (called with the
parsed namespace, returning an exit code). Modules are imported lazily so a broken optional layer
(say, Jupyter) never stops ``algofs serve`` or ``algofs mount`` from working.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMAND_MODULES = (
    "algofs_jupyter.server.serve_command",  # serve
    "algofs_jupyter.mount.commands",  # mount, unmount, status, recover
    "algofs_jupyter.demo_cli",  # demo
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="algofs", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue  # component not built yet
            raise
        module.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
