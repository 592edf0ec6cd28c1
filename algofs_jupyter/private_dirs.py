"""Private directories and files: the one way the server, the mount and the extension make places of theirs.

Why (issue 22): ``/tmp`` is world-writable and this machine kind has ``fs.protected_symlinks = 0``, so a
predictable name there (``/tmp/algofs-<uid>``, ``/tmp/algofs-code-<euid>``) can be created first by another
account, which then reads what we put there, swaps it, or points it elsewhere with a symlink. The rules:

- a directory we *create* is made new (``mkdir`` fails on an existing name, ``mkdtemp`` picks an unguessable
  one) and given its final mode through a descriptor before anything goes in;
- a directory we *reuse* is checked with ``lstat``/``O_NOFOLLOW`` (never following a link): a real directory
  owned by us; its mode is then fixed through a descriptor opened with ``O_NOFOLLOW``, never by path;
- a file we log to is created 0600 (whatever the umask) and never opened through a link at its name;
- nothing here recurses into, chowns or chmods a path another account controls.

``runtime_base()`` prefers ``$XDG_RUNTIME_DIR`` (per-user, 0700, made by the login manager) and falls back to
the temp directory, where only fresh ``mkdtemp`` names or owner-checked names are used. A stable name that
another account took first is replaced by a fresh directory; ``private_runtime_dir(name, record=FILE)``
writes where that is into a file of ours, so other processes of ours find it (``find_runtime_dirs``).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import stat
import tempfile
from pathlib import Path

log = logging.getLogger("algofs.private_dirs")


class NotPrivate(PermissionError):
    """A path we were about to use belongs to another account, or is a link or not a directory."""


def _is_private_dir(path: str | os.PathLike) -> bool:
    """A real directory (not a link), owned by us, with no group or other permissions."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and not st.st_mode & 0o077


def runtime_base() -> Path:
    """``$XDG_RUNTIME_DIR`` when it is a private directory of ours, else the temp directory."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isabs(xdg) and _is_private_dir(xdg):
        return Path(xdg)
    return Path(tempfile.gettempdir())


def _why_not_ours(path: Path) -> NotPrivate | None:
    """The reason ``path`` (not followed) is not a directory of ours, or None if it is one."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if stat.S_ISLNK(st.st_mode):
        return NotPrivate(f"{path} is a symbolic link, not a directory of ours")
    if st.st_uid != os.geteuid():
        return NotPrivate(f"{path} belongs to uid {st.st_uid}, not to us (uid {os.geteuid()})")
    if not stat.S_ISDIR(st.st_mode):
        return NotPrivate(f"{path} is not a directory")
    return None


def check_private_dir(path: str | os.PathLike, mode: int = 0o700) -> Path:
    """Accept an existing directory only if it is a real directory (not a link) owned by us, and set its
    mode to ``mode`` through a descriptor; raises :class:`NotPrivate` otherwise."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:  # ELOOP (a link), ENOTDIR, EACCES (another account's 0700 directory) …
        reason = _why_not_ours(path)
        if reason is not None:
            raise reason from exc
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
    Its parent must exist (no ``parents=True``: every level would need the same check; see
    :func:`make_private_dirs`)."""
    path = Path(path)
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, mode)  # mkdir's mode is cut by the umask: check_private_dir sets the full one
    return check_private_dir(path, mode)


def make_private_dirs(path: str | os.PathLike, mode: int = 0o700, check_existing: bool = True) -> Path:
    """Like ``makedirs``, but every level it creates is new and gets ``mode`` (so no level we make is
    readable by others, whatever the umask). Levels that already exist above the last are left as they are
    (``$HOME``, ``/var/log``: not ours to judge or chmod). The last level, if it exists, is checked to be a
    directory of ours and set to ``mode`` (:func:`check_private_dir`), unless ``check_existing`` is False
    (a log file's directory an operator chose: used as it is)."""
    path = Path(os.path.abspath(os.fspath(path)))
    missing = []
    level = path
    while not os.path.lexists(level) and level.parent != level:
        missing.append(level)
        level = level.parent
    if not missing:
        return check_private_dir(path, mode) if check_existing else path
    for level in reversed(missing):  # each new, or (made meanwhile) checked to be ours
        ensure_private_dir(level, mode)
    return path


def fresh_private_dir(prefix: str, parent: str | os.PathLike | None = None, mode: int = 0o700) -> Path:
    """A new directory with an unguessable name under ``parent`` (default :func:`runtime_base`)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=os.fspath(parent) if parent else str(runtime_base())))
    if mode != 0o700:
        check_private_dir(path, mode)
    return path


def _read_record(handle: int) -> Path | None:
    """The directory named in an open record file, if it is still a private directory of ours."""
    os.lseek(handle, 0, os.SEEK_SET)
    text = os.read(handle, 4096).decode("utf-8", "surrogateescape").strip()
    if text and os.path.isabs(text) and _is_private_dir(text):
        return Path(text)
    return None


def _open_record(record: Path, flags: int) -> int:
    """Open a record file of ours (never through a link; a file of another account is refused)."""
    fd = os.open(record, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    if os.fstat(fd).st_uid != os.geteuid():
        os.close(fd)
        raise NotPrivate(f"{record} belongs to another account")
    return fd


def private_runtime_dir(name: str, record: str | os.PathLike | None = None) -> Path:
    """A per-user directory with a stable name other processes of ours can find: ``<runtime_base>/<name>``.

    When that name is taken by another account (squatted in a shared ``/tmp``), a fresh unguessable
    directory is used instead, with a warning: this process still works. Without ``record`` a process
    looking for the stable name will not find it, which is the price of not trusting a squatter. With
    ``record`` (a file in a private place of ours, e.g. the user's cache directory; its directory is made
    if missing) the fresh directory is written there, reused by later calls while it stays ours, and
    found by :func:`find_runtime_dirs`.
    """
    path = runtime_base() / name
    try:
        return ensure_private_dir(path)
    except (NotPrivate, NotADirectoryError) as exc:
        squatted = exc
    fd = None
    if record is not None:
        record = Path(record)
        try:
            make_private_dirs(record.parent)
            fd = _open_record(record, os.O_RDWR | os.O_CREAT)
        except OSError as exc:  # no home of ours to write to: still work, unfindable
            log.warning("can't record a runtime directory in %s: %s", record, exc)
    if fd is None:
        fresh = fresh_private_dir(f"{name}-")
        log.warning("%s; using %s instead", squatted, fresh)
        return fresh
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # two daemons starting at once agree on one directory
        recorded = _read_record(fd)
        if recorded is not None:
            log.info("%s; using %s (recorded in %s)", squatted, recorded, record)
            return recorded
        fresh = fresh_private_dir(f"{name}-")
        os.ftruncate(fd, 0)
        os.pwrite(fd, os.fsencode(str(fresh)) + b"\n", 0)
        os.fchmod(fd, 0o600)
        log.warning("%s; using %s instead (recorded in %s)", squatted, fresh, record)
        return fresh
    finally:
        os.close(fd)


def find_runtime_dirs(name: str, record: str | os.PathLike | None = None) -> list[Path]:
    """Where ``private_runtime_dir(name, record)`` of another process of ours may have put its directory,
    creating nothing: ``<runtime_base>/<name>`` and ``<tmp>/<name>`` when they are private directories of
    ours (another process may have had no ``$XDG_RUNTIME_DIR``), then the directory in ``record``."""
    found: list[Path] = []
    for base in (runtime_base(), Path(tempfile.gettempdir())):
        if _is_private_dir(base / name) and base / name not in found:
            found.append(base / name)
    if record is not None:
        with contextlib.suppress(OSError):
            fd = _open_record(Path(record), os.O_RDONLY)
            try:
                fcntl.flock(fd, fcntl.LOCK_SH)
                recorded = _read_record(fd)
            finally:
                os.close(fd)
            if recorded is not None and recorded not in found:
                found.append(recorded)
    return found


def private_file_opener(path: str, flags: int) -> int:
    """An ``opener=`` for ``open()``: new files are created 0600, and a link at the name is refused."""
    return os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)


def open_private_log(path: str | os.PathLike) -> int:
    """A descriptor for appending to the log file ``path``: created 0600 (whatever the umask), never
    through a link at its name; an existing log of ours is set to 0600 too."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        st = os.fstat(fd)
        if st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) != 0o600:
            os.fchmod(fd, 0o600)
    except BaseException:
        os.close(fd)
        raise
    return fd


def make_file_private(path: str | os.PathLike) -> None:
    """Set an existing file of ours to 0600 (through a descriptor; a link at the name is refused)."""
    with contextlib.suppress(FileNotFoundError):
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        try:
            if os.fstat(fd).st_uid == os.geteuid():
                os.fchmod(fd, 0o600)
        finally:
            os.close(fd)
