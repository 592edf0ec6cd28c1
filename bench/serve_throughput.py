"""GET throughput of one large file: `algofs serve` vs a plain static file server, both read by curl.

One run, side by side, same file on disk, same machine load: curl downloads it from the embedded API server
(auth header from a file, never argv) and from `python -m http.server` serving the same directory.
Median of several repetitions each, interleaved; writes ``bench/results/serve_throughput.md``.
``python bench/serve_throughput.py [--size-mb 1024] [--repeat 5]``
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from algofs_jupyter.server.embedded_server import EmbeddedServer
from algofs_jupyter.supervise import ChildProcess
from algofs_jupyter.testing.ports import free_ports

RESULTS = Path(__file__).parent / "results" / "serve_throughput.md"


def curl_mb_per_s(url: str, header_file: Path | None) -> float:
    cmd = ["curl", "-sf", "-o", "/dev/null", "-w", "%{speed_download}", url]
    if header_file is not None:
        cmd[1:1] = ["-H", f"@{header_file}"]
    return float(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout) / 1e6


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="algofs-bench-serve-") as tmp:
        base = Path(tmp)
        with EmbeddedServer(base / "root") as server:
            collection = base / "root" / "data" / server.username / "bench"
            collection.mkdir(parents=True, exist_ok=True)
            blob = collection / "big.bin"
            with open(blob, "wb") as handle:  # real bytes, not a sparse file: both servers read the disk
                for _ in range(args.size_mb):
                    handle.write(os.urandom(1 << 20))
            header = base / "auth-header"
            header.write_text(f"Authorization: {server.api_key}\n")
            header.chmod(0o600)
            port = free_ports(1)[0]
            static = ChildProcess("python -m http.server", base / "http-server.log")
            static.spawn([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1",
                          "--directory", str(collection)])
            try:
                static.wait_ready(lambda: listening(port), 15)
                api_url = f"{server.url}/v1/data/.my/bench/big.bin"
                static_url = f"http://127.0.0.1:{port}/big.bin"
                curl_mb_per_s(api_url, header)  # warm the page cache once for both
                algofs, plain = [], []
                for _ in range(args.repeat):
                    algofs.append(curl_mb_per_s(api_url, header))
                    plain.append(curl_mb_per_s(static_url, None))
            finally:
                static.stop(term_timeout=10)
    a, p = statistics.median(algofs), statistics.median(plain)
    lines = [
        "# `algofs serve` GET throughput", "",
        f"Command: `python bench/serve_throughput.py --size-mb {args.size_mb} --repeat {args.repeat}` — "
        f"{time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, loopback, file in page cache, "
        "curl as client.",
        "", "| Server | median MB/s | runs (MB/s) |", "|---|---|---|",
        f"| algofs serve (Data API GET, auth) | {a:.0f} | {', '.join(f'{v:.0f}' for v in algofs)} |",
        f"| python -m http.server (static) | {p:.0f} | {', '.join(f'{v:.0f}' for v in plain)} |",
        "", f"Ratio algofs serve / static server: {a / p:.2f}×", "",
    ]
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
