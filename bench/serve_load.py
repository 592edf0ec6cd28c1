"""Load on one `algofs serve`: 3 users x 20 concurrent clients, mixed data and algorithm requests.

For a fixed time every client loops over a weighted mix (read a 64 KiB file, list a collection, upload a
16 KiB file, call demo/echo, call demo/sleep 0.2 s) as its own user. Meanwhile the main process probes
``GET /healthz`` every 0.25 s and samples the server's RSS (and its algorithm processes'). Everything
runs on 127.0.0.1 and stops at the end. Writes ``bench/results/serve_load.md``.

``python bench/serve_load.py [--duration 60] [--users 3] [--clients 20] [--server-src DIR]
[--serve-arg=--max-calls-per-user=8 ...] [--label TEXT] [--baseline-src DIR]``: ``--server-src`` runs the
server from another source tree (e.g. ``git archive`` of a branch), ``--serve-arg`` passes options to
``algofs serve``; ``--baseline-src`` runs the same load against that tree first, in the same run, and
writes the ratio of the two (warm call p50 above all: issue 22's box must stay within 1.5x).

With the algorithm box (issue 22) the report also shows what ``/healthz`` says isolates the workers and,
per algorithm owner, the peak tasks and memory of the owner's cgroup against its caps.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import random
import secrets
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import psutil
import requests

from algofs_jupyter.supervise import ChildProcess
from algofs_jupyter.testing.ports import free_ports

RESULTS = Path(__file__).parent / "results" / "serve_load.md"
REPO = Path(__file__).resolve().parents[1]
USERS = ["demo", "anowell", "alice"]
FILES_PER_USER = 16
READ_SIZE = 64 * 1024
WRITE_SIZE = 16 * 1024
REQUEST_TIMEOUT = 30.0
MIX = [("read", 35), ("list", 15), ("write", 15), ("algo_echo", 30), ("algo_sleep", 5)]
HEALTH_LIMIT_MS = 100.0


def start_server(base: Path, keys: dict[str, str], source: Path,
                 extra: list[str]) -> tuple[ChildProcess, str]:
    users_file = base / "users.json"
    fd = os.open(users_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"users": keys}, handle)
    ready = base / "ready.json"
    port = free_ports(1)[0]
    env = {k: v for k, v in os.environ.items() if k not in ("ALGORITHMIA_API_KEY", "ALGOFS_SERVE_API_KEY")}
    env["PYTHONPATH"] = str(source)
    cmd = [sys.executable, "-m", "algofs_jupyter", "serve", "--root", str(base / "root"),
           "--host", "127.0.0.1", "--port", str(port), "--users-file", str(users_file),
           "--ready-file", str(ready), "--demo", "--demo-large-file-mb", "0",
           "--log-level", "WARNING", *extra]
    server = ChildProcess("algofs serve", base / "serve.log")
    server.spawn(cmd, env, cwd=source)
    try:
        server.wait_ready(ready.exists, 120)
    except BaseException:
        server.stop()
        raise
    return server, f"http://127.0.0.1:{port}"


def seed_files(url: str, user: str, key: str) -> None:
    session = requests.Session()
    session.headers["Authorization"] = key
    session.post(f"{url}/v1/data/{user}", json={"name": "load"}, timeout=30)
    for index in range(FILES_PER_USER):
        response = session.put(f"{url}/v1/data/{user}/load/f{index}.bin", data=os.urandom(READ_SIZE),
                               timeout=30)
        response.raise_for_status()


def one_request(session: requests.Session, url: str, user: str, op: str, worker: int) -> requests.Response:
    if op == "read":
        return session.get(f"{url}/v1/data/{user}/load/f{random.randrange(FILES_PER_USER)}.bin",
                           timeout=REQUEST_TIMEOUT)
    if op == "list":
        return session.get(f"{url}/v1/data/{user}/load", timeout=REQUEST_TIMEOUT)
    if op == "write":
        return session.put(f"{url}/v1/data/{user}/load/w{worker}.bin", data=os.urandom(WRITE_SIZE),
                           timeout=REQUEST_TIMEOUT)
    if op == "algo_echo":
        return session.post(f"{url}/v1/algo/demo/echo/1.0.0", data=f"hello from {user}",
                            headers={"Content-Type": "text/plain"}, timeout=REQUEST_TIMEOUT)
    return session.post(f"{url}/v1/algo/demo/sleep/1.0.0", data="0.2", headers={"Content-Type": "text/plain"},
                        timeout=REQUEST_TIMEOUT)


def error_kind(response: requests.Response | None, exc: Exception | None) -> str | None:
    if exc is not None:
        return "timeout" if isinstance(exc, requests.Timeout) else f"connection ({type(exc).__name__})"
    if response.status_code < 400:
        body = response.json() if "json" in response.headers.get("Content-Type", "") else {}
        if isinstance(body, dict) and body.get("error"):
            return "algorithm error"
        return None
    return f"HTTP {response.status_code}"


def client_loop(url: str, user: str, key: str, worker: int,
                stop_at: float) -> list[tuple[str, float, str | None]]:
    session = requests.Session()
    session.headers["Authorization"] = key
    ops, weights = zip(*MIX, strict=True)
    samples = []
    while time.monotonic() < stop_at:
        op = random.choices(ops, weights)[0]
        started = time.monotonic()
        response, failure = None, None
        try:
            response = one_request(session, url, user, op, worker)
        except requests.RequestException as exc:
            failure = exc
        samples.append((op, time.monotonic() - started, error_kind(response, failure)))
        if response is not None and response.status_code == 429:  # a well-behaved client waits as told
            retry_after = response.headers.get("Retry-After", "1")
            time.sleep(min(float(retry_after) if retry_after.isdigit() else 1.0,
                           max(0.0, stop_at - time.monotonic())))
    return samples


def user_process(url: str, user: str, key: str, clients: int, stop_at_wall: float, niceness: int = 0) -> list:
    """One user's clients (threads) in their own process, so the client's GIL is not the bottleneck.
    ``niceness``: the clients stand for users on other machines; on this 2-core box, at the server's
    priority they take CPU from the server and from the /healthz probe, which is then what gets measured."""
    if niceness:
        os.nice(niceness)
    stop_at = time.monotonic() + (stop_at_wall - time.time())
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(client_loop, url, user, key, worker, stop_at) for worker in range(clients)]
        return [sample for future in futures for sample in future.result()]


class Monitor(threading.Thread):
    """/healthz latency every 0.25 s and the server's RSS (own and with its algorithm processes)."""

    def __init__(self, url: str, pid: int):
        super().__init__(daemon=True)
        self.url, self.process = url, psutil.Process(pid)
        self.owner_peaks: dict[str, dict[str, int]] = {}  # owner -> peak tasks and memory of its cgroup
        self.health_ms: list[float] = []
        self.health_failures = 0
        self.rss: list[int] = []
        self.rss_total: list[int] = []
        self.stopping = threading.Event()
        self.cpu_start = self.cpu_seconds()
        self.cpu_end = self.cpu_start

    def cpu_seconds(self) -> float:
        times = self.process.cpu_times()
        return times.user + times.system

    def run(self) -> None:
        session = requests.Session()
        while not self.stopping.wait(0.25):
            started = time.monotonic()
            try:
                ok = session.get(self.url + "/healthz", timeout=5).status_code == 200
            except requests.RequestException:
                ok = False
            if ok:
                self.health_ms.append(1000 * (time.monotonic() - started))
            else:
                self.health_failures += 1
            try:
                self.cpu_end = self.cpu_seconds()
                own = self.process.memory_info().rss
                children = sum(c.memory_info().rss for c in self.process.children(recursive=True))
                self.rss.append(own)
                self.rss_total.append(own + children)
            except psutil.Error:
                pass
            self.sample_owner_cgroups()

    def sample_owner_cgroups(self) -> None:
        """Peak tasks and memory of each owner's cgroup (``algo_cgroups.py``, v1 layout), if there are any."""
        name = f"algofs-serve-{self.process.pid}"
        for controller, field in (("pids", "pids.current"), ("memory", "memory.usage_in_bytes")):
            for base in Path("/sys/fs/cgroup", controller).rglob(name):
                for owner in (p for p in base.iterdir() if p.is_dir()):
                    try:
                        value = int((owner / field).read_text())
                    except (OSError, ValueError):
                        continue
                    peaks = self.owner_peaks.setdefault(owner.name, {})
                    peaks[controller] = max(peaks.get(controller, 0), value)
                break


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else float("nan")


def box_lines(details: dict, monitor: Monitor) -> list[str]:
    """What isolates the algorithms (from /healthz) and each owner's peak use against its caps."""
    box = details.get("algorithms")
    if not box:
        return ["", "Algorithm box: none reported (a server from before issue 22)."]
    caps = box.get("default_caps", {})
    lines = ["", f"Algorithm box: sandbox {box.get('sandbox')}, owner caps {box.get('owner_caps')} "
                 f"({caps.get('processes')} tasks, {caps.get('memory_bytes', 0) >> 20} MiB, "
                 f"{caps.get('cpus')} CPUs per owner), per-owner uids {box.get('per_owner_uids')}, "
                 f"/tmp {box.get('scratch_bytes', 0) >> 20} MiB per worker, "
                 f"algorithms {box.get('algorithms')}."]
    if monitor.owner_peaks:
        lines += ["", "| owner | peak tasks | task cap | peak memory MiB | memory cap MiB |",
                  "|---|---|---|---|---|"]
        for owner, peaks in sorted(monitor.owner_peaks.items()):
            lines.append(f"| {owner} | {peaks.get('pids', 0)} | {caps.get('processes')} | "
                         f"{peaks.get('memory', 0) / (1 << 20):.0f} | {caps.get('memory_bytes', 0) >> 20} |")
    return lines


def report(args: argparse.Namespace, samples: list, monitor: Monitor, elapsed: float,
           details: dict | None = None) -> str:
    by_op: dict[str, list[float]] = defaultdict(list)
    errors: Counter = Counter()
    per_op_errors: Counter = Counter()
    for op, seconds, kind in samples:
        by_op[op].append(seconds * 1000)
        if kind:
            errors[kind] += 1
            per_op_errors[op] += 1
    all_ms = [ms for values in by_op.values() for ms in values]
    mib = 1024 * 1024
    cpu = monitor.cpu_end - monitor.cpu_start
    lines = [
        "# `algofs serve` under load: many users, mixed data and algorithm requests",
        "",
        f"Command: `python bench/serve_load.py {' '.join(sys.argv[1:])}` — "
        f"{time.strftime('%Y-%m-%d %H:%M')} UTC, {os.cpu_count()} cores (shared), 127.0.0.1. "
        f"Server: {args.label}.",
        "",
        f"{args.users} users × {args.clients} concurrent clients for {elapsed:.0f} s, one request at a "
        "time each; mix " + ", ".join(f"{op} {weight}%" for op, weight in MIX)
        + f". Reads {READ_SIZE // 1024} KiB, writes {WRITE_SIZE // 1024} KiB, demo/sleep 0.2 s. "
        + (f"The clients run at nice {args.clients_nice}: they stand for users on other machines, and at "
           "the server's priority on these 2 cores they take the CPU the server and the /healthz probe need "
           "(`--clients-nice 0` measures that)." if args.clients_nice else
           "The clients run at the server's priority, on the same 2 cores."),
        "",
        "| request | count | errors | p50 ms | p99 ms |",
        "|---|---|---|---|---|",
    ]
    for op, _ in MIX:
        values = by_op.get(op, [])
        lines.append(f"| {op} | {len(values)} | {per_op_errors[op]} | {percentile(values, 0.5):.1f} | "
                     f"{percentile(values, 0.99):.1f} |")
    lines.append(f"| **all** | {len(all_ms)} | {sum(errors.values())} | {percentile(all_ms, 0.5):.1f} | "
                 f"{percentile(all_ms, 0.99):.1f} |")
    lines += ["", f"Throughput: {len(all_ms) / elapsed:.1f} requests/s.", "",
              "Errors by kind: "
              + (", ".join(f"{kind}: {n}" for kind, n in errors.most_common()) or "none") + "."]
    health = monitor.health_ms
    over = sum(1 for ms in health if ms >= HEALTH_LIMIT_MS)
    lines += ["", f"`/healthz` every 0.25 s: {len(health)} probes, p50 {percentile(health, 0.5):.1f} ms, "
                  f"p99 {percentile(health, 0.99):.1f} ms, max {max(health, default=float('nan')):.1f} ms; "
                  f"{over} at or over {HEALTH_LIMIT_MS:.0f} ms, {monitor.health_failures} failed "
                  f"→ **{'under' if over == 0 and not monitor.health_failures else 'NOT under'} "
                  f"{HEALTH_LIMIT_MS:.0f} ms**.",
              "", f"Server RSS: start {monitor.rss[0] / mib:.0f} MiB, peak {max(monitor.rss) / mib:.0f} MiB, "
                  f"end {monitor.rss[-1] / mib:.0f} MiB; with its algorithm processes peak "
                  f"{max(monitor.rss_total) / mib:.0f} MiB.",
              "", f"Server CPU (its own process, not the algorithms'): {cpu:.1f} s in {elapsed:.0f} s = "
                  f"{100 * cpu / elapsed:.0f}% of one core; load average at the end "
                  f"{os.getloadavg()[0]:.1f} (other users of the machine included).",
              "", "Clients wait as long as a 429's `Retry-After` says before their next request."]
    lines += box_lines(details or {}, monitor)
    if args.note:
        lines += ["", args.note]
    return "\n".join(lines) + "\n"


def run_once(args: argparse.Namespace, source: Path) -> tuple[list, Monitor, float, dict]:
    """One server from ``source`` under the load: the samples, the monitor, the time, /healthz's details."""
    users = USERS[: args.users]
    keys = {user: "load-" + secrets.token_urlsafe(24) for user in USERS}
    with tempfile.TemporaryDirectory(prefix="algofs-bench-load-") as tmp:
        server, url = start_server(Path(tmp), keys, source.resolve(), args.serve_arg)
        try:
            for user in users:
                seed_files(url, user, keys[user])
            details = requests.get(url + "/healthz", timeout=10).json().get("details", {})
            assert server.pid is not None
            monitor = Monitor(url, server.pid)
            monitor.start()
            started = time.monotonic()
            stop_at_wall = time.time() + args.duration
            with concurrent.futures.ProcessPoolExecutor(len(users)) as pool:
                futures = [pool.submit(user_process, url, user, keys[user], args.clients, stop_at_wall,
                                       args.clients_nice) for user in users]
                samples = [sample for future in futures for sample in future.result()]
            elapsed = time.monotonic() - started
            monitor.stopping.set()
            monitor.join()
        finally:
            server.stop(term_timeout=15)
    return samples, monitor, elapsed, details


def comparison(baseline: list, current: list, label: str, baseline_label: str) -> str:
    """Side by side p50s of the two runs, with the ratio (this / baseline)."""
    def p50(samples: list, op: str) -> float:
        return percentile([seconds * 1000 for o, seconds, kind in samples if o == op and not kind], 0.5)

    lines = ["", f"Side by side in this run: {baseline_label} (baseline) vs {label}, "
                 "p50 of successful requests.",
             "", "| request | baseline p50 ms | this p50 ms | ratio |", "|---|---|---|---|"]
    for op, _ in MIX:
        before, after = p50(baseline, op), p50(current, op)
        lines.append(f"| {op} | {before:.1f} | {after:.1f} | {after / before:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--users", type=int, default=3, choices=range(1, len(USERS) + 1))
    parser.add_argument("--clients", type=int, default=20, help="concurrent clients per user")
    parser.add_argument("--server-src", type=Path, default=REPO, help="source tree the server runs from")
    parser.add_argument("--baseline-src", type=Path, default=None,
                        help="another source tree to run first, for a side-by-side ratio")
    parser.add_argument("--baseline-label", default="baseline", help="what the baseline is, for the report")
    parser.add_argument("--serve-arg", action="append", default=[], help="extra `algofs serve` option")
    parser.add_argument("--label", default="this checkout", help="what the server is, for the report")
    parser.add_argument("--note", default="", help="a sentence appended to the report")
    parser.add_argument("--clients-nice", type=int, default=10,
                        help="niceness of the load clients (0: they compete with the server for CPU)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--append", action="store_true", help="append to the output instead of replacing it")
    args = parser.parse_args()
    baseline = run_once(args, args.baseline_src) if args.baseline_src else None
    samples, monitor, elapsed, details = run_once(args, args.server_src)
    text = report(args, samples, monitor, elapsed, details)
    if baseline is not None:
        text += comparison(baseline[0], samples, args.label, args.baseline_label)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    if args.append and args.output.exists():
        text = args.output.read_text() + "\n---\n\n" + text
    args.output.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
