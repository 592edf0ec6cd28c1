"""``MountOptions``: every tunable of a mount and its default, in one place.

The same dataclass builds the ``algofs mount`` flags (``add_arguments``/``from_arguments``), the argv of a
child daemon (``MountProcess`` → ``argv``), the daemon's status report (``as_status``) and the Jupyter
layer's defaults (``JUPYTER_DEFAULTS``). A new option is one field here, with its flag help in ``metadata``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..sizes import parse_size as parse_size  # the flags' size parser (commands.py imports it from here)


def cache_home() -> Path:
    """``$XDG_CACHE_HOME``, else ``~/.cache`` (read at call time: tests and Jupyter set it per process)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")


def default_cache_dir() -> Path:
    return cache_home() / "algofs"


def _flag(help: str, **argparse_options: Any) -> dict[str, Any]:
    return {"help": help, "argparse": argparse_options}


@dataclass(frozen=True)
class MountOptions:
    cache_dir: Path = field(default_factory=default_cache_dir, metadata=_flag(
        "block cache, write staging and recovery folder", type=Path))
    cache_size: int = field(default=10 << 30, metadata=_flag("block cache cap (e.g. 10G)", type=parse_size))
    metadata_ttl: float = field(default=60.0, metadata=_flag(
        "seconds attributes/listings are trusted (also the kernel attr/entry timeout)", type=float))
    negative_ttl: float = field(default=5.0, metadata=_flag(
        "seconds a 'no such file' is trusted", type=float))
    timeout: float = field(default=8.0, metadata=_flag(
        "seconds before an API operation fails with EIO (retries included)", type=float))
    block_size: int = field(default=8 << 20, metadata=_flag("bytes per ranged GET", type=parse_size))
    readahead_blocks: int = field(default=4, metadata=_flag(
        "blocks prefetched on sequential reads", type=int))
    connectors: tuple[str, ...] = field(default=(), metadata=_flag(
        "connector id to show in the root (e.g. dropbox+work); repeatable", action="append",
        dest="connector"))
    algo_timeout: float = field(default=300.0, metadata=_flag(
        "seconds an algorithm call via /algorithms may run (per call: NAME@timeout=S)", type=float))
    consistency: str = field(default="ttl", metadata=_flag(
        "ttl: open and read without a request while the attributes are fresh (--metadata-ttl); "
        "strict: revalidate every open with a HEAD (close-to-open)", choices=["ttl", "strict"]))
    small_file_size: int = field(default=1 << 20, metadata=_flag(
        "files up to this size are fetched whole with one GET (and prefetched)", type=parse_size))
    prefetch_files: int = field(default=64, metadata=_flag(
        "files of a directory fetched ahead of a reader that reads its files one after another "
        "(0 = off)", type=int))
    prefetch_memory: int = field(default=64 << 20, metadata=_flag(
        "bytes of whole small files held in memory (prefetched or recently read)", type=parse_size))
    inode_soft_limit: int = field(default=100_000, metadata=_flag(
        "paths the kernel and libfuse may hold nodes for; past it the least recently used are invalidated "
        "(0: no limit)", type=int))
    read_only: bool = field(default=False, metadata=_flag(
        "a read-only mount for data loaders: once a file's bytes are in the kernel's page cache, opening, "
        "reading and closing it again asks the daemon nothing (FUSE no-open); writes fail with EROFS and "
        "/algorithms is absent; needs --consistency ttl (docs/filesystem.md, 'Read-only mounts')",
        action="store_true"))
    allow_other: bool = field(default=False, metadata=_flag("let other users access the mount",
                                                            action="store_true"))
    debug: bool = field(default=False, metadata=_flag("libfuse debug output", action="store_true"))
    write_back: float = field(default=0.0, metadata=_flag(
        "seconds after a file's last close() before it is uploaded (0: upload at close, so close() "
        "returning 0 means the bytes are on the server; > 0: close() returns once they are staged "
        "locally, fsync() still uploads at once; see docs/filesystem.md)", type=float))
    no_local_reads: bool = field(default=False, metadata=_flag(
        "never read a large file from the server's own file (the local-reads extension of a server on "
        "this machine, docs/api-extensions.md §13): every read goes over HTTP through the block cache",
        action="store_true"))
    no_extensions: bool = field(default=False, metadata=_flag(
        "never use the server's API extensions (whole-file uploads, no server-side move or mtimes, as "
        "against the hosted API)", action="store_true"))

    def conflict(self) -> str | None:
        """Why these options cannot go together, or None."""
        if self.read_only and self.consistency == "strict":
            return ("--read-only serves repeated opens from the kernel's caches without asking the daemon; "
                    "--consistency strict needs every open to reach it")
        return None

    def with_overrides(self, **overrides: Any) -> MountOptions:
        """A copy with the given fields changed; None means "keep the default" (unknown names: TypeError)."""
        unknown = set(overrides) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise TypeError(f"unknown mount options: {sorted(unknown)}")
        changes = {name: value for name, value in overrides.items() if value is not None}
        if "cache_dir" in changes:
            changes["cache_dir"] = Path(changes["cache_dir"])
        if "connectors" in changes:
            changes["connectors"] = tuple(changes["connectors"])
        return dataclasses.replace(self, **changes)

    def argv(self) -> list[str]:
        """The ``algofs mount`` flags that reproduce these options (``--cache-dir`` always, others when
        they differ from the default)."""
        defaults = MountOptions()
        args = ["--cache-dir", str(self.cache_dir)]
        for spec in dataclasses.fields(self):
            value = getattr(self, spec.name)
            if spec.name == "cache_dir" or value == getattr(defaults, spec.name):
                continue
            flag = _flag_name(spec.name)
            if spec.name == "connectors":
                for cid in value:
                    args += ["--connector", cid]
            elif isinstance(value, bool):
                args.append(flag)
            else:
                args += [flag, str(value)]
        return args

    @classmethod
    def from_arguments(cls, args: argparse.Namespace) -> MountOptions:
        values = {spec.name: getattr(args, spec.metadata["argparse"].get("dest", spec.name))
                  for spec in dataclasses.fields(cls)}
        return cls().with_overrides(**values)

    def as_status(self) -> dict[str, Any]:
        """What ``algofs status`` shows under ``options`` (docs/control.md): every field, as JSON values."""
        values = dataclasses.asdict(self)
        values["cache_dir"] = str(self.cache_dir)
        values["connectors"] = list(self.connectors)
        return values


#: A notebook server's mount shares the disk with the kernels' own data: a smaller cache cap by default
#: (docs/jupyter.md); every other default is the CLI's.
JUPYTER_DEFAULTS = MountOptions(cache_size=2 << 30)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per ``MountOptions`` field, with the field's default."""
    defaults = MountOptions()
    for spec in dataclasses.fields(MountOptions):
        options = dict(spec.metadata["argparse"])
        default = getattr(defaults, spec.name)
        options["default"] = list(default) if isinstance(default, tuple) else default
        parser.add_argument(_flag_name(spec.name), help=spec.metadata["help"], **options)


def _flag_name(name: str) -> str:
    return "--" + ("connector" if name == "connectors" else name.replace("_", "-"))
