"""Algorithm call latency and throughput: local warm pool vs the Dask executor, direct vs through the mount.

One run, side by side: two embedded servers on the same demo content, one with the local warm pool and
one with ``--executor dask://`` (a ``distributed.LocalCluster`` of 2 worker processes started here), and
one FUSE mount of each. For each of the four paths:

* cold: the first call after publishing a new version (a new worker process must start and load the
  code; the build is not timed), ``--cold`` times;
* warm: ``--calls`` calls of ``demo/echo`` per path, in blocks of ``WARM_BLOCK`` that the four paths take
  turns with (so all see the same load, and no call is timed right after another path's);
* throughput: calls/s with 8 concurrent callers (processes, each with its own client), direct only.

Written to ``bench/results/pipes_latency.md``. ``python bench/pipes_latency.py [--calls 200] [--cold 8]``
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import Algorithmia

from algofs_jupyter.mount.mount_process import MountProcess
from algofs_jupyter.publish import publish
from algofs_jupyter.server.embedded_server import EmbeddedServer

RESULTS = Path(__file__).parent / "results" / "pipes_latency.md"
CALLERS = 8
#: Warm calls are timed in blocks of this many per path, the paths taking turns, so each call follows a
#: call of its own path (as in a user's loop) and not another path's, whose background work (the mount's
#: FUSE release, Dask's bookkeeping) would still be running; over the run all paths see the same load.
WARM_BLOCK = 20
TARGETS = {"warm_direct_p50_ms": 5.0, "mount_over_direct": 1.2, "calls_per_s": 200.0}


class Server(EmbeddedServer):
    def __init__(self, root: Path, extra: list[str]):
        super().__init__(root, demo=True, large_file_mb=0)
        self.extra = extra

    def command(self) -> list[str]:
        return [*super().command(), *self.extra]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def pipe_file(path: Path, message: str) -> str:
    with open(path, "r+b", buffering=0) as handle:
        handle.write(message.encode())
        return handle.read().decode().strip()


@contextlib.contextmanager
def mounted(server: EmbeddedServer, base: Path) -> Iterator[Path]:
    mount = MountProcess(base / "mnt", server.url, server.api_key, cache_dir=base / "cache")
    mount.start(120)
    try:
        yield Path(mount.mountpoint)
    finally:
        mount.stop()


def _caller(url: str, key: str, seconds: float, ready: Any, counts: Any) -> None:
    """One concurrent caller: its own process (no GIL shared with the others) and its own client."""
    algo = Algorithmia.client(key, url).algo("demo/echo")
    algo.pipe("warm")
    ready.wait()  # every caller warmed up: start together
    done, stop_at = 0, time.monotonic() + seconds
    while time.monotonic() < stop_at:
        assert algo.pipe("x").result == "x"
        done += 1
    counts.put(done)


def tree_cpu(pid: int) -> float:
    """User+system CPU seconds of a process and its live descendants (server + its workers)."""
    import psutil

    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            continue
    return total


def throughput(server: EmbeddedServer, seconds: float) -> tuple[float, float]:
    """Calls/s of CALLERS processes calling at once for ``seconds`` (timed after all have started), and
    the server's CPU (with its workers) per call in ms (counted over the whole run, warm-up included)."""
    cpu_before = tree_cpu(server.pid)  # type: ignore[arg-type]
    context = multiprocessing.get_context("spawn")
    counts, ready = context.Queue(), context.Barrier(CALLERS)
    procs = [context.Process(target=_caller, args=(server.url, server.api_key, seconds, ready, counts))
             for _ in range(CALLERS)]
    for proc in procs:
        proc.start()
    total = sum(counts.get(timeout=seconds + 300) for _ in procs)
    for proc in procs:
        proc.join(30)
    cpu = tree_cpu(server.pid) - cpu_before  # type: ignore[arg-type]
    return total / seconds, 1e3 * cpu / max(1, total + 2 * CALLERS)


def cold_calls(server: EmbeddedServer, mount: Path, count: int, tag: str) -> tuple[list[float], list[float]]:
    """Alternately direct and via the mount: publish a new version, then time the first call to it."""
    client = Algorithmia.client(server.api_key, server.url)
    direct, via_mount = [], []
    name = f"cold_{tag}"
    for i in range(count * 2):
        result = publish(f"demo/{name}", f"def apply(input):\n    return input  # {i}\n", version="revision",
                         api_address=server.url, api_key=server.api_key)
        assert result.ok, result.logs
        if i % 2 == 0:
            direct.append(timed(lambda: client.algo(f"demo/{name}").pipe("c")))
        else:
            pipe = mount / "algorithms" / "demo" / name / "latest"
            via_mount.append(timed(lambda: pipe_file(pipe, "c")))  # noqa: B023 - called at once
    return direct, via_mount


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--cold", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each throughput run")
    args = parser.parse_args()
    import distributed

    rows: dict[str, dict[str, list[float]]] = {}
    rates: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory(prefix="algofs-bench-pipes-") as tmp, \
            distributed.LocalCluster(n_workers=2, threads_per_worker=4, processes=True, host="127.0.0.1",
                                     dashboard_address=None, silence_logs=40) as cluster:
        base = Path(tmp)
        dask_url = cluster.scheduler_address.replace("tcp://", "dask://")
        with Server(base / "local", []) as local, Server(base / "dask", ["--executor", dask_url]) as dask, \
                mounted(local, base / "m-local") as local_mnt, mounted(dask, base / "m-dask") as dask_mnt:
            engines = {"local pool": (local, local_mnt), "Dask": (dask, dask_mnt)}
            for engine, (server, mnt) in engines.items():
                cold_direct, cold_mount = cold_calls(server, mnt, args.cold, engine.split()[0].lower())
                rows[f"{engine}, direct"] = {"cold": cold_direct, "warm": []}
                rows[f"{engine}, mount"] = {"cold": cold_mount, "warm": []}
            paths: dict[str, Callable[[str], object]] = {}
            for engine, (server, mnt) in engines.items():
                algo = Algorithmia.client(server.api_key, server.url).algo("demo/echo")
                pipe = mnt / "algorithms/demo/echo/latest"
                paths[f"{engine}, direct"] = lambda m, a=algo: a.pipe(m).result
                paths[f"{engine}, mount"] = lambda m, p=pipe: pipe_file(p, m)
            for call in paths.values():  # warm every worker and the mounts' listings
                for _ in range(5):
                    call("warm")
            for first in range(0, args.calls, WARM_BLOCK):  # the paths take turns, a block each
                for name, call in paths.items():
                    for i in range(first, min(first + WARM_BLOCK, args.calls)):
                        message = f"message {i}"
                        rows[name]["warm"].append(timed(lambda c=call, m=message: c(m)))
            for engine, (server, _mnt) in engines.items():
                rates[engine] = throughput(server, args.seconds)
    write_report(args, rows, rates)
    return 0


def write_report(args: argparse.Namespace, rows: dict[str, dict[str, list[float]]],
                 rates: dict[str, tuple[float, float]]) -> None:
    ms = 1e3
    lines = [
        "# Algorithm call latency and throughput", "",
        f"Command: `python bench/pipes_latency.py --calls {args.calls} --cold {args.cold} --seconds "
        f"{args.seconds:g}` — {time.strftime('%Y-%m-%d %H:%M')}. `demo/echo` (text); cold = first call "
        "after publishing a new version (worker start + code load); warm calls in blocks of "
        f"{WARM_BLOCK} per path, the four paths taking turns; one run, one machine (2 cores, shared). "
        "Before the warm pool: ~48 ms p50 direct (issue 17).",
        "",
        "| Path | cold p50 (ms) | cold p95 (ms) | warm p50 (ms) | warm p95 (ms) | warm mean (ms) |",
        "|---|---|---|---|---|---|",
    ]
    for name, values in rows.items():
        cold, warm = values["cold"], values["warm"]
        lines.append(f"| {name} | {percentile(cold, .5) * ms:.1f} | {percentile(cold, .95) * ms:.1f} | "
                     f"{percentile(warm, .5) * ms:.2f} | {percentile(warm, .95) * ms:.2f} | "
                     f"{statistics.mean(warm) * ms:.2f} |")
    lines += ["", f"| Executor | calls/s, {CALLERS} concurrent callers, direct | server CPU per call (ms) |",
              "|---|---|---|"]
    lines += [f"| {engine} | {rate:.0f} | {cpu:.2f} |" for engine, (rate, cpu) in rates.items()]
    lines += ["", "Server CPU per call = CPU of `algofs serve` and its workers (for Dask: the server only) "
              "over the throughput run / calls; the callers, the mounts and other users of the machine are "
              f"not in it. Load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores."]
    direct = percentile(rows["local pool, direct"]["warm"], .5) * ms
    ratio = percentile(rows["local pool, mount"]["warm"], .5) * ms / direct
    rate = rates["local pool"][0]
    verdict = [
        ("warm p50 direct (local pool)", f"{direct:.2f} ms", f"≤ {TARGETS['warm_direct_p50_ms']:g} ms",
         direct <= TARGETS["warm_direct_p50_ms"]),
        ("mount / direct, warm p50 (local pool)", f"{ratio:.2f}×", f"≤ {TARGETS['mount_over_direct']:g}×",
         ratio <= TARGETS["mount_over_direct"]),
        (f"calls/s with {CALLERS} callers (local pool)", f"{rate:.0f}", f"≥ {TARGETS['calls_per_s']:g}",
         rate >= TARGETS["calls_per_s"]),
    ]
    lines += ["", "| Target | measured | target | met |", "|---|---|---|---|"]
    lines += [f"| {what} | {value} | {target} | {'yes' if ok else 'no'} |"
              for what, value, target, ok in verdict]
    lines.append("")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    raise SystemExit(main())
