"""Private directories and files: the one way the server, the mount and the extension make places of their own.

Why (issue 22): ``/tmp`` is world-writable and this machine kind has ``fs.protected_symlinks = 0``, so a
predictable name there (``/tmp/algofs-<uid>``, ``/tmp/algofs-code-<euid>``) can be created first by another
account, which then reads what we put there, swaps it, or points it elsewhere with a symlink. The rules:

- a directory we *create* is made new (``mkdir`` fails on an existing name, ``mkdtemp`` picks an unguessable
  one) with its final mode, so there is no window where it is open;
- a directory we *reuse* is checked with ``lstat`` (never following a link): a real directory owned by us;
  its mode is then fixed through a descriptor opened with ``O_NOFOLLOW``, never by path;
- nothing here recurses into, chowns or chmods a path another account controls.

``runtime_base()`` prefers ``$XDG_RUNTIME_DIR`` (per-user, 0700, made by the login manager) and falls back to
the temp directory, where only fresh ``mkdtemp`` names or owner-checked names are used.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import tempfile
from pathlib import Path

log = logging.getLogger("algofs.private_dirs")


class NotPrivate(PermissionError):
    """A path we were about to use belongs to another account, or is a link or not a directory."""


def _is_private_base(path: str) -> bool:
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o077


def runtime_base() -> Path:
    """``$XDG_RUNTIME_DIR`` when it is a private directory of ours, else the temp directory."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isabs(xdg) and _is_private_base(xdg):
        return Path(xdg)
    return Path(tempfile.gettempdir())


def check_private_dir(path: str | os.PathLike, mode: int = 0o700) -> Path:
    """Accept an existing directory only if it is a real directory (not a link) owned by us, and set its
    mode to ``mode`` through a descriptor; raises :class:`NotPrivate` otherwise."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if os.path.islink(path):
            raise NotPrivate(f"{path} is a symbolic link, not a directory of ours") from exc
        raise
    try:
        st = os.fstat(fd)
        if st.st_uid != os.geteuid():
            raise NotPrivate(f"{path} belongs to uid {st.st_uid}, not to us (uid {os.geteuid()})")
        if stat.S_IMODE(st.st_mode) != mode:
            os.fchmod(fd, mode)
    finally:
        os.close(fd)
    return path


def ensure_private_dir(path: str | os.PathLike, mode: int = 0o700) -> Path:
    """``path`` as a private directory: created new with ``mode``, or an existing one checked to be ours.
    Its parent must exist (no ``parents=True``: every level would need the same check)."""
    path = Path(path)
    try:
        os.mkdir(path, mode)
    except FileExistsError:
        return check_private_dir(path, mode)
    os.chmod(path, mode)  # mkdir's mode is cut by the umask; just made by us, so not yet anyone else's
    return path


def fresh_private_dir(prefix: str, parent: str | os.PathLike | None = None, mode: int = 0o700) -> Path:
    """A new directory with an unguessable name under ``parent`` (default :func:`runtime_base`)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=os.fspath(parent) if parent else str(runtime_base())))
    if mode != 0o700:
        os.chmod(path, mode)
    return path


def private_runtime_dir(name: str) -> Path:
    """A per-user directory with a stable name other processes of ours can find: ``<runtime_base>/<name>``.

    When that name is taken by another account (squatted in a shared ``/tmp``), a fresh unguessable
    directory is used instead, with a warning: this process still works; a process looking for the stable
    name will not find it, which is the price of not trusting a squatter.
    """
    path = runtime_base() / name
    try:
        return ensure_private_dir(path)
    except (NotPrivate, NotADirectoryError) as exc:
        fresh = fresh_private_dir(f"{name}-")
        log.warning("%s; using %s instead", exc, fresh)
        return fresh


def private_file_opener(path: str, flags: int) -> int:
    """An ``opener=`` for ``open()``: new files are created 0600, and a link at the name is refused."""
    return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)


def make_file_private(path: str | os.PathLike) -> None:
    """Set an existing file of ours to 0600 (through a descriptor; a link at the name is refused)."""
    with contextlib.suppress(FileNotFoundError):
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            if os.fstat(fd).st_uid == os.geteuid():
                os.fchmod(fd, 0o600)
        finally:
            os.close(fd)
