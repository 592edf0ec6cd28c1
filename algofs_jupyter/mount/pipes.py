"""Algorithms as pipe-like files: ``/algorithms/<user>/<algo>/<version>`` (semantics in docs/pipes.md).

Every open handle is a conversation with one algorithm version. Bytes written to a handle are one input;
the call is made when that handle next reads, fsyncs or closes. Completed answers are also kept for the
writing process family, so ``echo hi > f; cat f`` works from a shell; a read-only open with nothing to
collect fails at once with ENODATA, and ``NAME@stream`` streams every answer of the same user as it arrives,
like a FIFO reader.

The mount dispatches everything under ``/algorithms`` here (see ``virtual.py``) with paths relative to
that root. Files are ``direct_io``: their size is unknown until an algorithm answers.

Locks (names of docs/architecture.md's *mount lock order*):

- ``Conversation.lock`` (one per open pipe) guards that conversation's ``pending``, ``output``,
  ``position`` and ``error``; held across its algorithm call and a stream reader's wait for an answer.
- ``Conversation.lock`` before ``PipeTree._lock``, which (with its condition ``_arrived``) guards
  ``_handles`` (written under it), ``_answers``, ``_errors``, ``_streams`` and the call counters; a leaf,
  never held across a call or a /proc read. ``_listings`` is written without it (one dict store).
"""

from __future__ import annotations

import base64
import ctypes
import errno
import functools
import itertools
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mfusepy import FuseOSError, fuse_get_context

from ..fs.algorithm_api import AlgorithmError, algorithm_versions, call_algorithm, list_algorithms
from ..fs.data_api import DataClient
from ..names import invalid_name_reason
from .stat_dicts import directory_stat, file_stat
from .virtual import VirtualTree

log = logging.getLogger(__name__)

LATEST = "latest"
ERROR_SUFFIX = ".error"
OPTION_SEPARATOR = "@"  # latest@timeout=5
STREAM_OPTION = "stream"  # latest@stream: a read-only open that waits for answers like a FIFO reader
LISTING_TTL = 30.0
MAX_INPUT = 10 << 20  # the Algorithm API's request limit; refuse early with EFBIG
KEEP_ANSWERS_PER_PATH = 64
STREAM_POLL = 0.25


@dataclass
class Answer:
    """One finished call: what a reader gets (bytes) or why it failed (error)."""

    seq: int
    output: bytes = b""
    error: str | None = None


@dataclass
class Conversation:
    """State of one open handle."""

    target: str  # user/algo/version, options stripped
    options: dict[str, str]
    uid: int
    pid: int
    writable: bool
    pending: bytearray = field(default_factory=bytearray)
    output: bytes = b""
    position: int = 0
    error: str | None = None
    stream: deque[Answer] | None = None  # set for stream-mode readers
    lock: threading.Lock = field(default_factory=threading.Lock)


class PipeTree(VirtualTree):
    def __init__(self, client: DataClient, timeout: float = 300.0) -> None:
        super().__init__()
        self.client = client
        self.session = client.session
        self.timeout = timeout
        self._handles: dict[int, Conversation] = {}
        self._fh = itertools.count(1)
        self._seq = itertools.count(1)
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._answers: dict[tuple[str, int], Answer] = {}  # (target, pid) -> newest answer
        self._errors: dict[tuple[str, int], str] = {}  # (target, pid) -> last error message
        self._streams: dict[tuple[str, int], list[deque[Answer]]] = {}  # (target, uid) -> readers
        self._listings: dict[str, tuple[float, Any]] = {}
        self._users_seen: set[str] = set()
        self._latencies: deque[float] = deque(maxlen=1000)
        self.calls = 0
        self.failures = 0

    # -- names ------------------------------------------------------------------------------------

    @staticmethod
    def _split(path: str) -> list[str]:
        return [part for part in path.split("/") if part]

    @staticmethod
    def _file_name(name: str) -> tuple[str, dict[str, str], bool]:
        """``latest@timeout=5`` -> ("latest", {"timeout": "5"}, False); ``1.0.0.error`` -> error file."""
        is_error = name.endswith(ERROR_SUFFIX)
        if is_error:
            name = name[: -len(ERROR_SUFFIX)]
        version, _, raw = name.partition(OPTION_SEPARATOR)
        options: dict[str, str] = {}
        for item in filter(None, raw.split(",")):
            if item == STREAM_OPTION:  # latest@stream: a reader that waits for answers (a flag, no value)
                options[item] = ""
                continue
            key, sep, value = item.partition("=")
            if not sep or key not in ("timeout",):
                raise FuseOSError(errno.EINVAL)
            try:
                float(value)
            except ValueError:
                raise FuseOSError(errno.EINVAL) from None
            options[key] = value
        return version, options, is_error

    # -- listings -----------------------------------------------------------------------------------
    #
    # Listings are cached for LISTING_TTL so that ``ls -l`` (a readdir, then a getattr per entry) and a
    # burst of opens cost one request. A published algorithm or version must show at once (issue 17),
    # so the cache never answers "no": ``readdir`` always asks the API again (it is what ``ls`` shows),
    # and a name that the cached listing lacks is looked up again once before it is ENOENT.
    # ``clear_caches`` (the mount's ``clear_cache`` command) drops them all.

    def _cached(self, key: str, load: Any, fresh: bool = False) -> Any:
        now = time.monotonic()
        hit = self._listings.get(key)
        if hit and not fresh and now - hit[0] < LISTING_TTL:
            return hit[1]
        value = load()
        self._listings[key] = (now, value)  # one dict store: atomic, no lock needed
        return value

    def clear_caches(self) -> None:
        self._listings.clear()

    def _algorithms_of(self, user: str, fresh: bool = False) -> dict[str, list[str]]:
        algorithms = self._cached(f"user:{user}", lambda: list_algorithms(self.session, user), fresh)
        self._users_seen.add(user)
        return algorithms

    def _versions(self, user: str, algo: str, fresh: bool = False) -> list[str]:
        def load() -> list[str]:
            versions = algorithm_versions(self.session, user, algo)
            if versions is None:  # hosted API shape: ask the listing of the owner
                listing = self._algorithms_of(user)
                if algo not in listing:
                    listing = self._algorithms_of(user, fresh=True)
                versions = listing.get(algo, [])
            return versions

        return self._cached(f"algo:{user}/{algo}", load, fresh)

    def _has_version(self, user: str, algo: str, version: str) -> bool:
        """Whether ``version`` is published; a miss in the cached listing asks the API once more."""
        return version in self._versions(user, algo) or version in self._versions(user, algo, fresh=True)

    def _dir_stat(self) -> dict[str, Any]:
        return directory_stat(self.mounted_at, 0o555)

    def _file_stat(self, size: int = 0) -> dict[str, Any]:
        return file_stat(size, time.time(), 0o660, st_blksize=1 << 16)

    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        parts = self._split(path)
        for part in parts:
            if invalid_name_reason(part):
                raise FuseOSError(errno.ENOENT)
        if len(parts) == 0:
            return self._dir_stat()
        if len(parts) == 1:
            self._algorithms_of(parts[0])  # 404 -> ENOENT
            return self._dir_stat()
        if len(parts) == 2:
            self._versions(parts[0], parts[1])
            return self._dir_stat()
        if len(parts) == 3:
            version, _options, is_error = self._file_name(parts[2])
            if version != LATEST and not self._has_version(parts[0], parts[1], version):
                raise FuseOSError(errno.ENOENT)
            if is_error:
                message = self._error_for(f"{parts[0]}/{parts[1]}/{version}", _context_pid())
                return self._file_stat(len(message.encode()) if message else 0)
            return self._file_stat()
        raise FuseOSError(errno.ENOENT)

    def readdir(self, path: str) -> list[str]:
        parts = self._split(path)
        if len(parts) == 0:
            try:
                self._users_seen.add(self.client.username())
            except OSError:
                pass
            return sorted(self._users_seen)
        if len(parts) == 1:
            return sorted(self._algorithms_of(parts[0], fresh=True))
        if len(parts) == 2:
            return [*self._versions(parts[0], parts[1], fresh=True), LATEST]
        raise FuseOSError(errno.ENOTDIR)

    # -- handles ----------------------------------------------------------------------------------

    def _target(self, path: str) -> tuple[str, dict[str, str], bool]:
        parts = self._split(path)
        if len(parts) != 3:
            raise FuseOSError(errno.EISDIR if len(parts) < 3 else errno.ENOENT)
        version, options, is_error = self._file_name(parts[2])
        return f"{parts[0]}/{parts[1]}/{version}", options, is_error

    def open(self, path: str, fi: Any) -> int:
        self.getattr(path)
        target, options, is_error = self._target(path)
        fi.direct_io = 1
        uid, _gid, pid = fuse_get_context()
        access = fi.flags & 0o3
        conversation = Conversation(target, options, uid, pid, writable=access != 0)
        if is_error:
            if conversation.writable:
                raise FuseOSError(errno.EACCES)
            conversation.output = (self._error_for(target, pid) or "").encode()
        elif not conversation.writable:
            answer = None if STREAM_OPTION in options else self._collect(target, pid)
            if answer is not None:
                self._deliver(conversation, answer)
            elif STREAM_OPTION not in options:
                # nothing to collect: answer at once rather than wait for a writer that may never come
                raise FuseOSError(errno.ENODATA)
            else:  # NAME@stream: every answer of this user on this path, as it arrives
                conversation.stream = deque()
                with self._lock:
                    self._streams.setdefault((target, uid), []).append(conversation.stream)
        with self._lock:
            fh = next(self._fh)
            self._handles[fh] = conversation
        return fh

    def create(self, path: str, mode: int, fi: Any) -> int:
        return self.open(path, fi)

    def _conversation(self, fh: int) -> Conversation:
        try:
            return self._handles[fh]
        except KeyError:
            raise FuseOSError(errno.EBADF) from None

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        conversation = self._conversation(fh)
        with conversation.lock:
            if len(conversation.pending) + len(data) > MAX_INPUT:
                raise FuseOSError(errno.EFBIG)
            conversation.pending += data
        return len(data)

    def truncate(self, path: str, length: int, fh: int | None = None) -> None:
        if fh is not None:
            conversation = self._conversation(fh)
            with conversation.lock:
                del conversation.pending[length:]
        # `echo x > file` truncates first: nothing to do for a pipe

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        """Ignores ``offset``: a pipe has a read position of its own (after ``exec 3<>f; echo x >&3``
        the kernel's file position sits past the written bytes)."""
        conversation = self._conversation(fh)
        with conversation.lock:
            if conversation.pending:
                self._send(conversation)
            if conversation.stream is not None and conversation.position >= len(conversation.output):
                self._wait_for_stream(conversation)
            if conversation.error is not None and conversation.position >= len(conversation.output):
                conversation.error = None
                raise FuseOSError(errno.EIO)
            chunk = conversation.output[conversation.position : conversation.position + size]
            conversation.position += len(chunk)
            return chunk

    def flush(self, path: str, fh: int) -> None:
        conversation = self._conversation(fh)
        with conversation.lock:
            if conversation.pending:
                self._send(conversation)
                if conversation.error is not None:
                    raise FuseOSError(errno.EIO)

    def fsync(self, path: str, datasync: int, fh: int) -> None:
        self.flush(path, fh)

    def release(self, path: str, fh: int) -> None:
        with self._lock:
            conversation = self._handles.pop(fh, None)
            if conversation is not None and conversation.stream is not None:
                readers = self._streams.get((conversation.target, conversation.uid), [])
                if conversation.stream in readers:
                    readers.remove(conversation.stream)

    # -- calls and answers ------------------------------------------------------------------------

    def _send(self, conversation: Conversation) -> None:
        """Call the algorithm with the pending input; the answer replaces the handle's output."""
        data = bytes(conversation.pending)
        conversation.pending.clear()
        started = time.monotonic()
        seq = next(self._seq)
        try:
            output = self._call(conversation.target, data, conversation.options)
            answer = Answer(seq, output=output)
        except AlgorithmError as exc:
            answer = Answer(seq, error=str(exc))
        except OSError as exc:
            answer = Answer(seq, error=f"{conversation.target}: {exc.strerror or exc}")
        elapsed = time.monotonic() - started
        family = _family_of_writer(conversation.pid)  # reads /proc: keep it outside the lock
        with self._lock:
            self.calls += 1
            self._latencies.append(elapsed)
            if answer.error is not None:
                self.failures += 1
            for pid in family:
                self._answers[(conversation.target, pid)] = answer
                if answer.error is not None:
                    self._errors[(conversation.target, pid)] = answer.error
            self._trim_locked(conversation.target)
            for reader in self._streams.get((conversation.target, conversation.uid), []):
                reader.append(answer)
            self._arrived.notify_all()
        self._deliver(conversation, answer)

    def _deliver(self, conversation: Conversation, answer: Answer) -> None:
        conversation.output = conversation.output[conversation.position :] + answer.output
        conversation.position = 0
        conversation.error = answer.error
        if answer.error:
            log.info("algorithm call failed: %s", answer.error)

    def _collect(self, target: str, pid: int) -> Answer | None:
        """The answer to the last input of this process or of its nearest ancestor that wrote.

        Reading it does not use it up: ``cat`` twice shows the same answer, like a file would.
        """
        return self._nearest(self._answers, target, pid)

    def _error_for(self, target: str, pid: int) -> str | None:
        return self._nearest(self._errors, target, pid)

    def _nearest(self, table: dict[tuple[str, int], Any], target: str, pid: int) -> Any:
        chain = _ancestry(pid)  # reads /proc: keep it outside the lock
        with self._lock:
            for candidate in chain:
                value = table.get((target, candidate))
                if value is not None:
                    return value
        return None

    def _trim_locked(self, target: str) -> None:
        keys = [key for key in self._answers if key[0] == target]
        if len(keys) > KEEP_ANSWERS_PER_PATH:
            keys.sort(key=lambda key: self._answers[key].seq)
            for key in keys[: len(keys) - KEEP_ANSWERS_PER_PATH]:
                self._answers.pop(key, None)
                self._errors.pop(key, None)

    def _wait_for_stream(self, conversation: Conversation) -> None:
        """Block like a FIFO reader until an answer arrives; an interrupted reader (Ctrl-C) gets EINTR."""
        stream = conversation.stream
        assert stream is not None
        with self._lock:
            while not stream:
                if _interrupted():
                    raise FuseOSError(errno.EINTR)
                self._arrived.wait(STREAM_POLL)
            answer = stream.popleft()
        self._deliver(conversation, answer)

    def _call(self, target: str, data: bytes, options: dict[str, str]) -> bytes:
        content_type, body = _encode_input(data)
        timeout = float(options.get("timeout", self.timeout))
        reply = call_algorithm(self.session, target, content_type, body, timeout)
        return _encode_output(reply.result, reply.content_type)

    def stats(self) -> dict:
        with self._lock:
            latencies = sorted(self._latencies)
            return {"calls": self.calls, "failures": self.failures, "open_pipes": len(self._handles),
                    "latency_p50": _percentile(latencies, 0.50),
                    "latency_p95": _percentile(latencies, 0.95),
                    "default_timeout": self.timeout}


def _encode_input(data: bytes) -> tuple[str, bytes]:
    """Valid JSON -> application/json, UTF-8 text -> text/plain, anything else -> octet-stream."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "application/octet-stream", data
    stripped = text.strip()
    if stripped:
        try:
            json.loads(stripped)
            return "application/json", stripped.encode()
        except ValueError:
            pass
    # `echo` adds one newline that is not part of the message
    return "text/plain", (text[:-1] if text.endswith("\n") else text).encode()


def _encode_output(result: Any, content_type: str | None) -> bytes:
    if content_type == "binary":
        return base64.b64decode(result or b"")
    if content_type == "void" or result is None and content_type != "json":
        return b""
    if content_type == "text" and isinstance(result, str):
        return (result if result.endswith("\n") else result + "\n").encode()
    return (json.dumps(result, ensure_ascii=False) + "\n").encode()


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return round(values[min(len(values) - 1, int(q * len(values)))], 4)


def _context_pid() -> int:
    return fuse_get_context()[2]


def _parent(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read()
    except OSError:
        return 0
    # the command name may hold spaces and parentheses: fields start after the last ')'
    return int(data[data.rindex(b")") + 2 :].split()[1])


def _ancestry(pid: int, depth: int = 16) -> list[int]:
    chain: list[int] = []
    while pid > 1 and len(chain) < depth:
        chain.append(pid)
        pid = _parent(pid)
    return chain


def _family_of_writer(pid: int) -> list[int]:
    """A writer's answer is kept for the writer and its parent: ``/bin/echo x > f`` exits before the
    shell's next command reads, and that command is the shell's child, not echo's."""
    return _ancestry(pid, depth=2)


@functools.cache
def _fuse_interrupted() -> Callable[[], int] | None:
    try:
        from mfusepy import _libfuse

        function = _libfuse.fuse_interrupted
    except (ImportError, AttributeError):
        return None
    function.restype = ctypes.c_int
    return function


def _interrupted() -> bool:
    function = _fuse_interrupted()
    return bool(function and function())
