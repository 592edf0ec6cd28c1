"""Filesystem benchmark: algofs mount vs its peers, measured side by side in one run.

    python bench/run.py            # full: 1 GiB file, 10,000-file directory, 1,000 small writes
    python bench/run.py --quick    # small: 128 MiB file, same directory, 200 writes (under two minutes)

Everything runs on 127.0.0.1 against one ``algofs serve`` holding the data. Peers:

* ``curl`` of the same file from the same server, and the file read straight from the server's disk;
* the "FUSE ceiling": ``bench/fuse_ceiling.py``, a Python FUSE passthrough of the server's file (no
  network), i.e. the fastest cold read any Python/libfuse3 mount reaches on this machine;
* the official ``algorithmia`` client (listing, small-file uploads);
* ``fsspec.fuse`` mounting the same data through ``AlgoFileSystem`` (threads=False, its stable setting;
  fsspec imports ``fuse``, which we alias to mfusepy because fusepy needs the absent libfuse2);
* ``rclone mount`` (Debian rclone, ``--vfs-cache-mode full``) over ``rclone serve webdav`` of the same
  files (the server's data directory on disk).

Results go to ``bench/results/filesystem.md`` (table) and ``bench/results/filesystem.png`` (chart).
Everything started or mounted here is stopped/unmounted in ``finally`` blocks.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import random
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (  # noqa: E402 - bench/ is not a package
    COLLECTION,
    RESULTS,
    USER,
    GiB,
    MiB,
    Results,
    attempt,
    fuse_child,
    http_ok,
    ls_l,
    process_cpu,
    read_whole,
    source_tree,
    timed,
    unmount,
    write_small_files,
)

from algofs_jupyter.supervise import ChildProcess  # noqa: E402
from algofs_jupyter.testing.ports import free_ports  # noqa: E402

MANY = "many"
RANDOM_READS, RANDOM_SIZE = 1000, 4096
#: Cold sequential reads are the median of this many (fresh mounts): one pass on a shared 2-core VM
#: varies by ±30 %.
COLD_RUNS = 3
#: The seq scenario's algofs row with every read over HTTP (``--no-local-reads``): what a mount of a server
#: on another machine does; the ``algofs`` row reads the server's own file (local reads, §13).
OVER_HTTP = "algofs over HTTP"


# ------------------------------------------------------------------------------------ measurements
def median_of(samples: list[tuple[float, int]], last: Callable[[], tuple[float, int]]) -> tuple[float, int]:
    """The median of ``samples`` plus one more run of ``last`` (whose failure is the row's failure)."""
    ordered = sorted([*samples, last()])
    return ordered[len(ordered) // 2]


@contextmanager
def cpu_meter(results: Results, system: str, nbytes: int, **pids: int | None) -> Iterator[None]:
    """CPU core-seconds per GiB spent by the named processes, this (reading) process and waited-for
    children (curl) while the block runs; stored in ``results.facts["cpu_per_gib"][system]``."""
    before = {name: process_cpu(pid) for name, pid in pids.items()}
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    yield
    me2, kids2 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    spent = {name: process_cpu(pid) - before[name] for name, pid in pids.items()}
    spent["reader"] = (me2.ru_utime + me2.ru_stime) - (me.ru_utime + me.ru_stime)
    children = (kids2.ru_utime + kids2.ru_stime) - (kids.ru_utime + kids.ru_stime)
    if children > 0:
        spent["curl"] = children
    per_gib = GiB / nbytes
    results.facts.setdefault("cpu_per_gib", {})[system] = {k: round(v * per_gib, 3) for k, v in spent.items()}


def cold_samples(fresh: Callable[[], AbstractContextManager], path: Path,
                 runs: int = COLD_RUNS - 1) -> list[tuple[float, int]]:
    """Cold reads of ``path`` on ``runs`` fresh mounts (failures are skipped: the last run reports them)."""
    samples = []
    for _ in range(runs):
        with suppress(Exception), fresh():
            samples.append(read_whole(path))
    return samples


@contextmanager
def cold_read_row(s: Setup, results: Results, system: str, fresh: Callable[[], AbstractContextManager],
                  path: Path, note: str = "",
                  meter: Callable[[object], dict[str, int | None]] | None = None) -> Iterator[object]:
    """The "sequential read (cold)" row: the median over ``COLD_RUNS`` fresh mounts, the last of them
    CPU-metered when ``meter(handle)`` names the processes to count; yields that last mount's handle
    (``fresh()``'s value) for the scenarios that follow on it."""
    samples = cold_samples(fresh, path)
    with fresh() as handle:
        def last() -> tuple[float, int]:
            if meter is None:
                return read_whole(path)
            with cpu_meter(results, system, s.large_size, **meter(handle)):
                return read_whole(path)

        attempt(results, "sequential read (cold)", system, lambda: median_of(samples, last),
                f"{note}, median of {COLD_RUNS}".lstrip(", "))
        yield handle


#: Untimed passes before a warm measurement. The kernel moves a file's pages to its active list on their
#: second access, and the first warm pass or two pay for it (local file after a cold read: 0.149 s, then
#: 0.063 s). The server's file has been read many times when local disk is measured; the mounted files
#: get the same treatment, so both are compared in the steady state.
WARM_SETTLE_PASSES = 2


def read_whole_warm(path: Path, repeats: int = 3) -> tuple[float, int]:
    """Median of a few warm passes after ``WARM_SETTLE_PASSES`` untimed ones (the machine is shared,
    and one pass of a cached file is very short)."""
    for _ in range(WARM_SETTLE_PASSES):
        read_whole(path)
    runs = sorted(read_whole(path) for _ in range(repeats))
    return runs[len(runs) // 2]


def random_reads(path: Path, size: int, seed: int = 1) -> tuple[float, int]:
    rng = random.Random(seed)
    offsets = [rng.randrange(size // RANDOM_SIZE) * RANDOM_SIZE for _ in range(RANDOM_READS)]
    fd = os.open(path, os.O_RDONLY)
    try:
        def run() -> None:
            for offset in offsets:
                if len(os.pread(fd, RANDOM_SIZE, offset)) != RANDOM_SIZE:
                    raise OSError(f"short read at {offset}")
        seconds, _ = timed(run)
    finally:
        os.close(fd)
    return seconds, RANDOM_READS * RANDOM_SIZE


def touched_blocks(size: int, block_size: int, seed: int = 1) -> int:
    rng = random.Random(seed)
    offsets = [rng.randrange(size // RANDOM_SIZE) * RANDOM_SIZE for _ in range(RANDOM_READS)]
    return len({o // block_size for o in offsets} | {(o + RANDOM_SIZE - 1) // block_size for o in offsets})


# ------------------------------------------------------------------------------------------- setup
@dataclass
class Setup:
    work: Path
    server_root: Path
    api_url: str
    api_key: str
    large_size: int
    many: int
    writes: int
    quick: bool
    server_pid: int | None = None

    @property
    def collection_dir(self) -> Path:
        return self.server_root / "data" / USER / COLLECTION

    @property
    def large_local(self) -> Path:
        return self.collection_dir / "large.bin"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "ALGORITHMIA_API_KEY"}
        env.update(extra)
        return env


def make_data(collection: Path, large_size: int, many: int) -> None:
    """The files, written straight into the server's data directory (the server serves its disk)."""
    collection.mkdir(parents=True, exist_ok=True)
    chunk = os.urandom(8 * MiB)
    with open(collection / "large.bin", "wb") as handle:
        for offset in range(0, large_size, len(chunk)):
            handle.write(chunk[: min(len(chunk), large_size - offset)])
            chunk = chunk[1:] + chunk[:1]  # no two blocks alike
    directory = collection / MANY
    directory.mkdir(exist_ok=True)
    for index in range(many):
        (directory / f"file{index:05d}.txt").write_bytes(b"x" * (index % 100))


# ---------------------------------------------------------------------------------------- peers
def bench_baselines(s: Setup, results: Results) -> None:
    header = s.work / "curl-headers"
    header.write_text(f"Authorization: {s.api_key}\n")
    header.chmod(0o600)
    url = f"{s.api_url}/v1/data/{USER}/{COLLECTION}/large.bin"

    def curl() -> tuple[float, int]:
        seconds, proc = timed(lambda: subprocess.run(
            ["curl", "-sS", "-f", "-o", "/dev/null", "-H", f"@{header}", "-w", "%{size_download}", url],
            capture_output=True, text=True, check=True))
        return seconds, int(proc.stdout)

    curl()  # server warm-up (its own page cache of the file, Python imports)
    def curl_metered() -> tuple[float, int]:
        with cpu_meter(results, "curl", s.large_size, server=s.server_pid):
            return curl()

    attempt(results, "sequential read (cold)", "curl",
            lambda: median_of([curl() for _ in range(COLD_RUNS - 1)], curl_metered), f"median of {COLD_RUNS}")
    attempt(results, "sequential read (warm)", "local disk", lambda: read_whole_warm(s.large_local),
            "server's file, page cache")
    bench_fuse_ceiling(s, results)

    import Algorithmia

    client = Algorithmia.client(api_key=s.api_key, api_address=s.api_url)

    def client_list() -> tuple[float, None]:
        seconds, names = timed(lambda: [f.getName() for f in client.dir(
            f"data://{USER}/{COLLECTION}/{MANY}").files()])
        if len(names) != s.many:
            raise RuntimeError(f"listed {len(names)} files")
        return seconds, None

    attempt(results, "ls -l 10k dir (cold)", "official client", client_list, "dir().files(), no cache")
    attempt(results, "ls -l 10k dir (warm)", "official client", client_list, "dir().files(), no cache")

    def client_writes() -> tuple[float, None]:
        client.dir(f"data://{USER}/{COLLECTION}/writes-client").create()
        payload = os.urandom(1024)

        def run() -> None:
            for index in range(s.writes):
                client.file(f"data://{USER}/{COLLECTION}/writes-client/w{index:05d}.txt").put(payload)

        return timed(run)[0], None

    attempt(results, f"write {s.writes} small files", "official client", client_writes, "file().put()")
    attempt(results, f"write {s.writes} small files", "local disk",
            lambda: write_small_files(s.work / "local-writes", s.writes))


def bench_fuse_ceiling(s: Setup, results: Results) -> None:
    """A fresh Python FUSE passthrough of the server's file: no network, the best any such mount can do."""
    mountpoint = s.work / "mnt-ceiling"
    command = [sys.executable, str(Path(__file__).resolve().parent / "fuse_ceiling.py"), str(mountpoint),
               str(s.large_local)]

    def fresh() -> AbstractContextManager[None]:
        return fuse_child(command, mountpoint, s.env(), s.work / "ceiling.log")

    with cold_read_row(s, results, "FUSE ceiling", fresh, mountpoint / s.large_local.name,
                       "Python passthrough of a local file", meter=lambda daemon: {"daemon": daemon.pid}):
        pass


def bench_sequential(s: Setup, results: Results, baseline: str = "") -> None:
    """Cold sequential reads only, interleaved: per round one fresh mount each of the FUSE ceiling, algofs
    and (``baseline``) algofs from another tree, each read CPU-metered; the rows are the medians over
    ``COLD_RUNS`` rounds, the CPU table the median per process. On a shared 2-core machine a run of one
    system after another compares different loads; rounds compare neighbours. The baseline's mount reads
    from a server of the baseline's tree too (the same file, hard-linked), so server changes show."""
    source = str(Path(baseline).resolve()) if baseline else ""
    with ExitStack() as servers:
        urls = {"": (s.api_url, s.server_pid)}
        if source:
            urls[source] = baseline_server(s, source, servers)
        _bench_sequential(s, results, source, urls)


def baseline_server(s: Setup, source: str, servers: ExitStack) -> tuple[str, int | None]:
    """A server of ``source``'s tree serving the same large file (a hard link): ``(url, pid)``."""
    from algofs_jupyter.server.embedded_server import EmbeddedServer

    collection = s.work / "serve-baseline" / "data" / USER / COLLECTION
    collection.mkdir(parents=True)
    os.link(s.large_local, collection / s.large_local.name)
    with source_tree(source):
        server = EmbeddedServer(s.work / "serve-baseline", users={USER: s.api_key})
        server.start(60)
    servers.callback(server.stop)
    return server.url, server.pid


def _bench_sequential(s: Setup, results: Results, baseline: str,
                      urls: dict[str, tuple[str, int | None]]) -> None:
    """``baseline``: a resolved source tree or ""; ``urls``: each tree's server ``(url, pid)``."""
    from algofs_jupyter.mount.mount_process import MountProcess

    root = Path("data") / USER / COLLECTION / "large.bin"

    def ceiling() -> AbstractContextManager[ChildProcess]:
        mountpoint = s.work / "mnt-ceiling"
        return fuse_child([sys.executable, str(Path(__file__).resolve().parent / "fuse_ceiling.py"),
                           str(mountpoint), str(s.large_local)], mountpoint, s.env(), s.work / "ceiling.log")

    @contextmanager
    def algofs(source: str, **options: Any) -> Iterator[MountProcess]:
        cache_dir = s.work / "algofs-cache"
        shutil.rmtree(cache_dir, ignore_errors=True)
        with source_tree(source):
            mount = MountProcess(s.work / "mnt-algofs", urls[source][0], s.api_key, cache_dir=cache_dir,
                                 log_file=s.work / "algofs-mount.log", cache_size=4 << 30, **options)
            mount.start(60)
        try:
            yield mount
        finally:
            mount.stop()

    systems: list[tuple[str, Callable[[], AbstractContextManager], Path]] = [
        ("FUSE ceiling", ceiling, Path(s.large_local.name)), ("algofs", lambda: algofs(""), root),
        (OVER_HTTP, lambda: algofs("", no_local_reads=True), root)]
    server_pids = {"algofs": urls[""][1], OVER_HTTP: urls[""][1]}
    if baseline:
        systems.append(("algofs (baseline)", lambda: algofs(baseline), root))
        server_pids["algofs (baseline)"] = urls[baseline][1]
    runs: dict[str, list[tuple[float, int]]] = {name: [] for name, _, _ in systems}
    cpu: dict[str, list[dict[str, float]]] = {name: [] for name, _, _ in systems}
    for _ in range(COLD_RUNS):
        for name, fresh, path in systems:
            with suppress(Exception), fresh() as handle:
                mountpoint = s.work / ("mnt-ceiling" if name == "FUSE ceiling" else "mnt-algofs")
                pids = {"daemon": handle.pid} if name == "FUSE ceiling" else {"server": server_pids[name],
                                                                             "daemon": handle.pid}
                with cpu_meter(results, name, s.large_size, **pids):
                    runs[name].append(read_whole(mountpoint / path))
                cpu[name].append(results.facts["cpu_per_gib"][name])  # type: ignore[index]
    per_gib: dict[str, dict[str, float]] = results.facts.setdefault("cpu_per_gib", {})  # type: ignore[assignment]
    for name, samples in runs.items():
        attempt(results, "sequential read (cold)", name, functools.partial(middle, samples),
                f"median of {len(samples)} interleaved rounds")
        if cpu[name]:
            per_gib[name] = {key: middle([c[key] for c in cpu[name]]) for key in cpu[name][0]}


def middle(samples: list) -> Any:
    if not samples:
        raise RuntimeError("every round failed")
    return sorted(samples)[len(samples) // 2]


def bench_mounted(s: Setup, results: Results, system: str, root: Path, fresh: Callable[[], object],
                  ls_timeout: float, note: str = "") -> None:
    """The scenarios every mount runs; ``root`` is where the collection appears, ``fresh()`` remounts."""
    large, many = root / "large.bin", root / MANY
    with fresh():
        attempt(results, "ls -l 10k dir (cold)", system, lambda: ls_l(many, s.many, ls_timeout), note)
        attempt(results, "ls -l 10k dir (warm)", system, lambda: ls_l(many, s.many, ls_timeout), note)
        attempt(results, f"{RANDOM_READS} random 4 KiB reads", system,
                lambda: random_reads(large, s.large_size), note)
    with cold_read_row(s, results, system, fresh, large, note):
        attempt(results, "sequential read (warm)", system, lambda: read_whole_warm(large), note)
        attempt(results, f"write {s.writes} small files", system,
                lambda: write_small_files(root / f"writes-{system.split()[0]}", s.writes), note)


def bench_algofs(s: Setup, results: Results) -> None:
    from algofs_jupyter.mount import control
    from algofs_jupyter.mount.mount_process import MountProcess

    mountpoint = s.work / "mnt-algofs"
    cache_dir = s.work / "algofs-cache"

    @contextmanager
    def fresh(**options: Any) -> Iterator[MountProcess]:
        shutil.rmtree(cache_dir, ignore_errors=True)
        mount = MountProcess(mountpoint, s.api_url, s.api_key, cache_dir=cache_dir,
                             log_file=s.work / "algofs-mount.log", cache_size=4 << 30, **options)
        mount.start(60)
        try:
            yield mount
        finally:
            mount.stop()

    def over_http() -> AbstractContextManager[MountProcess]:  # as a mount of a server elsewhere reads
        return fresh(no_local_reads=True)

    root = mountpoint / "data" / USER / COLLECTION
    with fresh():
        attempt(results, "ls -l 10k dir (cold)", "algofs", lambda: ls_l(root / MANY, s.many, 60))
        attempt(results, "ls -l 10k dir (warm)", "algofs", lambda: ls_l(root / MANY, s.many, 60))
    with over_http():
        # Random reads: fetched vs touched from the daemon's stats (what `algofs status --json` shows),
        # over HTTP: a mount reading the server's own file fetches nothing at all.
        before = control.query(mountpoint, "status")["cache"]
        attempt(results, f"{RANDOM_READS} random 4 KiB reads", "algofs",
                lambda: random_reads(root / "large.bin", s.large_size))
        status = control.query(mountpoint, "status")
        block = status["cache"].get("block_size") or 8 * MiB
        results.facts.update(
            block_size=block, algofs_read_ahead_kb=status.get("options", {}).get("read_ahead_kb"),
            random_requested_bytes=RANDOM_READS * RANDOM_SIZE,
            random_fetched_bytes=status["cache"]["bytes_fetched"] - before["bytes_fetched"],
            random_touched_block_bytes=min(touched_blocks(s.large_size, block) * block, s.large_size))
    with cold_read_row(s, results, "algofs", fresh, root / "large.bin",
                       meter=lambda mount: {"server": s.server_pid, "daemon": mount.pid}):
        attempt(results, "sequential read (warm)", "algofs", lambda: read_whole_warm(root / "large.bin"))
        attempt(results, f"write {s.writes} small files", "algofs",
                lambda: write_small_files(root / "writes-algofs", s.writes), "upload on close")
        cache = control.query(mountpoint, "status")["cache"]
        results.facts["algofs_cache_after_reads"] = {k: cache.get(k) for k in (
            "size_bytes", "blocks", "hits", "misses", "bytes_fetched", "prefetched_blocks")}
    with cold_read_row(s, results, OVER_HTTP, over_http, root / "large.bin", "--no-local-reads",
                       meter=lambda mount: {"server": s.server_pid, "daemon": mount.pid}):
        pass


def bench_fsspec_fuse(s: Setup, results: Results) -> None:
    mountpoint = s.work / "mnt-fsspec"
    command = [sys.executable, str(Path(__file__).resolve()), "--fsspec-child", str(mountpoint)]
    env = s.env(ALGORITHMIA_API_KEY=s.api_key, ALGORITHMIA_API=s.api_url)

    @contextmanager
    def fresh() -> Iterator[None]:
        with fuse_child(command, mountpoint, env, s.work / "fsspec.log"):
            yield

    bench_mounted(s, results, "fsspec.fuse", mountpoint / COLLECTION, fresh,
                  ls_timeout=20 if s.quick else 120, note="threads=False")


def run_fsspec_child(mountpoint: str) -> int:
    import mfusepy

    sys.modules.setdefault("fuse", mfusepy)  # fsspec.fuse imports fusepy's module name
    from fsspec import fuse

    from algofs_jupyter.fs.filesystem import AlgoFileSystem

    fs = AlgoFileSystem(os.environ["ALGORITHMIA_API"], os.environ.pop("ALGORITHMIA_API_KEY"))
    fuse.run(fs, f"data/{USER}/", mountpoint, foreground=True, threads=False)
    return 0


def bench_rclone(s: Setup, results: Results) -> None:
    port = free_ports(1)[0]
    mountpoint = s.work / "mnt-rclone"
    config = s.work / "rclone.conf"
    config.write_text("")
    serve = ChildProcess("rclone serve webdav", s.work / "rclone-serve.log")
    serve.spawn(["rclone", "serve", "webdav", str(s.server_root / "data" / USER), "--addr",
                 f"127.0.0.1:{port}", "--config", str(config)])
    try:
        serve.wait_ready(lambda: http_ok(f"http://127.0.0.1:{port}/"), 30)
        cache_dir = s.work / "rclone-cache"

        @contextmanager
        def fresh() -> Iterator[None]:
            shutil.rmtree(cache_dir, ignore_errors=True)
            command = ["rclone", "mount", f":webdav,url='http://127.0.0.1:{port}/':", str(mountpoint),
                       "--config", str(config), "--vfs-cache-mode", "full", "--cache-dir", str(cache_dir)]
            with fuse_child(command, mountpoint, s.env(), s.work / "rclone-mount.log"):
                yield

        bench_mounted(s, results, "rclone mount", mountpoint / COLLECTION, fresh, ls_timeout=120,
                      note="vfs-cache-mode full")
    finally:
        serve.stop(term_timeout=15)



# ---------------------------------------------------------------------------------------- report
TARGETS = [
    ("cold sequential vs curl", "sequential read (cold)", "algofs", "sequential read (cold)", "curl", 0.7),
    ("(over HTTP) cold sequential vs curl", "sequential read (cold)", OVER_HTTP, "sequential read (cold)",
     "curl", 0.7),
    ("warm sequential vs local disk", "sequential read (warm)", "algofs", "sequential read (warm)",
     "local disk", 0.5),
    ("cold sequential vs the FUSE ceiling (issue 26)", "sequential read (cold)", "algofs",
     "sequential read (cold)", "FUSE ceiling", 0.6),
    ("(baseline) cold sequential vs the FUSE ceiling", "sequential read (cold)", "algofs (baseline)",
     "sequential read (cold)", "FUSE ceiling", 0.6),
    ("(over HTTP) cold sequential vs the FUSE ceiling", "sequential read (cold)", OVER_HTTP,
     "sequential read (cold)", "FUSE ceiling", 0.6),
]


def target_lines(results: Results) -> list[str]:
    lines = ["| Target | Measured | Goal | Met |", "|---|---|---|---|"]
    for label, sa, ya, sb, yb, goal in TARGETS:
        a, b = results.get(sa, ya), results.get(sb, yb)
        if (ya.endswith("(baseline)") or ya == OVER_HTTP) and a is None:
            continue
        if a and b and a.value and b.value:
            ratio = a.value / b.value
            lines.append(f"| {label} | {ratio:.2f}× ({a.value:.0f} vs {b.value:.0f} MB/s) | ≥ {goal}× | "
                         f"{'yes' if ratio >= goal else 'no'} |")
        else:
            lines.append(f"| {label} | n/a | ≥ {goal}× | no |")
    fetched = results.facts.get("random_fetched_bytes")
    requested = results.facts.get("random_requested_bytes")
    touched = results.facts.get("random_touched_block_bytes")
    if isinstance(fetched, int) and isinstance(requested, int) and requested:
        blocks = f"; the {touched / MiB:.0f} MiB of blocks they touch" if isinstance(touched, int) else ""
        lines.append(f"| random reads: bytes fetched vs bytes read | {fetched / MiB:.1f} MiB / "
                     f"{requested / MiB:.1f} MiB = {fetched / requested:.2f}×{blocks} | ≤ 2× | "
                     f"{'yes' if fetched <= 2 * requested else 'no'} |")
    ceiling, curl, ours = (results.get("sequential read (cold)", system)
                           for system in ("FUSE ceiling", "curl", "algofs"))
    if ceiling and curl and ours and ceiling.value and curl.value and ours.value:
        lines.append(f"| (context) Python FUSE ceiling vs curl | {ceiling.value / curl.value:.2f}× "
                     f"({ceiling.value:.0f} MB/s, no network); algofs reaches "
                     f"{ours.value / ceiling.value:.0%} of it | – | – |")
    warm = results.get("ls -l 10k dir (warm)", "algofs")
    if warm and warm.seconds is not None:
        lines.append(f"| warm `ls -l` of the 10,000-file directory | {warm.seconds:.3f} s | < 0.1 s | "
                     f"{'yes' if warm.seconds < 0.1 else 'no'} |")
    return lines


def cpu_lines(results: Results) -> list[str]:
    """Where the CPU of a cold sequential read goes; on a 2-core loopback run CPU is what limits it."""
    cpu = results.facts.get("cpu_per_gib") or {}
    if not cpu:
        return []
    cores = os.cpu_count() or 1
    lines = ["## CPU per GiB of the cold sequential read", "",
             f"Core-seconds per GiB, last of the {COLD_RUNS} cold runs (`/proc/PID/stat`, `getrusage`). "
             f"Everything shares {cores} cores, so a read cannot take less wall time than total / {cores}.",
             "",
             "| System | server | FUSE daemon | reader (or curl) | total | floor: total / cores | "
             "MB/s at that floor |", "|---|---|---|---|---|---|---|"]
    for system, spent in cpu.items():
        total = sum(spent.values())
        floor = total / cores
        reader = spent.get("curl", spent.get("reader", 0.0))
        if not floor:
            continue
        lines.append(f"| {system} | {spent.get('server', 0):.2f} | {spent.get('daemon', 0):.2f} | "
                     f"{reader:.2f} | {total:.2f} | {floor:.2f} s | {GiB / floor / 1e6:.0f} |")
    curl, ceiling = cpu.get("curl"), cpu.get("FUSE ceiling")
    if curl and ceiling:
        # Any FUSE mount over HTTP pays what curl pays (the server sends, a client receives) plus what the
        # FUSE path alone costs (the passthrough daemon and its reader): its floor is their sum / cores.
        bound = (sum(curl.values()) + sum(ceiling.values())) / cores
        row = results.get("sequential read (cold)", "curl")
        ratio = f", {GiB / bound / 1e6 / row.value:.2f}× curl's measured speed" if row and row.value else ""
        lines += ["", f"A FUSE mount over HTTP does curl's work plus the FUSE path's: at least "
                  f"{bound * cores:.2f} core-s per GiB here, so at best {GiB / bound / 1e6:.0f} MB/s{ratio}, "
                  "with no block cache, no work beyond the Python passthrough's, and perfect overlap."]
    return [*lines, ""]


def write_report(s: Setup, results: Results, started: float, out: Path = RESULTS) -> None:
    out.mkdir(parents=True, exist_ok=True)
    scenarios = list(dict.fromkeys(r.scenario for r in results.rows))
    lines = [
        "# Filesystem benchmark", "",
        f"Command: `python bench/run.py{' --quick' if s.quick else ''}` — {time.strftime('%Y-%m-%d %H:%M')}, "
        f"{platform.platform()}, {os.cpu_count()} cores, wall time {time.time() - started:.0f} s.",
        f"Large file {s.large_size / MiB:.0f} MiB, directory of {s.many:,} files, {s.writes:,} small "
        f"writes of 1 KiB, {RANDOM_READS:,} random {RANDOM_SIZE // 1024} KiB reads. All over 127.0.0.1; "
        "one `algofs serve` holds the data; rclone serves the same directory over WebDAV.", "",
        "## Targets", "", *target_lines(results), "",
        *cpu_lines(results),
        "## Results", "", "| Scenario | System | Time (s) | MB/s | Notes |", "|---|---|---|---|---|",
    ]
    for scenario in scenarios:
        for row in (r for r in results.rows if r.scenario == scenario):
            seconds = "failed" if row.seconds is None else f"{row.seconds:.3f}"
            value = f"{row.value:.0f}" if row.value else ""
            lines.append(f"| {row.scenario} | {row.system} | {seconds} | {value} | {row.note} |")
    lines += ["", "## Details", "", "```json", json.dumps(results.facts, indent=2, default=str), "```", ""]
    (out / "filesystem.md").write_text("\n".join(lines))
    (out / "filesystem.json").write_text(json.dumps(
        {"quick": s.quick, "rows": [r.__dict__ for r in results.rows], "facts": results.facts}, indent=2,
        default=str))
    draw_chart(results, out / "filesystem.png", s)


def draw_chart(results: Results, target: Path, s: Setup) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("Sequential read (MB/s, higher is better)", ["sequential read (cold)", "sequential read (warm)"],
         "value", False),
        (f"{RANDOM_READS} random 4 KiB reads (s, lower is better)", [f"{RANDOM_READS} random 4 KiB reads"],
         "seconds", False),
        (f"ls -l of {s.many:,} files (s, log, lower is better)",
         ["ls -l 10k dir (cold)", "ls -l 10k dir (warm)"], "seconds", True),
        (f"Write {s.writes:,} small files (s, lower is better)", [f"write {s.writes} small files"],
         "seconds", False),
    ]
    fig, axes = plt.subplots(2, 2, figsize=(13, 8))
    for ax, (title, scenarios, attr, log) in zip(axes.flat, panels, strict=True):
        systems = list(dict.fromkeys(r.system for r in results.rows if r.scenario in scenarios))
        width = 0.8 / max(1, len(scenarios))
        for i, scenario in enumerate(scenarios):
            values = []
            for system in systems:
                row = results.get(scenario, system)
                values.append(getattr(row, attr) or 0 if row else 0)
            xs = [x + i * width for x in range(len(systems))]
            bars = ax.bar(xs, values, width, label=scenario)
            ax.bar_label(bars, labels=[f"{v:.3g}" if v else "–" for v in values], fontsize=7)
        ax.set_xticks([x + width * (len(scenarios) - 1) / 2 for x in range(len(systems))], systems,
                      fontsize=8, rotation=15)
        ax.set_title(title, fontsize=10)
        if log and any(bar.get_height() > 0 for bar in ax.patches):  # a subset may leave a panel empty
            ax.set_yscale("log")
        if len(scenarios) > 1:
            ax.legend(fontsize=7)
    fig.suptitle(f"algofs vs peers ({'quick' if s.quick else 'full'} run, {s.large_size / MiB:.0f} MiB file)")
    fig.tight_layout()
    fig.savefig(target, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------------------------- main
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, under two minutes")
    parser.add_argument("--only", nargs="*", choices=["baselines", "algofs", "fsspec", "rclone", "seq"],
                        help="run only these parts (the report then holds only them); seq: only the cold "
                        "sequential read of the FUSE ceiling and algofs, interleaved (issue 26's ratio)")
    parser.add_argument("--baseline-src", default="", metavar="DIR",
                        help="with seq: also read through the algofs_jupyter of DIR (e.g. `git archive "
                        "<commit> algofs_jupyter | tar -x -C DIR`) as 'algofs (baseline)', same rounds")
    parser.add_argument("--results", type=Path, default=RESULTS, metavar="DIR",
                        help=f"where the report goes (default {RESULTS}); a trial run need not replace it")
    parser.add_argument("--fsspec-child", metavar="MOUNTPOINT", help=argparse.SUPPRESS)
    parser.add_argument("--latency-ms", type=float, default=0.0,
                        help="run the small-file, ls -l and sequential rows on loopback and through a delay "
                        "proxy of this many ms (bench/small_files.py)")
    args = parser.parse_args()
    if args.fsspec_child:
        return run_fsspec_child(args.fsspec_child)
    if args.latency_ms:
        # the small-file scenario's own command (a scenario imports no other): same run, same report
        small_files = [sys.executable, str(Path(__file__).resolve().parent / "small_files.py"),
                       "--latency-ms", f"{args.latency_ms:g}", *(["--quick"] if args.quick else [])]
        return subprocess.call(small_files)

    from algofs_jupyter.server.embedded_server import EmbeddedServer

    started = time.time()
    work = Path(tempfile.mkdtemp(prefix="algofs-bench-"))
    server_root = work / "serve"
    api_key = "bench-" + secrets.token_urlsafe(16)
    large_size = (128 if args.quick else 1024) * MiB
    parts = args.only or ["baselines", "algofs", "fsspec", "rclone"]
    print(f"preparing data in {work} ...", flush=True)
    make_data(server_root / "data" / USER / COLLECTION, large_size, 10_000)
    server = EmbeddedServer(server_root, users={USER: api_key})
    results = Results()
    try:
        server.start(60)
        s = Setup(work, server_root, server.url, api_key, large_size, 10_000, 200 if args.quick else 1000,
                  args.quick, server.pid)
        steps = {"baselines": bench_baselines, "algofs": bench_algofs, "fsspec": bench_fsspec_fuse,
                 "rclone": bench_rclone,
                 "seq": lambda s, results: bench_sequential(s, results, args.baseline_src)}
        for name in parts:
            print(f"[{name}]", flush=True)
            try:
                steps[name](s, results)
            except Exception as exc:  # keep measuring the others
                print(f"  {name} failed: {type(exc).__name__}: {exc}", flush=True)
                results.facts[f"{name}_error"] = f"{type(exc).__name__}: {exc}"
        write_report(s, results, started, args.results)
        print("\n".join(target_lines(results)))
        print("\n".join(cpu_lines(results)))
        print(f"wrote {args.results / 'filesystem.md'} and {args.results / 'filesystem.png'}")
    finally:
        server.stop()
        for leftover in work.glob("mnt-*"):
            unmount(leftover)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
