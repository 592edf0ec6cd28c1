"""Storage connectors (``s3://``, ``dropbox://``, ``dropbox+work://`` …) backed by local directories.

Configured in ``<root>/connectors.json``::

    {"connectors": {
        "s3":        {"path": "connectors/s3"},
        "s3+images": {"path": "connectors/s3-images", "allowed_paths": ["media/images"]}}}

``path`` is relative to the root (or absolute). ``allowed_paths`` is the connector's *path
restriction*: only those sub-paths (and everything below them) are reachable; their ancestors,
including the connector root, answer 403.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .paths import CONNECTOR_ID

DEFAULT_CONNECTORS = {
    "s3": {"path": "connectors/s3"},
    "dropbox": {"path": "connectors/dropbox"},
}


@dataclass(frozen=True)
class Connector:
    cid: str
    directory: Path
    allowed_paths: tuple[tuple[str, ...], ...] = field(default_factory=tuple)

    @property
    def restricted(self) -> bool:
        return bool(self.allowed_paths)

    def allows(self, segments: tuple[str, ...]) -> bool:
        """True when ``segments`` is at or below one of the allowed paths (or there is no restriction)."""
        if not self.allowed_paths:
            return True
        return any(segments[: len(prefix)] == prefix for prefix in self.allowed_paths)


def _split(path: str) -> tuple[str, ...]:
    return tuple(part for part in path.split("/") if part)


def load_connectors(root: Path) -> dict[str, Connector]:
    """Read the connectors file, writing the default one (s3 and dropbox) when there is none."""
    config_file = root / "connectors.json"
    if not config_file.exists():
        config_file.write_text(json.dumps({"connectors": DEFAULT_CONNECTORS}, indent=2) + "\n")
    config = json.loads(config_file.read_text(encoding="utf-8")).get("connectors", {})
    connectors = {}
    for cid, spec in config.items():
        if not CONNECTOR_ID.match(cid) or cid == "data":
            raise ValueError(f"{config_file}: invalid connector id {cid!r}")
        directory = Path(spec["path"])
        directory = directory if directory.is_absolute() else root / directory
        directory.mkdir(parents=True, exist_ok=True)
        allowed = tuple(_split(p) for p in spec.get("allowed_paths", []))
        if any(not p for p in allowed):
            raise ValueError(f"{config_file}: {cid}: an allowed path can't be the connector root")
        connectors[cid] = Connector(cid, directory, allowed)
    return connectors
