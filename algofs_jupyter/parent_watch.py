"""A child daemon (mount or embedded API server) that exits with the process that started it.

``MountProcess`` and ``EmbeddedServer`` name their own pid in ``ALGOFS_PARENT_PID``. When that process is
gone (SIGKILLed, or a jupyterhub-singleuser stopped with SIGINT, which exits without running extension
cleanup) the child is re-parented, and nobody would ever stop it; the watcher then sends the child
SIGTERM, which a mount answers by unmounting and ``algofs serve`` by shutting down. Polling ``getppid``
rather than ``PR_SET_PDEATHSIG``: the latter fires when the *thread* that forked exits, and the Jupyter
extension starts mounts from worker threads.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

PARENT_PID_ENV = "ALGOFS_PARENT_PID"
log = logging.getLogger("algofs")


def watch_parent(interval: float = 0.5) -> threading.Thread | None:
    """Start the watcher if this process was given a parent to follow (the variable is not inherited)."""
    value = os.environ.pop(PARENT_PID_ENV, "")
    if not value.isdigit():
        return None
    parent = int(value)

    def follow() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        log.warning("the process that started this one (pid %d) is gone: stopping", parent)
        os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=follow, name="algofs-parent-watch", daemon=True)
    thread.start()
    return thread
