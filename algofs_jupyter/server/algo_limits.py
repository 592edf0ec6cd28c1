"""Caps on concurrent algorithm calls, per caller and overall (issue 15: 15 ``output=void`` calls made
15 processes). A call over a cap is refused at once with 429 and a JSON error, instead of queueing
without bound; ``output=void`` calls hold their slot until they finish in the background.

Concurrency: used only from the server's event loop; no lock (no await between check and update).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from .errors import ApiError


class CallLimiter:
    def __init__(self, per_user: int = 8, total: int = 32):
        self.per_user = per_user
        self.total = total
        self._running: Counter[str] = Counter()

    @property
    def running(self) -> int:
        return sum(self._running.values())

    def acquire(self, user: str) -> None:
        if self.running >= self.total:
            raise ApiError(429, f"too many algorithm calls running on this server (limit {self.total}); "
                                "retry later", headers={"Retry-After": "1"},
                           error_type="TooManyRequests", code=4290)
        if self._running[user] >= self.per_user:
            raise ApiError(429, f"too many concurrent algorithm calls for user {user} "
                                f"(limit {self.per_user}); retry later", headers={"Retry-After": "1"},
                           error_type="TooManyRequests", code=4291)
        self._running[user] += 1

    def release(self, user: str) -> None:
        self._running[user] -= 1
        if self._running[user] <= 0:
            del self._running[user]

    @contextmanager
    def slot(self, user: str) -> Iterator[None]:
        self.acquire(user)
        try:
            yield
        finally:
            self.release(user)
