"""``%algofs`` line magics and the ``%%algofs pipe`` / ``%%algofs publish`` cell magics.

Bad arguments raise a one-line ``UsageError``; algorithm failures raise :class:`AlgofsError`, which IPython
shows as a single line instead of a traceback.
"""

from __future__ import annotations

import argparse
import html
import json
import shlex
from pathlib import Path

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
from IPython.display import HTML, Image, display

from ..names import name_refusal
from . import algorithm_calls, formatting
from .algorithm_calls import AlgorithmFailed, UsageProblem
from .files import Reader, normalise
from .kernel_access import get_access
from .loader_mount import loader_mount

USAGE = (
    "%algofs mount [PATH] | unmount [--force] | status | cache [clear] | ls [PATH] | cat PATH"
    " | prefetch PATH | widget | loader [PATH] [--unmount];"
    "  %%algofs pipe user/algo[/version] [--out VAR] [--json|--text|--binary] [--timeout S];"
    "  %%algofs publish user/algo [--version major|minor|revision]"
)
CELL_COMMANDS = ("pipe", "publish")


class AlgofsError(Exception):
    """A failure worth one line, not a traceback (algorithm errors, API unreachable)."""

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self}"]


class AlgorithmError(AlgofsError):
    pass


class BuildFailed(AlgofsError):
    """The published cell did not build: shown as the build log, not as a traceback."""

    def _render_traceback_(self) -> list[str]:
        return str(self).splitlines()


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        raise UsageError(f"{message}. Usage: {USAGE}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="%algofs", add_help=False)
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    mount = sub.add_parser("mount", add_help=False)
    mount.add_argument("path", nargs="?")
    unmount = sub.add_parser("unmount", add_help=False)
    unmount.add_argument("--force", action="store_true")
    sub.add_parser("status", add_help=False)
    cache = sub.add_parser("cache", add_help=False)
    cache.add_argument("action", nargs="?", choices=["clear"])
    ls = sub.add_parser("ls", add_help=False)
    ls.add_argument("path", nargs="?", default="")
    cat = sub.add_parser("cat", add_help=False)
    cat.add_argument("path")
    prefetch = sub.add_parser("prefetch", add_help=False)
    prefetch.add_argument("path")
    sub.add_parser("widget", add_help=False)
    loader = sub.add_parser("loader", add_help=False)
    loader.add_argument("path", nargs="?")
    loader.add_argument("--unmount", action="store_true")
    pipe = sub.add_parser("pipe", add_help=False)
    pipe.add_argument("algorithm")
    pipe.add_argument("--out", metavar="VAR")
    kind = pipe.add_mutually_exclusive_group()
    for name in algorithm_calls.CONTENT_TYPES:
        kind.add_argument(f"--{name}", dest="content_type", action="store_const", const=name)
    pipe.add_argument("--timeout", type=float, metavar="S")
    publish = sub.add_parser("publish", add_help=False)
    publish.add_argument("algorithm")
    publish.add_argument("--version", default="minor", choices=["major", "minor", "revision"])
    return parser


@magics_class
class AlgofsMagics(Magics):
    parser = build_parser()

    @no_var_expand
    @line_cell_magic
    def algofs(self, line: str, cell: str | None = None):
        """AlgoFS: mount, browse and cache Algorithmia data; pipe cells to algorithms. See ``%algofs?``."""
        try:
            words = shlex.split(line)
        except ValueError as exc:
            raise UsageError(f"{exc}. Usage: {USAGE}") from None
        args = self.parser.parse_args(words or ["status"])
        if (cell is None) == (args.command in CELL_COMMANDS):
            raise UsageError(
                "pipe and publish are cell magics (%%algofs pipe …); the others are line magics (%algofs …)"
            )
        handler = getattr(self, f"_cmd_{args.command}")
        try:
            return handler(args, cell)
        except (UsageError, AlgofsError):
            raise
        except UsageProblem as exc:
            raise UsageError(str(exc)) from None
        except AlgorithmFailed as exc:
            raise AlgorithmError(f"{args.algorithm}: {exc.message}") from None
        except OSError as exc:
            refusal = _name_refusal_in(getattr(args, "path", None) or "")
            if refusal:  # the API can't carry it: say the rule, not only "no such file" or the server's words
                raise AlgofsError(f"{args.path}: {refusal}") from None
            if isinstance(exc, FileNotFoundError):
                raise AlgofsError(f"no such file or directory: {exc.filename or exc}") from None
            raise AlgofsError(str(exc)) from None
        except RuntimeError as exc:
            raise AlgofsError(str(exc)) from None

    # ----- mount state -------------------------------------------------------------------------------
    def _cmd_mount(self, args, cell):
        formatting.show_status(get_access().mount(args.path))

    def _cmd_unmount(self, args, cell):
        formatting.show_status(get_access().unmount(force=args.force))

    def _cmd_status(self, args, cell):
        formatting.show_status(get_access().status())
        loader = loader_mount().status()
        if loader["mounted"]:
            print(f"loader mount (read-only, this kernel's): {loader['mountpoint']}")

    def _cmd_cache(self, args, cell):
        access = get_access()
        stats = access.clear_cache() if args.action == "clear" else access.cache_stats()
        status = access.status()
        if status["mode"] == "fallback":
            print(f"fallback mode ({status['reason']}): no mount, no block cache; reads go to the API")
        formatting.show_cache(stats)

    def _cmd_loader(self, args, cell):
        """A read-only mount for data loaders, owned by this kernel (jupyter/loader_mount.py)."""
        loader = loader_mount()
        if args.unmount:
            if args.path:
                raise UsageError("%algofs loader --unmount takes no path")
            was = loader.status()
            loader.unmount()
            print(f"unmounted {was['mountpoint']}" if was["mounted"] else "no loader mount in this kernel")
            return None
        status = loader.mount(get_access().endpoint(), args.path)
        print(f"read-only loader mount at {status['mountpoint']}: data/ as on the main mount; repeated opens "
              "are served by the kernel's page cache without the daemon; writes fail (EROFS). It ends "
              "with this kernel (%algofs loader --unmount ends it sooner).")
        return None

    def _cmd_widget(self, args, cell):
        from .widget import AlgofsWidget

        return AlgofsWidget()

    # ----- files -------------------------------------------------------------------------------------
    def _reader(self) -> Reader:
        access = get_access()
        return Reader(access.mounted_path(), access.filesystem)

    def _cmd_ls(self, args, cell):
        reader = self._reader()
        path = normalise(args.path, reader.mountpoint)
        entries = reader.ls(path)
        formatting.show_listing(path, entries, reader.via)

    def _cmd_cat(self, args, cell):
        reader = self._reader()
        data = reader.read(normalise(args.path, reader.mountpoint))
        formatting.show_bytes(data, args.path)

    def _cmd_prefetch(self, args, cell):
        reader = self._reader()
        path = normalise(args.path, reader.mountpoint)
        files = reader.files_under(path)
        total = sum(size for _name, size in files) or 1
        bar = formatting.ProgressDisplay(f"prefetch {path or '/'}", total)
        done = reader.prefetch(files, bar.update)  # a few files at once: small files are latency-bound
        bar.finish(f"prefetched {len(files)} file(s), {formatting.human_bytes(done)} via {reader.via}")

    # ----- pipe --------------------------------------------------------------------------------------
    def _cmd_pipe(self, args, cell: str):
        content_type = args.content_type or "text"
        if args.out is not None and not args.out.isidentifier():
            raise UsageError(f"--out needs a Python variable name, got {args.out!r}")
        body = cell if content_type != "text" else cell.rstrip("\n")
        data: str | bytes = body
        if content_type == "binary":
            data = self._binary_input(cell)
        value = algorithm_calls.decode_input(data, content_type)
        result = get_access().pipe(args.algorithm, value, args.timeout)
        if args.out:
            if self.shell is None:  # a magic is always run by a shell; Magics types it as optional
                raise UsageError("--out needs an IPython shell")
            self.shell.user_ns[args.out] = result.result
        show_pipe_result(result)

    def _cmd_publish(self, args, cell: str):
        from algofs_jupyter.publish import PublishError, publish

        try:
            result = publish(args.algorithm, cell, args.version)
        except PublishError as exc:
            raise AlgofsError(str(exc)) from None
        if not result.ok:
            raise BuildFailed(str(result))
        print(result)

    def _binary_input(self, cell: str) -> bytes:
        """``--binary``: a cell naming an existing file sends the file's bytes, else the cell text."""
        candidate = cell.strip()
        if candidate and "\n" not in candidate:
            access = get_access()
            mountpoint = access.mounted_path()
            for path in (Path(candidate).expanduser(), (mountpoint / candidate) if mountpoint else None):
                if path is not None and path.is_file():
                    return path.read_bytes()
        return cell.encode()


def _name_refusal_in(path: str) -> str | None:
    """The rule a segment of ``path`` (``data://…``, ``data/…`` or a mount path) breaks, if one does."""
    _scheme, _sep, rest = path.rpartition("://")
    for segment in rest.split("/"):
        refusal = name_refusal(segment) if segment not in ("", ".", "..") else None
        if refusal:
            return refusal
    return None


def show_pipe_result(result: algorithm_calls.PipeResult) -> None:
    value = result.result
    if result.content_type == "json":
        display(
            {"application/json": value, "text/plain": json.dumps(value, indent=2, ensure_ascii=False)},
            raw=True,
        )
    elif result.content_type == "binary" and isinstance(value, (bytes, bytearray)):
        kind = formatting.image_format(bytes(value))
        if kind:
            display(Image(data=bytes(value), format=kind))
        else:
            display(HTML(f"<pre>{html.escape(formatting.hexdump(bytes(value)))}</pre>"))
    elif value is None:
        print("(no output)")
    else:
        print(value)


def load_ipython_extension(ipython) -> None:
    ipython.register_magics(AlgofsMagics)


def unload_ipython_extension(ipython) -> None:
    from .kernel_access import close_access

    close_access()
