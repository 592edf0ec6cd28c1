"""Pipe latency: an algorithm call through the mount's pipe file vs a direct official-client call.

One run, side by side, same embedded server: N calls of ``demo/echo`` each way (interleaved so both see
the same machine load), p50/p95 written to ``bench/results/pipes_latency.md``.
``python bench/pipes_latency.py [--calls 200]``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import Algorithmia

from algofs_jupyter.mount.mount_process import MountProcess
from algofs_jupyter.server.process import EmbeddedServer

RESULTS = Path(__file__).parent / "results" / "pipes_latency.md"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="algofs-bench-pipes-") as tmp:
        base = Path(tmp)
        with EmbeddedServer(base / "server", demo=True) as server:
            mount = MountProcess(base / "mnt", server.url, server.api_key, cache_dir=base / "cache")
            mount.start(60)
            try:
                algo = Algorithmia.client(server.api_key, server.url).algo("demo/echo")
                pipe = base / "mnt" / "algorithms/demo/echo/latest"
                direct, mounted = [], []
                for i in range(args.calls):
                    message = f"message {i}"
                    started = time.perf_counter()
                    assert algo.pipe(message).result == message
                    direct.append(time.perf_counter() - started)
                    started = time.perf_counter()
                    with open(pipe, "r+b", buffering=0) as handle:
                        handle.write(message.encode())
                        assert handle.read().decode().strip() == message
                    mounted.append(time.perf_counter() - started)
            finally:
                mount.stop()
    rows = [("direct client.algo().pipe()", direct),
            ("through the mount (open, write, read, close)", mounted)]
    lines = [
        "# Pipe latency", "",
        f"Command: `python bench/pipes_latency.py --calls {args.calls}` — {time.strftime('%Y-%m-%d %H:%M')}, "
        "demo/echo on the embedded server, calls interleaved.", "",
        "| Path | p50 (ms) | p95 (ms) | mean (ms) |", "|---|---|---|---|",
    ]
    for name, values in rows:
        lines.append(f"| {name} | {percentile(values, .5) * 1e3:.1f} | {percentile(values, .95) * 1e3:.1f} "
                     f"| {statistics.mean(values) * 1e3:.1f} |")
    overhead = percentile(mounted, .5) / percentile(direct, .5) - 1
    lines += ["", f"Mount overhead at p50: {overhead:+.0%} (target ≤ +20%).", ""]
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
