"""Write benchmark (issue 12): the writes every tool makes, algofs mount vs local disk and peers.

    python bench/writes.py            # 1 GiB chunked upload and rename, 1,000 appends, 1,000 small files
    python bench/writes.py --quick    # 128 MiB, 200 appends, 200 small files

Side by side in one run, against one ``algofs serve`` on 127.0.0.1 (demo user):

* JupyterLab's chunked upload (1 MiB chunks, ``chunk`` 1…-1) through a real ``jupyter_server`` contents
  API into the mount (the server extension mounts it) vs the same upload into a local folder of the same
  server; bytes sent to the API from the mount's ``backend.bytes_sent``;
* append-close cycles of 64 KiB (``open(p, "ab")``), with and without the server's extensions;
* ``os.rename`` of a 1 GiB file and of a 1,000-file directory;
* 1,000 small files (1 KiB): the mount vs the official client's ``file().put()`` loop and ``rclone mount``
  (``--vfs-cache-mode full``, write-back) over ``rclone serve webdav`` of the same data.

Results: ``bench/results/writes.md`` and ``writes.json``. Everything started or mounted is stopped in
``finally`` blocks.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (  # noqa: E402 - bench/ is not a package
    RESULTS,
    Results,
    fuse_child,
    http_ok,
    timed,
    write_small_files,
)

from algofs_jupyter.supervise import ChildProcess  # noqa: E402
from algofs_jupyter.testing.ports import free_ports  # noqa: E402

MiB, GiB, KiB = 1 << 20, 1 << 30, 1 << 10
USER = "demo"


@contextmanager
def algofs_mount(api_url: str, api_key: str, base: Path, **options: object) -> Iterator[Path]:
    from algofs_jupyter.mount.mount_process import MountProcess

    mount = MountProcess(base / "mnt", api_url, api_key, cache_dir=base / "cache",
                         log_file=base / "mount.log", **options)
    mount.start(60)
    try:
        yield Path(mount.mountpoint)
    finally:
        mount.stop()


def sent_bytes(mountpoint: Path) -> int:
    from algofs_jupyter.mount import control

    return int(control.query(mountpoint, "status")["backend"]["bytes_sent"])


def write_back_settled(mountpoint: Path, timeout: float = 300.0) -> float:
    """Seconds until a write-back mount has uploaded everything pending (its status says 0 pending)."""
    from algofs_jupyter.mount import control

    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if control.query(mountpoint, "status")["write_back"]["pending"] == 0:
            break
        time.sleep(0.01)
    return time.perf_counter() - started


# ------------------------------------------------------------------------------ chunked upload
@contextmanager
def jupyter_server(work: Path, api_url: str, api_key: str) -> Iterator[tuple[str, dict[str, str], Path]]:
    root = work / "jupyter-root"
    (root / "local").mkdir(parents=True)
    port, token = free_ports(1)[0], "bench-token"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALGORITHMIA_", "ALGOFS_"))}
    env.update(ALGORITHMIA_API=api_url, ALGORITHMIA_API_KEY=api_key, JUPYTER_DATA_DIR=str(work / "jd"),
               JUPYTER_RUNTIME_DIR=str(work / "jr"), XDG_CACHE_HOME=str(work / "jupyter-cache"))
    command = [sys.executable, "-m", "jupyter_server", "--no-browser", f"--ServerApp.port={port}",
               f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
               "--ServerApp.contents_manager_class=algofs_jupyter.jupyter.contents.AlgofsContentsManager"]
    if os.geteuid() == 0:
        command.append("--allow-root")
    child = ChildProcess("jupyter_server", work / "jupyter.log")
    child.spawn(command, env=env)
    url, headers = f"http://127.0.0.1:{port}", {"Authorization": f"token {token}"}
    try:
        child.wait_ready(lambda: http_ok(f"{url}/api/status?token={token}"), 120)
        child.wait_ready(lambda: requests.get(f"{url}/algofs/status", headers=headers, timeout=10).json()
                         .get("mounted", False), 120)
        yield url, headers, root
    finally:
        child.stop(term_timeout=60)  # SIGTERM: the extension unmounts


def chunked_upload(url: str, headers: dict[str, str], path: str, size: int) -> float:
    """What JupyterLab's file browser sends for a large file; returns the seconds it took."""
    session = requests.Session()
    session.headers.update(headers)
    chunk = os.urandom(MiB)
    count = size // MiB
    payloads = [base64.b64encode(chunk).decode()]  # same bytes each chunk: encoding is not measured
    start = time.perf_counter()
    for index in range(count):
        number = -1 if index == count - 1 else index + 1
        response = session.put(f"{url}/api/contents/{path}", json={
            "type": "file", "format": "base64", "chunk": number, "content": payloads[0]}, timeout=120)
        response.raise_for_status()
    return time.perf_counter() - start


def bench_chunked_upload(work: Path, api_url: str, api_key: str, size: int, results: Results) -> None:
    from algofs_jupyter.fs import AlgoFileSystem

    AlgoFileSystem(api_url, api_key, skip_instance_cache=True).makedirs(f"data/{USER}/uploads", exist_ok=True)
    scenario = f"JupyterLab chunked upload {size // MiB} MiB"
    with jupyter_server(work, api_url, api_key) as (url, headers, root):
        local = chunked_upload(url, headers, "local/upload.bin", size)
        results.add(scenario, "local disk", local, size, "jupyter_server contents API")
        mountpoint = root / "algofs"
        before = sent_bytes(mountpoint)
        seconds = chunked_upload(url, headers, f"algofs/data/{USER}/uploads/upload.bin", size)
        ratio = (sent_bytes(mountpoint) - before) / size
        results.add(scenario, "algofs", seconds, size, f"bytes sent / size = {ratio:.2f}")
        results.facts["upload_bytes_ratio"] = ratio
        results.facts["upload_time_vs_local"] = seconds / local


# -------------------------------------------------------------------------------------- appends
def append_cycles(directory: Path, cycles: int) -> float:
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / "appended.bin"
    target.write_bytes(b"")
    chunk = os.urandom(64 * KiB)

    def run() -> None:
        for _ in range(cycles):
            with open(target, "ab") as handle:
                handle.write(chunk)

    seconds, _ = timed(run)
    if target.stat().st_size != cycles * len(chunk):
        raise RuntimeError("appended file has the wrong size")
    return seconds


def bench_appends(mountpoint: Path, work: Path, cycles: int, results: Results, system: str,
                  key: str, write_back: bool = False) -> None:
    scenario = f"{cycles} append-close cycles of 64 KiB"
    before = sent_bytes(mountpoint)
    seconds = append_cycles(mountpoint / "data" / USER / "appends" / system.replace(" ", "-"), cycles)
    settled = (f"; all on the server {write_back_settled(mountpoint):.2f} s after the loop" if write_back
               else "")
    ratio = (sent_bytes(mountpoint) - before) / (cycles * 64 * KiB)
    results.add(scenario, system, seconds, note=f"bytes sent / size = {ratio:.2f}{settled}")
    results.facts[key] = ratio


# -------------------------------------------------------------------------------------- renames
def bench_renames(mountpoint: Path, server_root: Path, big: int, files: int, results: Results) -> None:
    collection = server_root / "data" / USER / "renames"
    (collection / "tree").mkdir(parents=True)
    with open(collection / "big.bin", "wb") as handle:  # straight into the server's disk
        handle.truncate(big)
    for index in range(files):
        (collection / "tree" / f"f{index:04d}.txt").write_bytes(b"x" * 100)
    root = mountpoint / "data" / USER / "renames"
    os.stat(root / "big.bin")
    seconds, _ = timed(lambda: os.rename(root / "big.bin", root / "big-renamed.bin"))
    results.add(f"rename a {big // MiB} MiB file", "algofs", seconds, note="server-side move")
    if (collection / "big-renamed.bin").stat().st_size != big:
        raise RuntimeError("renamed file is incomplete")
    os.listdir(root / "tree")
    seconds, _ = timed(lambda: os.rename(root / "tree", root / "tree-renamed"))
    results.add(f"rename a {files}-file directory", "algofs", seconds, note="server-side move")
    if len(os.listdir(collection / "tree-renamed")) != files:
        raise RuntimeError("renamed directory is incomplete")


# --------------------------------------------------------------------------------- small files
def bench_small_files(mountpoint: Path, api_url: str, api_key: str, server_root: Path, work: Path,
                      count: int, results: Results, write_back_mount: Path | None = None) -> None:
    import Algorithmia

    scenario = f"write {count} small files"
    client = Algorithmia.client(api_key, api_address=api_url)
    client.dir(f"data://{USER}/writes-client").create()
    payload = os.urandom(1024)

    def client_loop() -> None:
        for index in range(count):
            client.file(f"data://{USER}/writes-client/w{index:05d}.txt").put(payload)

    results.add(scenario, "official client", timed(client_loop)[0], note="file().put()")
    (mountpoint / "data" / USER / "writes-algofs").mkdir()
    results.add(scenario, "algofs", write_small_files(mountpoint / "data" / USER / "writes-algofs", count)[0],
                note="uploaded before close() returns")
    results.add(scenario, "local disk", write_small_files(work / "local-writes", count)[0])
    if write_back_mount is not None:
        (write_back_mount / "data" / USER / "writes-write-back").mkdir()
        seconds = write_small_files(write_back_mount / "data" / USER / "writes-write-back", count)[0]
        results.add(scenario, WRITE_BACK_SYSTEM, seconds,
                    note=f"close() returns when staged; all on the server "
                         f"{write_back_settled(write_back_mount):.2f} s after the loop")
    try:
        results.add(scenario, "rclone mount", rclone_writes(server_root, work, count), note="write-back")
    except Exception as exc:  # noqa: BLE001 - a peer failing is a row, not the end of the run
        results.add(scenario, "rclone mount", None, note=f"failed: {exc}")


def rclone_writes(server_root: Path, work: Path, count: int) -> float:
    if not shutil.which("rclone"):
        raise RuntimeError("rclone not installed")
    port = free_ports(1)[0]
    config = work / "rclone.conf"
    config.write_text("")
    serve = ChildProcess("rclone serve webdav", work / "rclone-serve.log")
    serve.spawn(["rclone", "serve", "webdav", str(server_root / "data" / USER), "--addr", f"127.0.0.1:{port}",
                 "--config", str(config)])
    try:
        serve.wait_ready(lambda: http_ok(f"http://127.0.0.1:{port}/"), 30)
        mountpoint = work / "mnt-rclone"
        command = ["rclone", "mount", f":webdav,url='http://127.0.0.1:{port}/':", str(mountpoint),
                   "--config", str(config), "--vfs-cache-mode", "full", "--cache-dir", str(work / "rc")]
        with fuse_child(command, mountpoint, dict(os.environ), work / "rclone-mount.log"):
            return write_small_files(mountpoint / "writes-rclone", count)[0]
    finally:
        serve.stop(term_timeout=15)


# -------------------------------------------------------------------------------------- report
def target_lines(results: Results, quick: bool) -> list[str]:
    def row(scenario_start: str, system: str) -> float | None:
        found = next((r for r in results.rows if r.scenario.startswith(scenario_start) and r.system == system
                      and r.seconds is not None), None)
        return found.seconds if found else None

    def verdict(ok: bool | None) -> str:
        return "n/a" if ok is None else ("met" if ok else "**not met**")

    facts = results.facts
    lines = []
    upload, local = row("JupyterLab chunked upload", "algofs"), row("JupyterLab chunked upload", "local disk")
    ratio = facts.get("upload_bytes_ratio")
    lines.append(f"- bytes sent ≤ 1.2× size, chunked upload: {ratio:.2f}× → {verdict(ratio <= 1.2)}"
                 if isinstance(ratio, float) else "- chunked upload bytes: n/a")
    ratio = facts.get("append_bytes_ratio")
    lines.append(f"- bytes sent ≤ 1.2× size, appends: {ratio:.2f}× → {verdict(ratio <= 1.2)}"
                 if isinstance(ratio, float) else "- append bytes: n/a")
    if upload and local:
        lines.append(f"- chunked upload ≤ 2× local disk: {upload / local:.2f}× → "
                     f"{verdict(upload <= 2 * local)}")
    for system, how in (("algofs", "upload at close (default)"), (WRITE_BACK_SYSTEM, "opt-in write-back")):
        appends = row("1000 append-close", system) if not quick else None
        lines.append(f"- 1,000 appends ≤ 3 s, {how}: {appends:.2f} s → {verdict(appends <= 3)}" if appends
                     else f"- 1,000 appends ≤ 3 s, {how}: n/a")
    rename = row("rename a 1024 MiB file", "algofs")
    lines.append(f"- 1 GiB rename ≤ 0.2 s: {rename:.3f} s → {verdict(rename <= 0.2)}" if rename is not None
                 else "- 1 GiB rename: n/a (quick run)")
    client = row("write ", "official client")
    for system, how in (("algofs", "upload at close (default)"), (WRITE_BACK_SYSTEM, "opt-in write-back")):
        mine = row("write ", system)
        if mine and client:
            lines.append(f"- small files ≤ 1.0× the official client, {how}: {mine / client:.2f}× → "
                         f"{verdict(mine <= client)}")
    return lines


def write_report(results: Results, quick: bool, started: float) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    lines = ["# Write benchmark", "",
             f"Command: `python bench/writes.py{' --quick' if quick else ''}` — "
             f"{time.strftime('%Y-%m-%d %H:%M')},"
             f" {platform.platform()}, {os.cpu_count()} cores, wall time {time.time() - started:.0f} s. "
             "All over 127.0.0.1, one `algofs serve`; the machine is shared (±30–50 % between runs).", "",
             "## Targets", "", *target_lines(results, quick), "",
             "## Results", "", "| Scenario | System | Time (s) | MB/s | Notes |", "|---|---|---|---|---|"]
    for r in results.rows:
        seconds = "failed" if r.seconds is None else f"{r.seconds:.3f}"
        value = f"{r.value:.0f}" if r.value else ""
        lines.append(f"| {r.scenario} | {r.system} | {seconds} | {value} | {r.note} |")
    lines += ["", "```json", json.dumps(results.facts, indent=2, default=str), "```", ""]
    (RESULTS / "writes.md").write_text("\n".join(lines))
    report = {"quick": quick, "rows": [r.__dict__ for r in results.rows], "facts": results.facts}
    (RESULTS / "writes.json").write_text(json.dumps(report, indent=2, default=str))


def attempt(results: Results, what: str, action: Callable[[], None]) -> None:
    try:
        action()
    except Exception as exc:  # noqa: BLE001 - record and go on
        results.add(what, "algofs", None, note=f"failed: {type(exc).__name__}: {exc}")


#: The opt-in write-back mount's rows (``--write-back SECONDS``: close() returns once the bytes are staged).
WRITE_BACK_SECONDS = 1.0
WRITE_BACK_SYSTEM = f"algofs --write-back {WRITE_BACK_SECONDS:g}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", nargs="*", default=["upload", "appends", "renames", "small"])
    args = parser.parse_args()
    size = (128 if args.quick else 1024) * MiB
    cycles = 200 if args.quick else 1000
    small = 200 if args.quick else 1000
    from algofs_jupyter.server.embedded_server import EmbeddedServer

    started, results = time.time(), Results()
    work = Path(tempfile.mkdtemp(prefix="algofs-writes-"))
    try:
        with EmbeddedServer(work / "server", demo=True) as server:
            if "upload" in args.only:
                attempt(results, "JupyterLab chunked upload",
                        lambda: bench_chunked_upload(work, server.url, server.api_key, size, results))
            with algofs_mount(server.url, server.api_key, work / "algofs") as mountpoint:
                if "appends" in args.only:
                    attempt(results, "appends", lambda: bench_appends(mountpoint, work, cycles, results,
                                                                      "algofs", "append_bytes_ratio"))
                    results.add(f"{cycles} append-close cycles of 64 KiB", "local disk",
                                append_cycles(work / "local-appends", cycles))
                if "renames" in args.only:
                    attempt(results, "renames", lambda: bench_renames(
                        mountpoint, server.root, size, 1000, results))
                if "appends" in args.only or "small" in args.only:
                    with algofs_mount(server.url, server.api_key, work / "write-back",
                                      write_back=WRITE_BACK_SECONDS) as write_back:
                        if "appends" in args.only:
                            attempt(results, "appends with write-back", lambda: bench_appends(
                                write_back, work, cycles, results, WRITE_BACK_SYSTEM,
                                "append_bytes_ratio_write_back", write_back=True))
                        if "small" in args.only:
                            attempt(results, "small files", lambda: bench_small_files(
                                mountpoint, server.url, server.api_key, server.root, work, small, results,
                                write_back))
            if "appends" in args.only:
                with algofs_mount(server.url, server.api_key, work / "plain", no_extensions=True) as plain:
                    attempt(results, "appends without extensions", lambda: bench_appends(
                        plain, work, cycles // 10, results, "algofs --no-extensions",
                        "append_bytes_ratio_plain"))
    finally:
        results.facts["load_average_at_end"] = os.getloadavg()  # the machine is shared: say how busy
        write_report(results, args.quick, started)
        shutil.rmtree(work, ignore_errors=True)
    print((RESULTS / "writes.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
