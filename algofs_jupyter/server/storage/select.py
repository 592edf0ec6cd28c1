"""Choosing a storage from configuration: ``--storage`` of ``algofs serve`` and ``"type": "s3"`` connectors.

boto3 is imported only when an S3 storage is configured (it is the ``s3`` extra of the package).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ...names import RESERVED_PREFIX
from .base import AlreadyExists, StorageBackend
from .local import LocalBackend


@dataclass(frozen=True)
class StorageConfig:
    """Where the hosted data lives: ``url`` None = ``<root>/data`` on disk, else ``s3://BUCKET/PREFIX``."""

    url: str | None = None
    s3_endpoint: str | None = None
    s3_region: str | None = None

    @property
    def is_s3(self) -> bool:
        return bool(self.url and self.url.startswith("s3://"))

    def validate(self) -> None:
        if self.url is None or self.url == "local":
            return
        if not self.is_s3:
            raise ValueError(f"--storage must be s3://BUCKET[/PREFIX] (or omitted for local), "
                             f"not {self.url!r}")
        from .s3 import S3Location

        S3Location.parse(self.url)


def hosted_storage(root: Path, config: StorageConfig) -> StorageBackend:
    """The backend of ``data://``: local (``<root>/data``, metadata in ``<root>/meta``) or S3
    (``PREFIX/data/``, metadata in ``PREFIX/meta/``)."""
    if not config.is_s3:
        return LocalBackend(root / "data", root / "meta")
    from .s3 import s3_backend

    assert config.url is not None
    return s3_backend(config.url, endpoint=config.s3_endpoint, region=config.s3_region)


def s3_connector_backend(cid: str, spec: dict, root: Path) -> StorageBackend:
    """``{"type": "s3", "url": "s3://BUCKET/PREFIX", "endpoint": …, "region": …, "profile": …}``.

    Objects right under the URL (a team's existing bucket keeps its layout); the connector's metadata
    under ``PREFIX/.algofs-partial-meta/``, a name the API refuses and listings hide. Credentials come
    from ``profile`` in the server's shared AWS files (or the default chain without one), never from
    the connectors file.
    """
    from .s3 import S3Location, s3_backend

    url = spec.get("url")
    if not isinstance(url, str):
        raise ValueError(f"connector {cid}: an s3 connector needs \"url\": \"s3://BUCKET/PREFIX\"")
    for field in ("endpoint", "region", "profile"):
        if spec.get(field) is not None and not isinstance(spec[field], str):
            raise ValueError(f"connector {cid}: {field!r} must be a string")
    if any(k in spec for k in ("aws_secret_access_key", "secret_key", "secret", "aws_access_key_id")):
        raise ValueError(f"connector {cid}: no credentials in the connectors file; name a \"profile\"")
    meta = str(S3Location.parse(url)) + RESERVED_PREFIX + "meta/"
    backend = s3_backend(url, endpoint=spec.get("endpoint"), region=spec.get("region"),
                         profile=spec.get("profile"), meta_url=meta)
    for allowed in spec.get("allowed_paths", []):
        # the allowed paths must exist to be written into, and nobody may create them (their parents
        # are out of reach): a fresh bucket gets their folder markers
        key: tuple[str, ...] = ()
        for name in (part for part in str(allowed).split("/") if part):
            key = (*key, name)
            try:
                backend.mkdir(key)
            except AlreadyExists:
                pass
    return backend
