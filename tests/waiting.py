"""Polling for a condition in tests: the one way (a timeout, a short sleep, a last look at the deadline)."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(condition: Callable[[], object], timeout: float = 10.0, interval: float = 0.02) -> bool:
    """True once ``condition()`` is truthy; False if it still is not after ``timeout`` seconds (checked
    once more at the deadline, so a slow last step is not lost)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return bool(condition())
