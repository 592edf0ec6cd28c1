"""What JupyterLab's file browser waits for when it opens a big folder: jupyter_server's contents manager
listing N files, on local disk and inside the mount, side by side in one run (issue 25, item 8).

    .venv/bin/python bench/contents_listing.py [--files 5000] [--repeats 4]

Starts one ``algofs serve --demo``, uploads N small files into ``data://demo/many``, mounts it, and times
``AsyncLargeFileManager.get(dir, content=True)`` (what ``GET /api/contents/<dir>`` runs) alternately on a
local copy and on the mount. The first mount listing is cold (the daemon lists the API); the others are
warm. Writes ``bench/results/contents_listing.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager

from algofs_jupyter.mount.mount_process import MountProcess
from algofs_jupyter.server.embedded_server import EmbeddedServer

RESULTS = Path(__file__).parent / "results" / "contents_listing.md"


def upload(server: EmbeddedServer, count: int) -> None:
    session = requests.Session()
    session.headers["Authorization"] = "Simple " + server.api_key
    session.post(f"{server.url}/v1/data/demo", json={"name": "many"}, timeout=30).raise_for_status()

    def put(i: int) -> None:
        url = f"{server.url}/v1/data/demo/many/f{i:05d}.txt"
        session.put(url, data=b"x" * 100, timeout=30).raise_for_status()

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, range(count)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=4)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="algofs-bench-listing-"))
    root = base / "root"
    local = root / "local"
    local.mkdir(parents=True)
    for i in range(args.files):
        (local / f"f{i:05d}.txt").write_bytes(b"x" * 100)
    times: dict[str, list[float]] = {"local": [], "mount": []}
    with EmbeddedServer(base / "api", demo=True) as server:
        upload(server, args.files)
        mount = MountProcess(root / "algofs", server.url, server.api_key, cache_dir=base / "cache")
        mount.start()
        try:
            manager = AsyncLargeFileManager(root_dir=str(root))

            async def listing(path: str) -> float:
                started = time.perf_counter()
                model = await manager.get(path, content=True)
                assert len(model["content"]) == args.files
                return time.perf_counter() - started

            for _ in range(args.repeats):
                times["local"].append(asyncio.run(listing("local")))
                times["mount"].append(asyncio.run(listing("algofs/data/demo/many")))
        finally:
            mount.stop()
    local_warm = statistics.median(times["local"])
    mount_warm = statistics.median(times["mount"][1:])
    table = [
        f"# A {args.files:,}-file folder through jupyter_server's contents manager",
        "",
        "`GET /api/contents/<dir>` as JupyterLab's file browser asks it, run by "
        f"`bench/contents_listing.py --files {args.files} --repeats {args.repeats}` "
        f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}).",
        "",
        "| folder | first | median of the rest | ratio to local |",
        "|---|---|---|---|",
        f"| local disk | {times['local'][0]:.2f} s | {local_warm:.2f} s | 1.00× |",
        f"| the mount (`algofs/data/demo/many`) | {times['mount'][0]:.2f} s (cold: the daemon lists the API) "
        f"| {mount_warm:.2f} s | {mount_warm / local_warm:.2f}× |",
        "",
        "Every run: " + "; ".join(f"{name} " + ", ".join(f"{t:.2f}" for t in values)
                                  for name, values in times.items()),
        "",
    ]
    RESULTS.write_text("\n".join(table))
    print("\n".join(table))


if __name__ == "__main__":
    main()
