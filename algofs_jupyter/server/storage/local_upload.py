"""``LocalUpload``: a write in progress to ``LocalBackend`` (storage/local.py), staged in a hidden temp file
next to its destination and landed atomically (rename, link(2) for exclusive creates, in-place appends)."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import stat
import threading

from ...names import RESERVED_PREFIX
from .base import CreateRefused, EntryInfo, Posix, Upload, WriteRequest
from .local_files import READ_CHUNK, Located, current_entry, entry_of, storage_errors
from .local_posix import write_attrs
from .posix import DEFAULT_FILE_MODE, now_ns


class LocalUpload(Upload):
    """The body is staged in a temp file next to the destination; ``commit`` lands it.

    Whole-file writes rename the temp file over the file. Appends (offset equal to the size at commit)
    copy the staged tail onto the end of the file in place and truncate it back if that fails, so the
    file is never left with part of a tail. Writes inside the file (or with ``truncate``) build the new
    version in a second temp file (a copy of the old one, patched) and rename it over the file.
    The upload owns ``where`` (its parent directory's descriptor) until commit or abort.
    """

    def __init__(self, commit_lock: threading.Lock, where: Located, request: WriteRequest):
        self.commit_lock = commit_lock  # the backend's: commits of one backend land one at a time
        self.where = where
        self.request = request
        self.temp_name = f"{RESERVED_PREFIX}{secrets.token_hex(8)}"
        with storage_errors():
            fd = os.open(self.temp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o644, dir_fd=where.dir_fd)
        self.file = os.fdopen(fd, "wb", buffering=1024 * 1024)
        self.bytes_written = 0
        self._done = False
        #: the metadata the landed file gets (a copy's); None: the rules of ``_landing_posix``
        self.posix: Posix | None = None

    def write(self, chunk: bytes) -> None:
        with storage_errors():
            self.file.write(chunk)
        self.bytes_written += len(chunk)

    def commit(self) -> EntryInfo:
        where = self.where
        with storage_errors():
            self.file.close()
        with self.commit_lock, storage_errors():
            current = current_entry(where)
            self.request.check(current)  # again: another writer may have got there first
            whole = self.request.offset is None or current is None  # a whole file, or a new one at offset 0
            posix = self._landing_posix(current, whole)
            if whole:
                if posix is not None:
                    write_attrs(where.dir_fd, self.temp_name, posix)
                if self.request.exclusive:  # link(2) never replaces: race-free against other processes too
                    try:
                        os.link(self.temp_name, where.name, src_dir_fd=where.dir_fd, dst_dir_fd=where.dir_fd,
                                follow_symlinks=False)
                    except FileExistsError as exc:
                        raise CreateRefused("something exists at that name (If-None-Match: *)") from exc
                    os.unlink(self.temp_name, dir_fd=where.dir_fd)
                else:
                    os.rename(self.temp_name, where.name, src_dir_fd=where.dir_fd, dst_dir_fd=where.dir_fd)
            elif current is not None and self.request.offset == current.size:
                self._append_in_place(current.size)
            else:
                self._patch_copy()
            if not whole and posix is not None:
                write_attrs(where.dir_fd, where.name, posix)
            self._done = True
            info = entry_of(where.name, where.stat(), where.dir_fd)
        self.abort()  # nothing left to discard: releases the directory descriptor
        return info

    def _landing_posix(self, current: EntryInfo | None, whole: bool) -> Posix | None:
        """The stored metadata of the file after this write (None: none stored, the defaults show).
        A new file gets the requested mode; a changed one keeps mode and owner (a replaced symlink
        becomes a plain file); ctime is now. mtime is the file's own."""
        now = now_ns()
        if self.posix is not None:
            return self.posix
        old = current.posix if current is not None else None
        plain = old is None or (old.mode, old.uid, old.gid) == (DEFAULT_FILE_MODE, None, None)
        if plain or (whole and old is not None and old.is_link):
            if self.request.mode is None:
                return None  # nothing to keep: the defaults (ctime = mtime = now) say it all
            return Posix(DEFAULT_FILE_MODE & ~0o7777 | self.request.mode, None, None, 0, now, now)
        assert old is not None
        return Posix(old.mode, old.uid, old.gid, 0, old.atime_ns, now)

    def _open_temp(self, name: str, flags: int) -> int:
        return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=self.where.dir_fd)

    def _append_in_place(self, size: int) -> None:
        with open(self.where.open(os.O_RDWR), "r+b") as target, \
                open(self._open_temp(self.temp_name, os.O_RDONLY), "rb") as tail:
            try:
                target.seek(size)
                shutil.copyfileobj(tail, target, READ_CHUNK)
                target.flush()
            except BaseException:
                target.truncate(size)
                raise
        os.unlink(self.temp_name, dir_fd=self.where.dir_fd)

    def _patch_copy(self) -> None:
        offset = self.request.offset
        assert offset is not None
        where = self.where
        patched = f"{RESERVED_PREFIX}{secrets.token_hex(8)}"
        try:
            with open(where.open(os.O_RDONLY), "rb") as old, \
                    open(self._open_temp(patched, os.O_RDWR | os.O_CREAT | os.O_EXCL), "r+b") as target, \
                    open(self._open_temp(self.temp_name, os.O_RDONLY), "rb") as body:
                shutil.copyfileobj(old, target, READ_CHUNK)
                target.seek(offset)
                shutil.copyfileobj(body, target, READ_CHUNK)
                if self.request.truncate:
                    target.truncate(offset + self.bytes_written)
                os.fchmod(target.fileno(), stat.S_IMODE(os.fstat(old.fileno()).st_mode))
            os.rename(patched, where.name, src_dir_fd=where.dir_fd, dst_dir_fd=where.dir_fd)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(patched, dir_fd=where.dir_fd)
        os.unlink(self.temp_name, dir_fd=where.dir_fd)

    def abort(self) -> None:
        if not self.file.closed:
            with contextlib.suppress(OSError):
                self.file.close()
        if self.where.dir_fd >= 0:
            if not self._done:
                with contextlib.suppress(OSError):
                    os.unlink(self.temp_name, dir_fd=self.where.dir_fd)
            self.where.close()
            self.where.dir_fd = -1
