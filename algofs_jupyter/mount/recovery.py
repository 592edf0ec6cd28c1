"""The recovery folder: bytes whose upload failed are kept here until re-uploaded (nothing is lost).

Layout: ``<cache-dir>/recovery/<id>/data`` (the file's bytes) and ``<id>/meta.json``
(``{"path", "uri", "api_address", "size", "saved_at", "error"}``; ``path`` is in the mount layout,
e.g. ``data/demo/notes/x.txt``). ``algofs recover`` lists entries and, with ``--upload``, puts each one
back and deletes it on success. The daemon removes an entry itself when a later flush of the same
open file succeeds.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from ..fs import api_paths
from ..fs.data_api import DataClient
from ..private_dirs import make_private_dirs


@dataclass(frozen=True)
class RecoveryEntry:
    id: str
    directory: Path
    path: str
    api_address: str
    size: int
    saved_at: float
    error: str

    @property
    def data_file(self) -> Path:
        return self.directory / "data"

    def as_dict(self) -> dict:
        return {"id": self.id, "path": self.path, "uri": api_paths.data_uri(api_paths.split_path(self.path)),
                "api_address": self.api_address, "size": self.size, "saved_at": self.saved_at,
                "error": self.error, "data_file": str(self.data_file)}


class RecoveryStore:
    def __init__(self, cache_dir: str | os.PathLike, api_address: str = ""):
        self.directory = Path(cache_dir) / "recovery"
        self.api_address = api_address

    def save(self, source: str | os.PathLike, path: str, error: str,
             api_address: str | None = None) -> RecoveryEntry:
        """Copy ``source`` (a staged file) into a new entry for remote ``path`` (of ``api_address``,
        by default this store's)."""
        entry_id = time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(4)
        directory = self.directory / entry_id
        make_private_dirs(self.directory)
        directory.mkdir(mode=0o700)
        shutil.copyfile(source, directory / "data")
        size = (directory / "data").stat().st_size
        meta = {"path": path, "uri": api_paths.data_uri(api_paths.split_path(path)),
                "api_address": api_address or self.api_address, "size": size, "saved_at": time.time(),
                "error": error}
        tmp = directory / "meta.json.tmp"
        tmp.write_text(json.dumps(meta, indent=2))
        os.replace(tmp, directory / "meta.json")
        return self._load(directory)

    def _load(self, directory: Path) -> RecoveryEntry:
        meta = json.loads((directory / "meta.json").read_text())
        return RecoveryEntry(directory.name, directory, meta["path"], meta.get("api_address", ""),
                             int(meta.get("size", 0)), float(meta.get("saved_at", 0)), meta.get("error", ""))

    def entries(self) -> list[RecoveryEntry]:
        if not self.directory.is_dir():
            return []
        found = []
        for directory in sorted(self.directory.iterdir()):
            if (directory / "meta.json").is_file() and (directory / "data").is_file():
                try:
                    found.append(self._load(directory))
                except (OSError, ValueError, KeyError):
                    continue
        return found

    def discard(self, entry_id: str) -> None:
        shutil.rmtree(self.directory / entry_id, ignore_errors=True)

    def upload(self, entry: RecoveryEntry, client: DataClient) -> None:
        """Put the entry's bytes back at its path; delete it on success."""
        client.put_file(str(entry.data_file), entry.path)
        self.discard(entry.id)
