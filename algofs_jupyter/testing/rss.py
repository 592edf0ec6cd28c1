"""How much a process's resident memory grows while something runs (tests and benches of transfers)."""

from __future__ import annotations

import threading


class RssSampler(threading.Thread):
    """Peak resident memory of a process, sampled every 50 ms; ``stop()`` answers the growth in bytes."""

    def __init__(self, pid: int):
        import psutil  # a test/bench dependency, not the package's

        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.baseline = self.process.memory_info().rss
        self.peak = self.baseline
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.05):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def stop(self) -> int:
        self.stopped.set()
        self.join()
        return self.peak - self.baseline
