"""Error lists of algorithms (``GET /v1/algorithms/<id>/errors``, ``/v1/users/<user>/errors``).

What the hosted service kept for an algorithm's owner: the calls of their algorithms that ended in an
error (the algorithm raised, timed out, crashed, failed to load) and their failed builds, newest first.
Only the error's type and message are kept (the message cut to 2000 characters), with the algorithm, the
version and when; not the input, not who called, not the stack trace. The owner alone reads them
(``algo_manage_handlers.py``).

On disk: ``<root>/algorithm-errors/<owner>/<algorithm id>.jsonl``, one JSON object a line, appended; a file
past ``2 * KEEP`` lines is cut back to the newest ``KEEP``. Concurrency: event loop only.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import datetime, timezone
from pathlib import Path

KEEP = 200
MAX_MESSAGE = 2000
MAX_LISTED = 1000


class ErrorLog:
    def __init__(self, root: Path):
        self.folder = root / "algorithm-errors"

    def record(self, owner: str, name: str, algorithm_id: str, version: str, error: dict) -> None:
        folder = self.folder / owner
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        now = datetime.now(timezone.utc)
        entry = {"id": str(uuid.uuid4()), "algorithm_id": algorithm_id, "algorithm": f"{owner}/{name}",
                 "version": version, "error_type": str(error.get("error_type") or "AlgorithmError"),
                 "message": str(error.get("message", ""))[:MAX_MESSAGE],
                 "created_at": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"}
        path = folder / f"{algorithm_id}.jsonl"
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(entry) + "\n")
        if path.stat().st_size > 2 * KEEP * 300:  # cheap check first; count lines only when it may be over
            lines = path.read_text(encoding="utf-8").splitlines()
            if len(lines) > 2 * KEEP:
                tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
                tmp.write_text("\n".join(lines[-KEEP:]) + "\n", encoding="utf-8")
                os.replace(tmp, path)

    @staticmethod
    def _read(path: Path) -> list[dict]:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError:
            return []
        entries = []
        for line in lines:
            try:
                entries.append(json.loads(line))
            except ValueError:
                continue  # a line cut by a crash mid-append
        return entries

    def for_algorithm(self, owner: str, algorithm_id: str) -> list[dict]:
        return self._read(self.folder / owner / f"{algorithm_id}.jsonl")[::-1][:MAX_LISTED]

    def for_owner(self, owner: str) -> list[dict]:
        folder = self.folder / owner
        paths = folder.glob("*.jsonl") if folder.is_dir() else []
        entries = [entry for path in paths for entry in self._read(path)]
        return sorted(entries, key=lambda e: e.get("created_at", ""), reverse=True)[:MAX_LISTED]
