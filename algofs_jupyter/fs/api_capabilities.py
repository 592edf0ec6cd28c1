"""What a server offers beyond the hosted Data API (docs/api-extensions.md §1), as the client sees it.

Asked once per ``AlgoFileSystem`` (``GET /v1/algofs/capabilities``); a server that answers anything but
a JSON object (the hosted API, an older ``algofs serve``) has none, and every caller falls back to plain
Data API calls. An extension counts only in the wire-format version this client implements.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

WRITE_AT_OFFSET, MOVE, COPY, SET_MTIME, FOLDER_MTIME = "write-at-offset", "move", "copy", "set-mtime", \
    "folder-mtime"
EXCLUSIVE_CREATE = "exclusive-create"
POSIX = "posix"
READ_MANY = "read-many"
LOCAL_READS = "local-reads"
#: Extension name → the wire-format version implemented here.
KNOWN_VERSIONS = {WRITE_AT_OFFSET: 1, MOVE: 1, COPY: 1, SET_MTIME: 1, FOLDER_MTIME: 1, "errno": 1,
                  EXCLUSIVE_CREATE: 1, POSIX: 1, READ_MANY: 1, LOCAL_READS: 1}


@dataclass(frozen=True)
class Capabilities:
    extensions: frozenset[str] = frozenset()
    backends: dict[str, frozenset[str]] = field(default_factory=dict)  # storage → its extensions
    name_max: int = 255
    path_max: int = 4095
    #: the local-reads socket's path and the uid serving it (§13), when the server offers it
    local_reads: tuple[str, int] | None = None

    @classmethod
    def none(cls) -> Capabilities:
        return cls()

    @classmethod
    def from_json(cls, body: Any) -> Capabilities:
        if not isinstance(body, dict) or not isinstance(body.get("extensions"), dict):
            return cls.none()
        known = frozenset(name for name, version in body["extensions"].items()
                          if KNOWN_VERSIONS.get(name) == version)
        backends = {str(name): frozenset(str(x) for x in names) & known
                    for name, names in (body.get("backends") or {}).items() if isinstance(names, list)}
        limits = body["limits"] if isinstance(body.get("limits"), dict) else {}
        advertised = body.get("local_reads")
        local_reads = None
        if LOCAL_READS in known and isinstance(advertised, dict) \
                and isinstance(advertised.get("socket"), str) and isinstance(advertised.get("uid"), int):
            local_reads = (advertised["socket"], advertised["uid"])
        return cls(known, backends, int(limits.get("name_max") or 255), int(limits.get("path_max") or 4095),
                   local_reads)

    def supports(self, extension: str, storage: str) -> bool:
        """``storage`` = ``data`` or a connector id (``s3``, ``dropbox+work``)."""
        if extension not in self.extensions:
            return False
        offered = self.backends.get(storage)
        if offered is None:
            offered = self.backends.get(storage.partition("+")[0])
        return offered is None or extension in offered

    @property
    def any(self) -> bool:
        return bool(self.extensions)
