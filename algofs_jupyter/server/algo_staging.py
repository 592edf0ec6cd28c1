"""Where workers' code comes from: content-addressed, read-only copies in the server's private runtime dir.

Why (issue 22): the copies used to live in ``<tmp>/algofs-code-<euid>``, a predictable name another account
could create first (reading every private algorithm, swapping in its own code, or, on a root server,
making root write through a planted symlink). Now the stage is a fresh ``mkdtemp`` directory made by this
server process (``private_dirs.fresh_private_dir``) and removed when it stops; nothing outside it is ever
written, chmodded or recursed into.

A root server's workers run as leased uids, which must traverse the stage to bind a copy into their box:
then the stage is 0711 (traversable, not listable) and each copy's name is a hash of its content; a
non-root server's workers share its uid and the stage stays 0700.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import time
from pathlib import Path

from ..private_dirs import fresh_private_dir

RUNNER = Path(__file__).with_name("algorithm_runner.py")
#: A copy unused (no worker started from it) for this long is removed; workers are reaped when idle and
#: replaced on a new version long before, so no live worker still reads from such a copy.
STALE_CODE_SECONDS = 7 * 86400
#: At most one sweep of stale copies per this many seconds.
PRUNE_INTERVAL_SECONDS = 3600.0


class CodeStage:
    def __init__(self, runtime: Path, shared_with_other_uids: bool):
        self.shared = shared_with_other_uids
        self.root = runtime / "code"
        self.root.mkdir(mode=0o711 if self.shared else 0o700)
        os.chmod(self.root, 0o711 if self.shared else 0o700)  # made just now by us: not yet anyone else's
        self._last_prune = float("-inf")

    def stage(self, directory: Path) -> Path:
        """A copy of the algorithm in ``directory`` (files under ``algo/``) plus the runner; the same copy
        for the same content."""
        files = sorted(p for p in directory.rglob("*") if p.is_file() and not p.is_symlink()
                       and "__pycache__" not in p.parts)
        digest = hashlib.sha256(RUNNER.read_bytes())
        for path in files:
            digest.update(str(path.relative_to(directory)).encode() + b"\0" + path.read_bytes() + b"\0")
        target = self.root / digest.hexdigest()[:32]
        if time.monotonic() - self._last_prune > PRUNE_INTERVAL_SECONDS:
            self._last_prune = time.monotonic()
            self.prune()
        marker = target / ".complete"
        if marker.exists():
            with contextlib.suppress(OSError):
                os.utime(marker)  # in use: not stale
            return target
        tmp = fresh_private_dir(".staging-", parent=self.root)
        for path in files:
            dest = tmp / "algo" / path.relative_to(directory)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest)
        (tmp / "algo").mkdir(exist_ok=True)
        shutil.copyfile(RUNNER, tmp / "algorithm_runner.py")
        (tmp / ".complete").touch()
        readable = 0o755 if self.shared else 0o700
        for path in [tmp, *tmp.rglob("*")]:
            os.chmod(path, readable if path.is_dir() else readable & 0o644)
        try:
            os.rename(tmp, target)
        except OSError:  # the same code staged by another worker first
            shutil.rmtree(tmp, ignore_errors=True)
        return target

    def prune(self, now: float | None = None) -> int:
        """Remove copies not used for ``STALE_CODE_SECONDS``; returns how many."""
        now = time.time() if now is None else now
        removed = 0
        for entry in self.root.iterdir():
            try:
                stale = now - (entry / ".complete").stat().st_mtime > STALE_CODE_SECONDS
            except FileNotFoundError:  # a staging in progress
                old = now - entry.stat().st_mtime > STALE_CODE_SECONDS
                stale = entry.name.startswith(".staging-") and old
            if stale:
                shutil.rmtree(entry, ignore_errors=True)
                removed += 1
        return removed
