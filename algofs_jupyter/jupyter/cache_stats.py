"""The ``CacheStats`` shape of docs/rest-api.md, built from the mount daemon's control-socket status."""

from __future__ import annotations

from typing import Any


def empty_cache_stats(limit_bytes: int | None) -> dict:
    return {
        "size_bytes": 0,
        "limit_bytes": limit_bytes,
        "hits": 0,
        "misses": 0,
        "hit_ratio": None,
        "bytes_fetched": 0,
        "entries": [],
        "uploads_in_flight": 0,
        "uploads_failed": 0,
        "small_files": {"files": 0, "bytes": 0},
        "server_files": {"opened": 0, "reads": 0, "bytes": 0},
    }


def _first(source: dict, *names: str, default: Any = 0) -> Any:
    for name in names:
        if name in source and source[name] is not None:
            return source[name]
    return default


def _entries(raw: Any) -> list[dict]:
    if isinstance(raw, dict):  # {path: {...}} form
        raw = [{"path": path, **(value if isinstance(value, dict) else {})} for path, value in raw.items()]
    entries = []
    for item in raw or []:
        if not isinstance(item, dict):
            continue
        entries.append(
            {
                "path": str(_first(item, "path", "name", default="")),
                "cached_bytes": int(_first(item, "cached_bytes", "bytes", "cached")),
                "size": _first(item, "size", "file_size", default=None),
            }
        )
    entries.sort(key=lambda entry: entry["path"])
    return entries


def cache_stats_from_control(status: dict, limit_bytes: int | None) -> dict:
    """Normalise the daemon's ``status`` answer (cache section, or the top level) to ``CacheStats``."""
    cache_section, uploads_section = status.get("cache"), status.get("uploads")
    cache: dict = cache_section if isinstance(cache_section, dict) else status
    uploads: dict = uploads_section if isinstance(uploads_section, dict) else {}
    small_section = status.get("small_files")
    small: dict = small_section if isinstance(small_section, dict) else {}
    server_section = cache.get("server_files")
    server: dict = server_section if isinstance(server_section, dict) else {}
    hits = int(_first(cache, "hits", "block_hits"))
    misses = int(_first(cache, "misses", "block_misses"))
    ratio = _first(cache, "hit_ratio", default=None)
    if ratio is None and hits + misses:
        ratio = hits / (hits + misses)
    return {
        "size_bytes": int(_first(cache, "size_bytes", "bytes", "used_bytes")),
        "limit_bytes": _first(cache, "limit_bytes", "max_bytes", default=limit_bytes),
        "hits": hits,
        "misses": misses,
        "hit_ratio": ratio,
        "bytes_fetched": int(_first(cache, "bytes_fetched", "fetched_bytes")),
        "entries": _entries(_first(cache, "entries", "files", default=[])),
        "uploads_in_flight": int(_first(uploads, "in_flight", "pending")),
        "uploads_failed": int(_first(uploads, "failed")),
        # the small-file store holds whole small files in memory, outside size_bytes (the disk cache's)
        "small_files": {"files": int(_first(small, "files")), "bytes": int(_first(small, "bytes"))},
        # large files read from the server's own file (local reads): outside the caches and bytes_fetched
        "server_files": {"opened": int(_first(server, "opened")), "reads": int(_first(server, "reads")),
                         "bytes": int(_first(server, "bytes"))},
    }
