"""POSIX metadata of one entry as the ``posix`` extension carries it (docs/api-extensions.md): full
st_mode, owner (None = unknown: the reader's own), times in nanoseconds (negative = before 1970), and a
symlink's target. Read from HEAD/GET headers (``X-Algofs-*``) and listing entries' ``posix`` objects.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

#: libc's UTIME_NOW / UTIME_OMIT: what libfuse passes as a time's nanoseconds for "now" / "leave as is".
UTIME_NOW, UTIME_OMIT = (1 << 30) - 1, (1 << 30) - 2


@dataclass(frozen=True, slots=True)
class Posix:
    mode: int  # type bits included (S_IFREG / S_IFDIR / S_IFLNK)
    uid: int | None
    gid: int | None
    mtime_ns: int
    atime_ns: int
    ctime_ns: int
    target: str | None = None  # a symlink's

    @property
    def is_link(self) -> bool:
        return stat.S_ISLNK(self.mode)

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.mode)

    @classmethod
    def from_json(cls, body: Any, target: Any = None) -> Posix | None:
        """A listing entry's or a setattr answer's ``posix`` object; None when absent or malformed."""
        if not isinstance(body, dict):
            return None
        try:
            mtime = int(body["mtime_ns"])
            link = body.get("target", target)
            return cls(
                int(body["mode"]),
                _optional_int(body.get("uid")),
                _optional_int(body.get("gid")),
                mtime,
                int(body.get("atime_ns", mtime)),
                int(body.get("ctime_ns", mtime)),
                str(link) if link is not None else None,
            )
        except (KeyError, TypeError, ValueError):
            return None

    @classmethod
    def from_headers(cls, headers: Any) -> Posix | None:
        """HEAD/GET's ``X-Algofs-Mode`` (octal), ``-Uid``, ``-Gid``, ``-Mtime-Ns``, ``-Atime-Ns``,
        ``-Ctime-Ns`` and ``-Link-Target`` (percent-encoded); None when the server sent no mode."""
        mode = headers.get("X-Algofs-Mode")
        if not mode:
            return None
        try:
            mtime = int(headers["X-Algofs-Mtime-Ns"])
            target = headers.get("X-Algofs-Link-Target")
            return cls(
                int(mode, 8),
                _optional_int(headers.get("X-Algofs-Uid")),
                _optional_int(headers.get("X-Algofs-Gid")),
                mtime,
                int(headers.get("X-Algofs-Atime-Ns") or mtime),
                int(headers.get("X-Algofs-Ctime-Ns") or mtime),
                unquote(target, errors="surrogateescape") if target is not None else None,
            )
        except (KeyError, TypeError, ValueError):
            return None


def _optional_int(value: Any) -> int | None:
    return None if value is None or value == "" else int(value)


def seconds(ns: int) -> float:
    """Nanoseconds as float seconds exactly as ``os.stat`` computes ``st_mtime`` (whole seconds plus the
    rest times 1e-9), so a time from the server compares equal to the same time stat'ed on the mount;
    ``ns / 1e9`` differs in the last bits."""
    whole, rest = divmod(ns, 1_000_000_000)
    return whole + rest * 1e-9

