"""The S3 client side of ``S3Backend`` (storage/s3.py): where a tree lives (``S3Location``), the boto3
client (``make_client``), and what its answers mean here: times, ETags, error codes, botocore errors as
storage errors. Nothing here knows keys, folders or uploads."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

from .base import NameTooLong, NotFound, PreconditionFailed, StorageError

#: Download chunks: below the 1 MiB mmap threshold that ``s3_uploads.return_part_buffers_to_the_os``
#: pins, so they are reused heap memory. A 4 MiB chunk was a fresh mmap each time: 262,000 page faults and
#: 1.1 s of system time per GiB, which made a GET 69 % slower than boto3's (the server batches chunks per
#: thread hop instead, ``data_handlers.DOWNLOAD_BATCH``).
READ_CHUNK = 512 * 1024


@dataclass(frozen=True)
class S3Location:
    """``s3://BUCKET/PREFIX``; ``prefix`` is empty or ends with ``/``."""

    bucket: str
    prefix: str = ""

    @classmethod
    def parse(cls, url: str) -> S3Location:
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ValueError(f"not an s3://BUCKET/PREFIX URL: {url!r}")
        prefix = parts.path.strip("/")
        return cls(parts.netloc, prefix + "/" if prefix else "")

    def join(self, *names: str) -> S3Location:
        extra = "/".join(n.strip("/") for n in names if n.strip("/"))
        return S3Location(self.bucket, self.prefix + extra + "/" if extra else self.prefix)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

def make_client(endpoint: str | None = None, region: str | None = None, profile: str | None = None) -> Any:
    """A boto3 S3 client; credentials the standard AWS ways (env, shared files, ``profile``), never args.

    Its botocore session keeps timestamps as strings: dateutil parsing of ``LastModified`` is ~85 % of a
    1000-key listing page (0.40 s -> 0.07 s; bench/results/s3_library.md).
    """
    import boto3
    import botocore.session
    from botocore.config import Config

    session = botocore.session.Session(profile=profile)
    session.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=str)
    # checksums only where the API requires them: TLS or the store's MD5/ETag already guard the bytes,
    # and a CRC over every part costs CPU the 2-core machines here don't have
    config = Config(max_pool_connections=32, retries={"mode": "standard", "max_attempts": 4},
                    connect_timeout=10, read_timeout=60, s3={"addressing_style": "path"},
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required")
    return boto3.Session(botocore_session=session).client("s3", endpoint_url=endpoint, region_name=region,
                                                          config=config)


def parse_time(value: Any) -> float:
    """LastModified as epoch seconds: an ISO string (listings), an HTTP date (HEAD) or a datetime."""
    if isinstance(value, datetime):
        moment = value
    elif "," in str(value):
        moment = parsedate_to_datetime(str(value))
    else:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def quoted(etag: str | None) -> str | None:
    """ETags as HTTP wants them; SeaweedFS returns some without quotes."""
    if not etag:
        return None
    return etag if etag.startswith('"') or etag.startswith("W/") else f'"{etag}"'


def error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", "")) or str(
        response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))


def is_missing(exc: Exception) -> bool:
    return error_code(exc) in ("404", "NoSuchKey", "NotFound")


@contextlib.contextmanager
def storage_errors(what: str = "object storage request failed") -> Iterator[None]:
    """botocore errors as StorageErrors (never a bare ClientError upwards); 412 -> PreconditionFailed."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except StorageError:
        raise
    except ClientError as exc:
        code = error_code(exc)
        if code in ("404", "NoSuchKey", "NotFound"):
            raise NotFound("path not found") from exc
        if code in ("412", "PreconditionFailed"):
            raise PreconditionFailed("the object changed meanwhile", etag=None) from exc
        if code == "KeyTooLongError":
            raise NameTooLong(f"the object store refuses a key this long ({code})") from exc
        raise StorageError(f"{what}: {code}") from exc
    except BotoCoreError as exc:
        raise StorageError(f"{what}: {type(exc).__name__}") from exc
