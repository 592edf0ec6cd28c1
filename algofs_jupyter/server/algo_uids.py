"""Which uid an owner's workers run as on a root server: one uid per owner, leased, reused only when empty.

Why (issue 22): workers used to run as ``base_uid + slot``, a slot any owner's worker could take next; a
process an algorithm left behind stayed in that uid and read the next owner's per-call token from
``/proc/<pid>/mem``. Now all the workers (and builds) of one owner share that owner's lease, workers of
different owners never share a uid (so they cannot signal, ptrace or read each other, nor share an
``RLIMIT_NPROC``), and a uid goes to another owner only once no process of it is left on the machine.

Concurrency: used from the pool's event loop only (and its start threads through ``lease``/``release``,
which take ``_lock``).
"""

from __future__ import annotations

import os
import pwd
import threading
from pathlib import Path


class NoFreeUid(RuntimeError):
    pass


def uids_in_use() -> set[int]:
    """Real and effective uids of every process on the machine (``/proc/*/status``)."""
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("Uid:"):
                    found.update(int(v) for v in line.split()[1:3])
                    break
        except OSError:  # exited meanwhile
            continue
    return found


class UidLeases:
    def __init__(self, first: int, count: int):
        self.first, self.count = first, count
        self._lock = threading.Lock()
        self._held: dict[str, tuple[int, int]] = {}  # owner -> (uid, users of the lease)
        self._last_owner: dict[int, str] = {}  # uid -> whoever had it last (reused first by the same owner)

    def lease(self, owner: str) -> int:
        with self._lock:
            if owner in self._held:
                uid, users = self._held[owner]
                self._held[owner] = (uid, users + 1)
                return uid
            taken = {uid for uid, _ in self._held.values()}
            candidates = [u for u in range(self.first, self.first + self.count) if u not in taken]
            # the owner's own previous uid first: its leftovers (if any) are its own
            mine = [u for u in candidates if self._last_owner.get(u) == owner]
            busy = uids_in_use()
            for uid in mine + [u for u in candidates if u not in busy and not _is_account(u)]:
                self._held[owner] = (uid, 1)
                self._last_owner[uid] = owner
                return uid
            last = self.first + self.count - 1
            raise NoFreeUid(f"no free worker uid in {self.first}..{last}: every one is leased or still "
                            "has processes of its previous owner")

    def release(self, owner: str) -> None:
        with self._lock:
            uid, users = self._held.get(owner, (0, 0))
            if users <= 1:
                self._held.pop(owner, None)
            else:
                self._held[owner] = (uid, users - 1)

    def held(self) -> dict[str, int]:
        with self._lock:
            return {owner: uid for owner, (uid, _) in self._held.items()}


def _is_account(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


def running_as_root() -> bool:
    return os.geteuid() == 0
