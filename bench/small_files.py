"""Small-file benchmark: many small files read whole, algofs vs its peers, side by side in one run.

    python bench/small_files.py                    # 2,000 x 4 KiB and 10,000 x 16 KiB, loopback
    python bench/small_files.py --latency-ms 20    # the same, then again through a 20 ms delay proxy
    python bench/small_files.py --quick            # 2,000 x 4 KiB only
    python bench/run.py --latency-ms 20            # the same as the second line

Each dataset is read whole (``open``/``read``/``close`` per file, as a PyTorch ``Dataset`` does) after a
listing, one after another in listing order by one process ("serial"), and in a shuffled order split
over 4 reader processes ("4 readers"), cold (fresh mount, empty cache) and warm (again). Systems:
``algofs mount`` (defaults), the official ``algorithmia`` client (``file().getBytes()``, serially and in
4 processes), ``rclone mount --vfs-cache-mode full`` over ``rclone serve webdav`` of the server's data,
and the files read from the server's disk. With ``--latency-ms N`` the ``ls -l``, small-file and a
sequential read (cold) rows are repeated through ``bench/delay_proxy.py`` (every request's first byte
delayed N ms), for algofs, the official client and rclone alike.

Results: ``results/small_files.md`` (table, targets, load) and ``results/small_files.png`` (chart).
Everything started or mounted here is stopped or unmounted in ``finally`` blocks.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness as base  # noqa: E402 - the bench harness (mounts, processes, rows)
import loader as loading  # noqa: E402 - the data-loader rows' readers and trees
from small_files_report import BASELINE_SYSTEM, READ_ONLY_SYSTEM, target_lines, write_report  # noqa: E402 - tables, chart

from algofs_jupyter.supervise import ChildProcess  # noqa: E402
from algofs_jupyter.testing.ports import free_ports  # noqa: E402

USER, COLLECTION = base.USER, base.COLLECTION
READERS = 4
KiB = 1 << 10
PROXY = Path(__file__).resolve().parent / "delay_proxy.py"
#: What ``--only`` chooses from: systems, then the row groups besides the 2 small-file sets ("sets").
PARTS = ("local", "client", "algofs", "readonly", "rclone", "sets", "loader", "many")
LOADER = Path(__file__).resolve().parent / "loader.py"
#: The image-folder tree of the loader rows: classes x files per class x bytes per file.
LOADER_TREE = (10, 500, 16 * KiB)


# --------------------------------------------------------------------------------------- readers
def read_list(paths: list[str], buffering: int = -1) -> int:
    """The Python loop: ``open(p, "rb").read()`` per file. With the default buffering Python 3.11 asks
    ``isatty()`` of each file (an ioctl the kernel forwards to a FUSE daemon); ``buffering=0`` does not."""
    total = 0
    for path in paths:
        with open(path, "rb", buffering=buffering) as handle:
            total += len(handle.read())
    return total


def client_read_list(uris: list[str]) -> int:
    import Algorithmia

    client = Algorithmia.client(api_key=os.environ.pop("ALGORITHMIA_API_KEY"),
                                api_address=os.environ["ALGORITHMIA_API"])
    return sum(len(client.file(uri).getBytes()) for uri in uris)


def reader_child(mode: str, listing: str) -> int:
    """A reader process: says ready, waits for "go" on stdin, reads its list, exits."""
    items = Path(listing).read_text().splitlines()
    if mode == "client":
        import Algorithmia  # noqa: F401 - imported before "go", like the files are listed before

    print("ready", flush=True)
    sys.stdin.readline()
    (client_read_list if mode == "client" else read_list)(items)
    return 0


def parallel(mode: str, items: list[str], work: Path, env: dict[str, str] | None = None) -> float:
    """Wall time of ``READERS`` processes reading ``items`` shuffled and split between them."""
    shuffled = items[:]
    random.Random(7).shuffle(shuffled)
    procs = []
    try:
        for index in range(READERS):
            listing = work / f"readers-{index}.txt"
            listing.write_text("\n".join(shuffled[index::READERS]))
            procs.append(subprocess.Popen([sys.executable, __file__, "--reader", mode, str(listing)],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True))
        for proc in procs:
            if proc.stdout is None or proc.stdout.readline().strip() != "ready":
                raise RuntimeError("reader did not start")
        start = time.perf_counter()
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        for proc in procs:
            if proc.wait(600) != 0:
                raise RuntimeError(f"reader exited with {proc.returncode}")
        return time.perf_counter() - start
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def awake_cpus(action: Callable[[], float]) -> float:
    """``action`` while a ``SCHED_IDLE`` busy loop runs on every CPU: an idle vCPU never halts, so a
    request never waits for one to wake (what the kernel's guest halt polling does; off on these VMs,
    bench/README.md). The loops take no CPU time from anything else."""
    loops = [subprocess.Popen(["chrt", "-i", "0", sys.executable, "-c", "while True: pass"])
             for _ in range(os.cpu_count() or 1)]
    try:
        time.sleep(0.3)
        return action()
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()


#: A module parameter of this machine kind's kernel (not in every kernel): when Y, a FUSE request wakes
#: the daemon's thread on the requesting CPU, which then needs no other vCPU woken (bench/README.md).
FUSE_WAKE_HERE = Path("/sys/module/fuse/parameters/wake_here")


def fuse_wakes_here(action: Callable[[], float]) -> float:
    """``action`` with ``FUSE_WAKE_HERE`` set to Y, then set back to what it was."""
    before = FUSE_WAKE_HERE.read_text().strip()
    FUSE_WAKE_HERE.write_text("Y")
    try:
        return action()
    finally:
        FUSE_WAKE_HERE.write_text(before)


def can_set_fuse_wake_here() -> bool:
    return FUSE_WAKE_HERE.exists() and os.access(FUSE_WAKE_HERE, os.W_OK)


def one_cpu(daemon_pid: int, action: Callable[[], float]) -> float:
    """``action`` with this process and every thread of ``daemon_pid`` on CPU 0 only, then back: a FUSE
    round trip that never leaves the reader's CPU, which is what ``fuse.wake_here`` gets from the kernel
    (bench/README.md). Threads the daemon starts meanwhile inherit CPU 0 and are put back too."""
    def threads() -> list[int]:
        return [int(tid) for tid in os.listdir(f"/proc/{daemon_pid}/task")]

    mine, theirs = os.sched_getaffinity(0), os.sched_getaffinity(daemon_pid)
    try:
        for tid in threads():
            os.sched_setaffinity(tid, {0})
        os.sched_setaffinity(0, {0})
        return action()
    finally:
        os.sched_setaffinity(0, mine)
        for tid in threads():
            try:
                os.sched_setaffinity(tid, theirs)
            except ProcessLookupError:  # a worker thread that has exited since
                pass


# --------------------------------------------------------------------------------------- set-up
def make_small(collection: Path, name: str, count: int, size: int) -> list[str]:
    folder = collection / name
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for index in range(count):
        file_name = f"s{index:05d}.bin"
        (folder / file_name).write_bytes(os.urandom(size))
        names.append(file_name)
    return names


@contextmanager
def delay_proxy(target_url: str, delay_ms: float, work: Path) -> Iterator[str]:
    """``target_url`` itself for 0 ms, else the URL of a delay proxy in front of it (it prints its port)."""
    if not delay_ms:
        yield target_url
        return
    port = target_url.rpartition(":")[2].strip("/")
    proxy = ChildProcess("delay proxy", work / f"delay-proxy-{port}.log")
    proxy.log_path.unlink(missing_ok=True)  # its first line is this run's port
    proxy.spawn([sys.executable, str(PROXY), "--target", f"127.0.0.1:{port}", "--delay-ms", str(delay_ms)])

    def listening() -> str | None:
        first, newline, _ = proxy.log_path.read_text().partition("\n")
        return first if newline and first.isdigit() else None

    try:
        proxy.wait_ready(lambda: listening() is not None, 30)
        yield f"http://127.0.0.1:{listening()}"
    finally:
        proxy.stop(term_timeout=15)


class Bench:
    def __init__(self, work: Path, server_root: Path, api_key: str,
                 datasets: list[tuple[str, list[str], int]], results: base.Results):
        self.work, self.server_root, self.api_key = work, server_root, api_key
        self.datasets, self.results = datasets, results
        self.loader_names: list[str] = []  # the loader tree's files (relative paths)
        self.torch_path = ""  # a directory holding torch, when it is not in the venv
        #: (system name, source tree, mount options) of each algofs measured: this checkout (also mounted
        #: ``--read-only`` with the part "readonly"), and ``--baseline-src``'s
        self.algofs_sources: list[tuple[str, str, dict[str, object]]] = [("algofs", "", {})]

    def label(self, name: str, count: int, size: int, latency: float, how: str) -> str:
        suffix = f" @{latency:g} ms" if latency else ""
        return f"{count} x {size // KiB} KiB {how}{suffix}"

    def files_row(self, scenario: str, system: str, count: int, action: Callable[[], float],
                  note: str = "") -> None:
        def measure() -> tuple[float, None]:
            return action(), None

        base.attempt(self.results, scenario, system, measure, note)
        row = self.results.rows[-1]
        if row.seconds:
            row.value = count / row.seconds  # files/s in the value column
            row.note = (row.note + f" {row.value:.0f} files/s").strip()

    # -- systems ----------------------------------------------------------------------------------
    def local(self, latency: float) -> None:
        for name, names, size in self.datasets:
            folder = self.server_root / "data" / USER / COLLECTION / name
            paths = [str(folder / n) for n in names]
            read_list(paths)  # page cache
            self.files_row(self.label(name, len(names), size, latency, "serial"), "local disk", len(names),
                           lambda p=paths: base.timed(lambda: read_list(p))[0], "page cache")
            self.files_row(self.label(name, len(names), size, latency, "serial (unbuffered)"), "local disk",
                           len(names), lambda p=paths: base.timed(lambda: read_list(p, 0))[0],
                           "page cache, open(p, 'rb', buffering=0)")
            self.files_row(self.label(name, len(names), size, latency, "4 readers"), "local disk", len(names),
                           lambda p=paths: parallel("files", p, self.work), "page cache")

    def client(self, api_url: str, latency: float) -> None:
        import Algorithmia

        client = Algorithmia.client(api_key=self.api_key, api_address=api_url)
        env = {**os.environ, "ALGORITHMIA_API_KEY": self.api_key, "ALGORITHMIA_API": api_url}
        for name, names, size in self.datasets:
            uris = [f"data://{USER}/{COLLECTION}/{name}/{n}" for n in names]
            self.files_row(self.label(name, len(names), size, latency, "serial (cold)"), "official client",
                           len(names),
                           lambda u=uris: base.timed(lambda: [client.file(x).getBytes() for x in u])[0],
                           "getBytes()")
            self.files_row(self.label(name, len(names), size, latency, "4 readers (cold)"), "official client",
                           len(names), lambda u=uris: parallel("client", u, self.work, env), "4 processes")
        first = self.datasets[0]
        base.attempt(self.results, f"ls -l {len(first[1])} files" + (f" @{latency:g} ms" if latency else ""),
                     "official client", lambda: (base.timed(lambda: [f.getName() for f in client.dir(
                         f"data://{USER}/{COLLECTION}/{first[0]}").files()])[0], None), "dir().files()")

    def mounted(self, system: str, root: Path, fresh: Callable[[], object], latency: float,
                status: Callable[[], dict] | None = None) -> None:
        for name, names, size in self.datasets:
            folder = root / name
            paths = [str(folder / n) for n in names]
            for how in ("serial", "4 readers"):
                with fresh() as system_process:  # type: ignore[attr-defined]
                    if how == "serial" and name == self.datasets[0][0]:
                        base.attempt(self.results, f"ls -l {len(names)} files" +
                                     (f" @{latency:g} ms" if latency else ""), system,
                                     lambda f=folder, n=len(names): base.ls_l(f, n, 600))
                    else:
                        os.listdir(folder)  # the loader lists first: attributes for every file
                    before = status() if status else None

                    def go(p: list[str] = paths, h: str = how) -> float:
                        if h == "serial":
                            return base.timed(lambda: read_list(p))[0]
                        return parallel("files", p, self.work)

                    self.files_row(self.label(name, len(names), size, latency, f"{how} (cold)"), system,
                                   len(names), go)
                    if status and before is not None:
                        self.results.rows[-1].note += ", " + prefetch_note(before, status())
                    if latency and how == "4 readers":
                        continue
                    before = status()["backend"]["requests_sent"] if status else None
                    self.files_row(self.label(name, len(names), size, latency, f"{how} (warm)"), system,
                                   len(names), go)  # the 2nd pass: a loader's 2nd epoch
                    if status and before is not None:
                        sent = status()["backend"]["requests_sent"] - before
                        self.results.rows[-1].note += f", {sent} requests"
                    if how == "serial":  # the steady state, to compare the 2nd pass with
                        self.files_row(self.label(name, len(names), size, latency, "serial (3rd pass)"),
                                       system, len(names), go)
                        self.files_row(self.label(name, len(names), size, latency, "serial (unbuffered)"),
                                       system, len(names),
                                       lambda p=paths: base.timed(lambda: read_list(p, 0))[0],
                                       "open(p, 'rb', buffering=0): no isatty ioctl")
                        if shutil.which("chrt"):
                            self.files_row(self.label(name, len(names), size, latency,
                                                      "serial (warm, vCPUs awake)"), system, len(names),
                                           lambda g=go: awake_cpus(g),
                                           "idle-priority busy loops on every CPU: no vCPU halts")
                        if can_set_fuse_wake_here():
                            self.files_row(self.label(name, len(names), size, latency,
                                                      "serial (warm, FUSE wakes here)"), system, len(names),
                                           lambda g=go: fuse_wakes_here(g),
                                           f"{FUSE_WAKE_HERE} = Y for this row: the daemon's thread runs on "
                                           "the reader's CPU")
                        daemon_pid = getattr(system_process, "pid", None)
                        if daemon_pid and (os.cpu_count() or 1) > 1:
                            self.files_row(self.label(name, len(names), size, latency,
                                                      "serial (warm, one CPU)"), system, len(names),
                                           lambda g=go, d=daemon_pid: one_cpu(d, g),
                                           "the reader and the daemon's threads on CPU 0 (sched_setaffinity)")

    def algofs(self, api_url: str, latency: float, large: Path | None, system: str = "algofs",
               source: str = "", overrides: dict[str, object] | None = None) -> None:
        from algofs_jupyter.mount import control
        from algofs_jupyter.mount.mount_process import MountProcess

        mountpoint, cache_dir = self.work / "mnt-algofs", self.work / "algofs-cache"
        current: list[MountProcess] = []

        @contextmanager
        def fresh() -> Iterator[MountProcess]:
            shutil.rmtree(cache_dir, ignore_errors=True)
            mount = MountProcess(mountpoint, api_url, self.api_key, cache_dir=cache_dir,
                                 log_file=self.work / "algofs-mount.log", cache_size=4 << 30,
                                 **(overrides or {}))
            with base.source_tree(source):
                mount.start(60)
            current.append(mount)
            try:
                yield mount
            finally:
                mount.stop()
                current.pop()

        self.mounted(system, mountpoint / "data" / USER / COLLECTION, fresh, latency,
                     status=lambda: control.query(mountpoint, "status"))
        if large is not None:
            with fresh() as mount:
                path = mountpoint / "data" / USER / COLLECTION / large.name
                cpu = base.process_cpu(mount.pid)
                base.attempt(self.results, f"sequential read (cold) @{latency:g} ms", system,
                             lambda: base.read_whole(path))
                spent = base.process_cpu(mount.pid) - cpu
                per_gib = spent / (large.stat().st_size / base.GiB)
                self.results.rows[-1].note = f"daemon {per_gib:.2f} core-s/GiB"

    def rclone(self, latency: float, large: Path | None) -> None:
        port = free_ports(1)[0]
        config = self.work / "rclone.conf"
        config.write_text("")
        serve = ChildProcess("rclone serve webdav", self.work / "rclone-serve.log")
        serve.spawn(["rclone", "serve", "webdav", str(self.server_root / "data" / USER),
                     "--addr", f"127.0.0.1:{port}", "--config", str(config)])
        try:
            serve.wait_ready(lambda: base.http_ok(f"http://127.0.0.1:{port}/"), 30)
            with delay_proxy(f"http://127.0.0.1:{port}", latency, self.work) as url:
                mountpoint, cache_dir = self.work / "mnt-rclone", self.work / "rclone-cache"

                @contextmanager
                def fresh() -> Iterator[None]:
                    shutil.rmtree(cache_dir, ignore_errors=True)
                    command = ["rclone", "mount", f":webdav,url='{url}/':", str(mountpoint), "--config",
                               str(config), "--vfs-cache-mode", "full", "--cache-dir", str(cache_dir)]
                    log = self.work / "rclone-mount.log"
                    with base.fuse_child(command, mountpoint, dict(os.environ), log):
                        yield

                self.mounted("rclone mount", mountpoint / COLLECTION, fresh, latency)
                if large is not None:
                    with fresh():
                        base.attempt(self.results, f"sequential read (cold) @{latency:g} ms", "rclone mount",
                                     lambda: base.read_whole(mountpoint / COLLECTION / large.name))
        finally:
            serve.stop(term_timeout=15)

    # -- a data loader and a many-file tree ------------------------------------------------------
    def loader_row(self, system: str, mode: str, root: str, names: list[str],
                   env: dict[str, str] | None = None, status: Callable[[], dict] | None = None,
                   how: str = "") -> None:
        """Two epochs of the loader child over ``names``: rows "(cold)" (epoch 1) and "(warm)" (epoch 2).
        ``how``: added to the label (how the loader found its names)."""
        listing = self.work / "loader-items.txt"
        listing.write_text("\n".join(names))
        label = f"loader {len(names)} x {LOADER_TREE[2] // KiB} KiB, {loading.WORKERS} workers shuffled{how}"
        before = status() if status else None
        try:
            proc = subprocess.run([sys.executable, str(LOADER), "loader", mode, root, str(listing),
                                   self.torch_path], capture_output=True, text=True, env=env, timeout=1800)
            if proc.returncode:
                raise RuntimeError(proc.stderr.strip()[-300:])
            answer = json.loads(proc.stdout.strip().splitlines()[-1])
        except Exception as exc:  # recorded as failed rows
            for epoch in ("cold", "warm"):
                self.results.add(f"{label} (epoch {1 if epoch == 'cold' else 2}, {epoch})", system, None,
                                 note=f"({type(exc).__name__}: {exc})")
            return
        for index, seconds in enumerate(answer["epochs"]):
            epoch = f"epoch {index + 1}, {'cold' if index == 0 else 'warm'}"
            self.files_row(f"{label} ({epoch})", system, len(names), lambda s=seconds: s, answer["loader"])
        if status and before is not None:
            self.results.rows[-2].note += ", " + prefetch_note(before, status())

    def loader(self, api_url: str, parts: list[str]) -> None:
        names = self.loader_names
        if "local" in parts:
            root = self.server_root / "data" / USER / COLLECTION / "loader"
            loading.walk_and_read(root)  # page cache, like the local rows
            self.loader_row("local disk", "files", str(root), names)
        if "client" in parts:
            env = {**os.environ, "ALGORITHMIA_API_KEY": self.api_key, "ALGORITHMIA_API": api_url}
            self.loader_row("official client", "client", f"data://{USER}/{COLLECTION}/loader", names, env)
        mounted = self.work / "mnt-algofs" / "data" / USER / COLLECTION / "loader"
        for system, source, overrides in self.algofs_sources if "algofs" in parts else []:
            # ImageFolder lists the tree before the first epoch; a loader with its names from an index (a
            # CSV of paths) never lists a directory. Each on a fresh mount.
            for walk_first, how in ((True, ""), (False, ", from an index")):
                with self.algofs_mount(api_url, source, **overrides) as (mount, status):
                    if walk_first:
                        for _ in os.walk(mounted):
                            pass
                    self.loader_row(system, "files", str(mounted), names, status=status, how=how)

    def many(self, api_url: str, count: int, system: str = "algofs", source: str = "") -> None:
        """Walk + read each file of the ``count``-file tree once (fresh mount); daemon RSS before/after."""
        label = f"walk + read {count} files once"
        with self.algofs_mount(api_url, source) as (mount, status):
            root = self.work / "mnt-algofs" / "data" / USER / COLLECTION / "many"
            before = loading.rss_mib(mount.pid)

            def measure() -> float:
                seconds, (files, _) = base.timed(lambda: loading.walk_and_read(root))  # type: ignore[misc]
                if files != count:
                    raise RuntimeError(f"{files} files read, {count} expected")
                return seconds

            self.files_row(label, system, count, measure)
            after = loading.rss_mib(mount.pid)
            self.results.rows[-1].note += f", daemon RSS {before:.0f} -> {after:.0f} MiB{held_note(status)}"
            self.results.facts[f"many_rss_mib {system}"] = after

    @contextmanager
    def algofs_mount(self, api_url: str, source: str = "",
                     **overrides: object) -> Iterator[tuple[object, Callable[[], dict]]]:
        from algofs_jupyter.mount import control
        from algofs_jupyter.mount.mount_process import MountProcess

        mountpoint, cache_dir = self.work / "mnt-algofs", self.work / "algofs-cache"
        shutil.rmtree(cache_dir, ignore_errors=True)
        mount = MountProcess(mountpoint, api_url, self.api_key, cache_dir=cache_dir,
                             log_file=self.work / "algofs-mount.log", cache_size=4 << 30, **overrides)
        with base.source_tree(source):
            mount.start(60)
        try:
            yield mount, lambda: control.query(mountpoint, "status")
        finally:
            mount.stop()

    def client_sequential(self, api_url: str, latency: float, large: Path) -> None:
        import Algorithmia

        client = Algorithmia.client(api_key=self.api_key, api_address=api_url)
        uri = f"data://{USER}/{COLLECTION}/{large.name}"

        def fetch() -> tuple[float, int]:
            seconds, local = base.timed(lambda: client.file(uri).getFile())
            size = os.path.getsize(local.name)
            os.unlink(local.name)
            return seconds, size

        base.attempt(self.results, f"sequential read (cold) @{latency:g} ms", "official client", fetch,
                     "getFile()")


def held_note(status: Callable[[], dict]) -> str:
    """What the daemon holds per file after the walk, against its caps (docs/filesystem.md, "What the daemon
    keeps per file"): cached attributes, small files in memory, paths the kernel holds nodes for."""
    try:
        now = status()
    except (OSError, RuntimeError):
        return ""
    metadata, small, nodes = now.get("metadata", {}), now.get("small_files", {}), now.get("nodes", {})
    return (f" (held: {metadata.get('entries', 0) + metadata.get('listed_entries', 0)} attributes, "
            f"{small.get('files', 0)} small files, {nodes.get('paths', 0)} of {nodes.get('soft_limit', 0)} "
            "node paths)")


def prefetch_note(before: dict, after: dict) -> str:
    """Requests the daemon sent, and prefetched small files no reader read (yet) between two statuses."""
    def value(status: dict, *keys: str) -> int:
        for key in keys:
            status = status.get(key, {}) if isinstance(status, dict) else {}
        return status if isinstance(status, int) else 0

    def delta(*keys: str) -> int:
        return value(after, *keys) - value(before, *keys)

    fetched, hits = delta("small_files", "prefetches"), delta("small_files", "prefetch_hits")
    return (f"{delta('backend', 'requests_sent')} requests, {fetched} prefetches, {fetched - hits} "
            "prefetched never read")


def run_bench(quick: bool, latency_ms: float, parts: list[str], many: int = 0, torch_path: str = "",
              baseline: str = "") -> int:
    from algofs_jupyter.server.embedded_server import EmbeddedServer

    started = time.time()
    load = [subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()]
    work = Path(tempfile.mkdtemp(prefix="algofs-small-"))
    server_root = work / "serve"
    api_key = "bench-" + secrets.token_urlsafe(16)
    collection = server_root / "data" / USER / COLLECTION
    datasets = [("small4k", make_small(collection, "small4k", 2000, 4 * KiB), 4 * KiB)]
    if not quick:
        datasets.append(("small16k", make_small(collection, "small16k", 10_000, 16 * KiB), 16 * KiB))
    loader_names = loading.make_image_folder(collection / "loader", *LOADER_TREE) if "loader" in parts else []
    if many and "many" in parts:
        print(f"[creating {many} files]", flush=True)
        loading.make_many(collection / "many", many)
    large = collection / "large.bin"
    with open(large, "wb") as handle:
        for _ in range((64 if quick else 256) // 8):
            handle.write(os.urandom(8 << 20))
    server = EmbeddedServer(server_root, users={USER: api_key})
    results = base.Results()
    try:
        with base.source_tree(baseline):  # one server for both trees: the baseline's
            server.start(60)
        for latency in [0.0] + ([latency_ms] if latency_ms else []):
            print(f"[latency {latency:g} ms]", flush=True)
            sets = datasets if not latency else datasets[:1]
            bench = Bench(work, server_root, api_key, sets, results)
            bench.loader_names, bench.torch_path = loader_names, torch_path
            if "readonly" in parts:
                bench.algofs_sources.append((READ_ONLY_SYSTEM, "", {"read_only": True}))
            if baseline:
                bench.algofs_sources.append((BASELINE_SYSTEM, baseline, {}))
            with delay_proxy(server.url, latency, work) as url:
                if "sets" in parts:
                    if "local" in parts and not latency:
                        bench.local(latency)
                    if "client" in parts:
                        bench.client(url, latency)
                        if latency:
                            bench.client_sequential(url, latency, large)
                    for system, source, overrides in bench.algofs_sources if "algofs" in parts else []:
                        bench.algofs(url, latency, large if latency else None, system, source, overrides)
                if "loader" in parts and not latency:
                    bench.loader(url, parts)
                if "many" in parts and many and not latency:
                    for system, source, overrides in bench.algofs_sources:
                        if not overrides:  # the default mount's memory (a read-only one keeps less)
                            bench.many(url, many, system, source)
            if "rclone" in parts and "sets" in parts:
                bench.rclone(latency, large if latency else None)
        load.append(subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
        write_report(results, started, load, argparse.Namespace())
        print("\n".join(target_lines(results)))
    finally:
        server.stop()
        for leftover in work.glob("mnt-*"):
            base.unmount(leftover)
        shutil.rmtree(work, ignore_errors=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 x 4 KiB only, 64 MiB sequential file")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="also run through a delay proxy")
    parser.add_argument("--only", nargs="*", choices=list(PARTS), default=list(PARTS),
                        help="systems (local, client, algofs, readonly: algofs --read-only too, rclone) and "
                             "rows (sets, loader, many)")
    parser.add_argument("--many", type=int, default=1_000_000, metavar="N",
                        help="files in the walk + read tree (0: no such row)")
    parser.add_argument("--torch-path", default=os.environ.get("ALGOFS_BENCH_TORCH", ""),
                        help="a directory holding torch (pip install --no-deps --target DIR the CPU wheel)")
    parser.add_argument("--baseline-src", default="", metavar="DIR",
                        help=f"also measure the algofs of another checkout (e.g. `git archive` of an older "
                             f"commit), as {BASELINE_SYSTEM!r}")
    parser.add_argument("--reader", nargs=2, metavar=("MODE", "LIST"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reader:
        return reader_child(*args.reader)
    return run_bench(args.quick, args.latency_ms, args.only, 0 if args.quick else args.many, args.torch_path,
                     args.baseline_src)


if __name__ == "__main__":
    sys.exit(main())
