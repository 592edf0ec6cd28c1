"""Which S3 library for ``algofs serve --storage s3://``: boto3 vs obstore, measured side by side.

    python bench/s3_library.py [--size-mb 1024] [--keys 10000] [--repeat 3]

One fresh SeaweedFS (``algofs_jupyter.testing.seaweedfs``) on 127.0.0.1; a file of random bytes in the page
cache; every transfer repeated ``--repeat`` times, libraries interleaved, medians reported. The uploads stream
from a file object in 16 MiB parts with 4 in flight (what the server would do with a request body); the
downloads read the body as a stream (what the server forwards). Listing: every key of a ``--keys`` prefix,
1000 per page (the API's page size), and one delimiter page. s3fs is left out: pip resolves it to s3fs 0.4.2
(2020) next to current boto3, because current s3fs's aiobotocore pins an older botocore. The boto3 listing is
also measured with botocore's timestamp parser replaced by ``str`` (the server's client does that).
Output: ``bench/results/s3_library.md``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from algofs_jupyter.testing.seaweedfs import SeaweedFS  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
MiB = 1 << 20
PART = 16 * MiB
BUCKET = "bench-library"


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import boto3
    import botocore.session
    import obstore
    from boto3.s3.transfer import TransferConfig
    from obstore.store import S3Store

    size = args.size_mb * MiB
    with tempfile.TemporaryDirectory(prefix="algofs-s3lib-") as tmp:
        source = Path(tmp, "large.bin")
        with open(source, "wb") as handle:
            for _ in range(args.size_mb):
                handle.write(os.urandom(MiB))
        with SeaweedFS(Path(tmp, "weed"), [BUCKET]) as weed:
            acct = weed.account
            s3 = boto3.client("s3", endpoint_url=acct.endpoint, region_name=acct.region,
                              aws_access_key_id=acct.access_key, aws_secret_access_key=acct.secret_key)
            store = S3Store(BUCKET, endpoint=acct.endpoint, region=acct.region, access_key_id=acct.access_key,
                            secret_access_key=acct.secret_key, virtual_hosted_style_request=False,
                            client_options={"allow_http": True})
            transfer = TransferConfig(multipart_threshold=PART, multipart_chunksize=PART, max_concurrency=4)

            def boto3_put() -> None:
                with open(source, "rb") as handle:
                    s3.upload_fileobj(handle, BUCKET, "boto3.bin", Config=transfer)

            def obstore_put() -> None:
                with open(source, "rb") as handle:
                    obstore.put(store, "obstore.bin", handle, chunk_size=PART, max_concurrency=4)

            def boto3_get() -> None:
                body = s3.get_object(Bucket=BUCKET, Key="boto3.bin")["Body"]
                got = sum(len(c) for c in iter(lambda: body.read(MiB), b""))
                assert got == size, got

            def obstore_get() -> None:
                got = sum(len(c) for c in obstore.get(store, "obstore.bin").stream(MiB))
                assert got == size, got

            samples: dict[str, list[float]] = {}
            for _ in range(args.repeat):
                for name, action in (("PUT boto3", boto3_put), ("PUT obstore", obstore_put),
                                     ("GET boto3", boto3_get), ("GET obstore", obstore_get)):
                    samples.setdefault(name, []).append(timed(action))
                    print(f"  {name}: {samples[name][-1]:.2f} s", flush=True)

            prefix = "many/"
            with ThreadPoolExecutor(16) as pool:
                list(pool.map(lambda i: s3.put_object(Bucket=BUCKET, Key=f"{prefix}f{i:06d}", Body=b"x"),
                              range(args.keys)))

            def boto3_list() -> None:
                pages = s3.get_paginator("list_objects_v2").paginate(
                    Bucket=BUCKET, Prefix=prefix, Delimiter="/", PaginationConfig={"PageSize": 1000})
                assert sum(len(p.get("Contents", [])) for p in pages) == args.keys

            # botocore spends ~85 % of a 1000-key page in dateutil parsing LastModified; the server's
            # client keeps the ISO strings (algofs_jupyter/server/storage/s3.py does the same)
            session = botocore.session.get_session()
            session.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=str)
            s3_iso = boto3.Session(botocore_session=session).client(
                "s3", endpoint_url=acct.endpoint, region_name=acct.region, aws_access_key_id=acct.access_key,
                aws_secret_access_key=acct.secret_key)

            def boto3_iso_list() -> None:
                pages = s3_iso.get_paginator("list_objects_v2").paginate(
                    Bucket=BUCKET, Prefix=prefix, Delimiter="/", PaginationConfig={"PageSize": 1000})
                assert sum(len(p.get("Contents", [])) for p in pages) == args.keys

            def obstore_list() -> None:
                assert sum(len(c) for c in obstore.list(store, prefix, chunk_size=1000)) == args.keys

            for _ in range(args.repeat):
                for name, action in (("list boto3", boto3_list), ("list boto3 ISO", boto3_iso_list),
                                     ("list obstore", obstore_list)):
                    samples.setdefault(name, []).append(timed(action))
                    print(f"  {name}: {samples[name][-1]:.2f} s", flush=True)

    lines = [
        "# S3 library choice: boto3 vs obstore against SeaweedFS on 127.0.0.1",
        "",
        f"`python bench/s3_library.py --size-mb {args.size_mb} --keys {args.keys} --repeat {args.repeat}`, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, boto3 {boto3.__version__}, obstore "
        f"{getattr(obstore, '__version__', '?')}. Medians of {args.repeat}, libraries interleaved.",
        "",
        "| operation | library | median s | MB/s | all runs (s) |",
        "|---|---|---|---|---|",
    ]
    for name, runs in samples.items():
        op, lib = name.split(" ", 1)
        median = statistics.median(runs)
        rate = f"{size / median / 1e6:.0f}" if op in ("PUT", "GET") else "-"
        what = {"PUT": f"PUT {args.size_mb} MiB", "GET": f"GET {args.size_mb} MiB",
                "list": f"list {args.keys} keys"}[op]
        lines.append(f"| {what} | {lib} | {median:.2f} | {rate} | {', '.join(f'{r:.2f}' for r in runs)} |")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "s3_library.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
