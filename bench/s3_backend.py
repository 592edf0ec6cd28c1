"""``algofs serve --storage s3://…`` against the S3 store itself, measured side by side in one run.

    python bench/s3_backend.py                 # 1 GiB file, 10,000-object prefix, 200 small files
    python bench/s3_backend.py --quick         # 128 MiB, 2,000 objects, 50 small files

One fresh SeaweedFS (``algofs_jupyter.testing.seaweedfs``) and one ``algofs serve --storage
s3://bench-s3/serve`` on 127.0.0.1 (credentials in a 0600 shared-credentials file, never argv); a file of
random bytes in the page cache. Rows, every pair interleaved and the median of ``--repeat``:

* GET / PUT of the large file: through the server (``curl``, key in a header file) vs straight from the
  store with boto3 (``get_object`` streamed / ``upload_fileobj``, its defaults) and with ``curl`` on a
  presigned URL (no Python client at all). Target: the server adds <= 25 % to boto3's time.
* server RSS growth (peak - before) during the server's GET and PUT. Target: < 100 MiB.
* listing a prefix of N objects: the official client's ``dir().files()`` through the server vs boto3's
  ``list_objects_v2`` paginator (delimiter, 1000 per page).
* the FUSE mount on the S3-backed server vs on a local-storage server with the same file: cold sequential
  read (fresh mount, empty cache), ``ls -l`` of the N-object directory, writing small files (upload on
  close). Needs /dev/fuse.

Output: ``bench/results/s3_backend.md`` and ``.json``. Everything started is stopped in ``finally``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from algofs_jupyter.server.embedded_server import EmbeddedServer  # noqa: E402
from algofs_jupyter.testing.rss import RssSampler  # noqa: E402
from algofs_jupyter.testing.seaweedfs import SeaweedFS, write_private  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
MiB = 1 << 20
BUCKET, USER, COLLECTION, MANY = "bench-s3", "bench", "bench", "many"


@dataclass
class Row:
    scenario: str
    system: str
    seconds: float | None
    mb_s: float | None = None
    note: str = ""
    runs: list[float] = field(default_factory=list)


class Table:
    def __init__(self) -> None:
        self.rows: list[Row] = []
        self.facts: dict[str, object] = {}

    def add(self, scenario: str, system: str, runs: list[float], nbytes: int | None = None,
            note: str = "") -> Row:
        seconds = statistics.median(runs) if runs else None
        rate = nbytes / seconds / 1e6 if nbytes and seconds else None
        row = Row(scenario, system, seconds, rate, note, runs)
        self.rows.append(row)
        shown = "failed" if seconds is None else f"{seconds:.2f} s" + (f", {rate:.0f} MB/s" if rate else "")
        print(f"  {scenario:<30} {system:<34} {shown} {note}", flush=True)
        return row

    def get(self, scenario: str, system: str) -> Row | None:
        return next((r for r in self.rows if r.scenario == scenario and r.system == system), None)


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def curl(*args: str) -> None:
    done = subprocess.run(["curl", "-sS", "-f", "-o", "/dev/null", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"curl failed: {done.stderr.strip()}")


@contextmanager
def mounted(work: Path, name: str, server: EmbeddedServer) -> Iterator[Path]:
    from algofs_jupyter.mount.mount_process import MountProcess

    cache = work / f"cache-{name}"
    shutil.rmtree(cache, ignore_errors=True)
    assert server.url is not None
    mount = MountProcess(work / f"mnt-{name}", server.url, server.api_key, cache_dir=cache,
                         log_file=work / f"mount-{name}.log", cache_size=4 << 30)
    mount.start(60)
    try:
        yield Path(mount.mountpoint) / "data" / USER / COLLECTION
    finally:
        mount.stop()


def write_small(folder: Path, count: int) -> None:
    payload = os.urandom(1024)
    for i in range(count):
        (folder / f"w{i:05d}.txt").write_bytes(payload)


def read_through(path: Path) -> None:
    with open(path, "rb", buffering=0) as handle:
        while handle.read(MiB):
            pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--size-mb", type=int, default=None)
    parser.add_argument("--objects", type=int, default=None)
    parser.add_argument("--writes", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-mount", action="store_true", help="skip the FUSE rows")
    args = parser.parse_args()
    size_mb = args.size_mb or (128 if args.quick else 1024)
    objects = args.objects or (2000 if args.quick else 10_000)
    writes = args.writes or (50 if args.quick else 200)
    size = size_mb * MiB
    started = time.time()

    import boto3
    import botocore.session
    import psutil  # noqa: F401 - fail early: the RSS rows need it

    table = Table()
    with tempfile.TemporaryDirectory(prefix="algofs-bench-s3-") as tmp:
        work = Path(tmp)
        source = work / "large.bin"
        with open(source, "wb") as handle:
            for _ in range(size_mb):
                handle.write(os.urandom(MiB))
        weed = SeaweedFS(work / "weed", [BUCKET])
        servers: list[EmbeddedServer] = []
        try:
            weed.start()
            acct = weed.account
            env = {**acct.aws_files(work / "aws"), "AWS_EC2_METADATA_DISABLED": "true"}
            users = {USER: "bench-" + os.urandom(8).hex()}
            s3_serve = EmbeddedServer(work / "root-s3", users=users, storage=f"s3://{BUCKET}/serve",
                                      s3_endpoint=acct.endpoint, s3_region=acct.region, env=env)
            local_serve = EmbeddedServer(work / "root-local", users=users)
            for server in (s3_serve, local_serve):
                servers.append(server)
                server.start(120)
            header = work / "auth-header"
            write_private(header, f"Authorization: {users[USER]}\n")
            s3 = boto3.session.Session().client(
                "s3", endpoint_url=acct.endpoint, region_name=acct.region, aws_access_key_id=acct.access_key,
                aws_secret_access_key=acct.secret_key)
            import Algorithmia

            clients = {n: Algorithmia.client(api_key=users[USER], api_address=s.url)
                       for n, s in (("s3", s3_serve), ("local", local_serve))}
            for client in clients.values():
                client.dir(f"data://.my/{COLLECTION}").create()
                client.dir(f"data://.my/{COLLECTION}/{MANY}").create()
            shutil.copyfile(source, local_serve.root / "data" / USER / COLLECTION / "large.bin")
            key = f"serve/data/{USER}/{COLLECTION}/large.bin"
            direct_key = "direct/large.bin"
            api_url = f"{s3_serve.url}/v1/data/.my/{COLLECTION}/large.bin"
            target = {"Bucket": BUCKET, "Key": direct_key}
            presigned_get = s3.generate_presigned_url("get_object", Params=target, ExpiresIn=3600)
            presigned_put = s3.generate_presigned_url("put_object", Params=target, ExpiresIn=3600)
            url_file = work / "presigned"  # the signature stays out of argv, like the key
            server_pid = s3_serve.pid
            assert server_pid is not None

            def put_boto3() -> None:
                with open(source, "rb") as handle:
                    s3.upload_fileobj(handle, BUCKET, direct_key)

            def put_curl_presigned() -> None:
                write_private(url_file, f'url = "{presigned_put}"\n')
                curl("-K", str(url_file), "-T", str(source))

            def put_server() -> None:
                curl("-H", f"@{header}", "-T", str(source), api_url)

            def get_boto3() -> None:
                body = s3.get_object(Bucket=BUCKET, Key=direct_key)["Body"]
                assert sum(len(c) for c in iter(lambda: body.read(MiB), b"")) == size

            def get_curl_presigned() -> None:
                write_private(url_file, f'url = "{presigned_get}"\n')
                curl("-K", str(url_file))

            def get_server() -> None:
                curl("-H", f"@{header}", api_url)

            print(f"transfers of {size_mb} MiB, {args.repeat} rounds", flush=True)
            runs: dict[str, list[float]] = {}
            rss: dict[str, list[int]] = {"PUT": [], "GET": []}
            for _ in range(args.repeat):
                for name, action in (("PUT boto3", put_boto3), ("PUT curl presigned", put_curl_presigned),
                                     ("PUT server", put_server), ("GET boto3", get_boto3),
                                     ("GET curl presigned", get_curl_presigned), ("GET server", get_server)):
                    sampler = RssSampler(server_pid) if name.endswith("server") else None
                    if sampler:
                        sampler.start()
                    runs.setdefault(name, []).append(timed(action))
                    if sampler:
                        rss[name.split()[0]].append(sampler.stop())
            assert s3.head_object(Bucket=BUCKET, Key=key)["ContentLength"] == size
            for op in ("GET", "PUT"):
                scenario = f"{op} {size_mb} MiB"
                table.add(scenario, "boto3 straight to the store", runs[f"{op} boto3"], size)
                table.add(scenario, "curl, presigned URL to the store", runs[f"{op} curl presigned"], size)
                table.add(scenario, "curl through algofs serve (s3)", runs[f"{op} server"], size,
                          f"server RSS growth max {max(rss[op]) / MiB:.0f} MiB")
                table.facts[f"rss_growth_{op.lower()}_mib"] = [round(r / MiB, 1) for r in rss[op]]

            print(f"listing {objects} objects", flush=True)
            prefix = f"serve/data/{USER}/{COLLECTION}/{MANY}/"
            with ThreadPoolExecutor(32) as pool:
                list(pool.map(lambda i: s3.put_object(Bucket=BUCKET, Key=f"{prefix}f{i:06d}.txt", Body=b"x"),
                              range(objects)))
            many_local = local_serve.root / "data" / USER / COLLECTION / MANY
            for i in range(objects):
                (many_local / f"f{i:06d}.txt").write_bytes(b"x")

            def list_boto3() -> None:
                pages = s3.get_paginator("list_objects_v2").paginate(
                    Bucket=BUCKET, Prefix=prefix, Delimiter="/", PaginationConfig={"PageSize": 1000})
                found = sum(1 for p in pages for o in p.get("Contents", []) if not o["Key"].endswith("/"))
                assert found == objects, found

            def list_client(name: str) -> Callable[[], None]:
                def run() -> None:
                    listed = clients[name].dir(f"data://.my/{COLLECTION}/{MANY}").files()
                    assert sum(1 for _ in listed) == objects
                return run

            list_runs: dict[str, list[float]] = {}
            for _ in range(args.repeat):
                for name, action in (("boto3", list_boto3), ("s3", list_client("s3")),
                                     ("local", list_client("local"))):
                    list_runs.setdefault(name, []).append(timed(action))
            scenario = f"list {objects} objects"
            table.add(scenario, "boto3 paginator straight to the store", list_runs["boto3"])
            table.add(scenario, "official client through serve (s3)", list_runs["s3"])
            table.add(scenario, "official client through serve (local)", list_runs["local"])

            if not args.no_mount and os.path.exists("/dev/fuse") and shutil.which("fusermount3"):
                print("FUSE mount rows", flush=True)
                mount_runs: dict[tuple[str, str], list[float]] = {}
                for round_ in range(args.repeat):
                    for name, server in (("s3", s3_serve), ("local", local_serve)):
                        with mounted(work, name, server) as root:
                            mount_runs.setdefault(("cold", name), []).append(
                                timed(lambda: read_through(root / "large.bin")))
                            if round_ == 0:
                                def ls_many() -> None:
                                    done = subprocess.run(["ls", "-l", str(root / MANY)], capture_output=True,
                                                          text=True, timeout=300)
                                    assert done.returncode == 0 and done.stdout.count("\n") == objects + 1
                                mount_runs.setdefault(("ls", name), []).append(timed(ls_many))
                                folder = root / f"writes-{round_}"
                                folder.mkdir()
                                mount_runs.setdefault(("writes", name), []).append(
                                    timed(functools.partial(write_small, folder, writes)))
                for name in ("s3", "local"):
                    table.add(f"mount: cold read {size_mb} MiB", f"algofs mount on serve ({name})",
                              mount_runs[("cold", name)], size, "fresh mount, empty cache")
                for name in ("s3", "local"):
                    table.add(f"mount: ls -l {objects} entries", f"algofs mount on serve ({name})",
                              mount_runs[("ls", name)], note="cold")
                for name in ("s3", "local"):
                    table.add(f"mount: write {writes} x 1 KiB", f"algofs mount on serve ({name})",
                              mount_runs[("writes", name)], note="upload on close")
        finally:
            for server in servers:
                server.stop()
            weed.stop()

    table.facts.update(machine=f"{platform.node()} {os.cpu_count()} cores", python=platform.python_version(),
                       boto3=boto3.__version__, botocore=botocore.__version__, seaweedfs="weed 4.48",
                       seconds=round(time.time() - started))
    write_report(table, size_mb, objects, writes, args)
    return 0


def ratio_line(table: Table, op: str, size_mb: int) -> str:
    scenario = f"{op} {size_mb} MiB"
    server = table.get(scenario, "curl through algofs serve (s3)")
    boto = table.get(scenario, "boto3 straight to the store")
    if not server or not boto or not server.seconds or not boto.seconds:
        return f"- {op}: not measured"
    extra = server.seconds / boto.seconds - 1
    verdict = "met" if extra <= 0.25 else "NOT met"
    return (f"- {op}: the server takes {server.seconds:.2f} s vs boto3's {boto.seconds:.2f} s: "
            f"{extra * 100:+.0f} % (target <= +25 %: {verdict})")


def write_report(table: Table, size_mb: int, objects: int, writes: int, args: argparse.Namespace) -> None:
    command = "python bench/s3_backend.py" + (" --quick" if args.quick else "") + (
        f" --repeat {args.repeat}" if args.repeat != 3 else "")
    rss: list[list[float]] = [list(table.facts.get(f"rss_growth_{op}_mib") or [])  # type: ignore[call-overload]
                              for op in ("get", "put")]
    lines = [
        "# `algofs serve --storage s3://…` vs the S3 store (SeaweedFS) itself",
        "",
        f"`{command}` at {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; medians of {args.repeat}, "
        "systems interleaved in each round, everything on 127.0.0.1 of one 2-core VM shared with other work "
        "(numbers vary by +-30 % between runs: compare within a run).",
        "",
        "## Targets",
        ratio_line(table, "GET", size_mb),
        ratio_line(table, "PUT", size_mb),
        f"- server RSS growth during the server's transfers, MiB (GET runs, PUT runs): {rss[0]}, {rss[1]} "
        f"(target < 100 MiB: {'met' if all(max(r or [0]) < 100 for r in rss) else 'NOT met'})",
        "",
        "| scenario | system | median s | MB/s | runs (s) | note |",
        "|---|---|---|---|---|---|",
    ]
    for row in table.rows:
        secs = "failed" if row.seconds is None else f"{row.seconds:.2f}"
        rate = f"{row.mb_s:.0f}" if row.mb_s else ""
        lines.append(f"| {row.scenario} | {row.system} | {secs} | {rate} | "
                     f"{', '.join(f'{r:.2f}' for r in row.runs)} | {row.note} |")
    lines += ["", "Facts: " + json.dumps(table.facts)]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "s3_backend.md").write_text("\n".join(lines) + "\n")
    (RESULTS / "s3_backend.json").write_text(json.dumps(
        {"rows": [row.__dict__ for row in table.rows], "facts": table.facts}, indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    raise SystemExit(main())
