"""Claims: what makes a dirty staged file recoverable after its daemon dies.

A daemon that dies (SIGKILL, OOM, power loss) before an upload cannot report anything, so a dirty staged
file carries a *claim*: ``staged-N.claim`` next to it names the remote path and API. It is written when the
file turns dirty and emptied once the upload succeeds (an empty claim claims nothing), so it costs one
small write per file, not per ``write()``. ``salvage_staging`` (run by the next daemon and by ``algofs
recover``) moves every claimed file of a dead daemon into the recovery folder.

Locks: none of its own. A staged file's claim is written and emptied under its ``StagedFile.lock``
(staged_file.py); salvage runs on folders of dead daemons only, which no live lock guards.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from .recovery import RecoveryStore

log = logging.getLogger(__name__)

CLAIM_SUFFIX = ".claim"
CRASH_ERROR = "the mount daemon stopped before this file was uploaded"


def claim_of(local: Path) -> Path:
    """The claim file beside the staging file ``local``."""
    return local.with_name(local.name + CLAIM_SUFFIX)


def write_claim(claim: Path, path: str, api_address: str) -> None:
    """Name the remote ``path`` (and API) of the bytes beside ``claim``."""
    record = json.dumps({"path": path, "api_address": api_address}).encode()
    fd = os.open(claim, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, record)
    finally:
        os.close(fd)


def empty_claim(claim: Path) -> None:
    """Claim nothing any more. Emptied, not removed: the next ``write_claim`` then rewrites a file instead
    of creating one (see spare_files.py); a missing claim stays missing."""
    try:
        os.truncate(claim, 0)
    except FileNotFoundError:
        pass


def make_empty_claim(claim: Path) -> None:
    """Create (or empty) ``claim``: what a spare staging file carries beside it."""
    os.close(os.open(claim, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))


def _daemon_gone(name: str) -> bool:
    """A staging folder is named after its daemon's pid (``PID``, or ``PID-<random>`` once set aside by a
    new daemon with the same pid, see ``WriteStaging``); ours (pid reuse) counts as a dead one's."""
    try:
        pid = int(name.partition("-")[0])
    except ValueError:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def salvage_staging(base: Path, recovery: RecoveryStore) -> list[str]:
    """Move claimed (dirty, never uploaded) files of dead daemons into ``recovery``; delete the rest.

    Returns the remote paths saved. A folder whose salvage failed is kept, so a later run tries again.
    """
    saved: list[str] = []
    if not base.is_dir():
        return saved
    for folder in base.iterdir():
        if not folder.is_dir() or not _daemon_gone(folder.name):
            continue
        complete = True
        for claim in sorted(folder.glob("*" + CLAIM_SUFFIX)):
            data = claim.with_name(claim.name[:-len(CLAIM_SUFFIX)])
            try:
                text = claim.read_text()
                if not text:
                    continue  # an empty claim claims nothing (a spare, or a file already uploaded)
                record = json.loads(text)
                path = record["path"]
            except (OSError, ValueError, KeyError, TypeError):
                log.critical("unreadable staging claim %s; its bytes stay in %s", claim, data)
                complete = False
                continue
            if not data.is_file():
                continue
            try:
                entry = recovery.save(data, path, CRASH_ERROR, api_address=record.get("api_address") or None)
            except OSError as exc:
                log.critical("could not save %s (bytes of %s) for recovery: %s", data, path, exc)
                complete = False
                continue
            saved.append(path)
            log.warning("%s: %s; bytes saved in %s", path, CRASH_ERROR, entry.directory)
        if complete:
            try:
                for child in folder.iterdir():
                    child.unlink(missing_ok=True)
                folder.rmdir()
            except OSError as exc:  # e.g. files appearing meanwhile: the next salvage tries again
                log.warning("could not remove the staging folder %s: %s", folder, exc)
    return saved
