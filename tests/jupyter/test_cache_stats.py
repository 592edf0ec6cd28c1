"""The cache summary of the magics and the widget (issue 25, item 9: "0 B … 1 file(s)" while small files sat
in memory, so notebook 03 could not show caching working)."""

from __future__ import annotations

from algofs_jupyter.jupyter.cache_stats import cache_stats_from_control, empty_cache_stats
from algofs_jupyter.jupyter.formatting import cache_html, cache_summary

# the daemon's status, trimmed to what the summary reads (docs/control.md)
STATUS = {
    "cache": {"size_bytes": 0, "limit_bytes": 256 << 20, "hits": 3, "misses": 2, "bytes_fetched": 90112,
              "entries": [{"path": "data/demo/datasets/cities.csv", "cached_bytes": 81920, "size": 81920}]},
    "small_files": {"files": 40, "bytes": 81920, "unread_bytes": 0, "budget": 64 << 20, "hits": 3,
                    "misses": 2, "prefetch": {"runs": 1}},
    "uploads": {"in_flight": 0, "failed": 0},
}


def test_small_files_in_memory_are_counted():
    stats = cache_stats_from_control(STATUS, 256 << 20)
    assert stats["small_files"] == {"files": 40, "bytes": 81920}
    summary = cache_summary(stats)
    assert "80.0 KiB in memory (40 small file(s))" in summary, summary
    assert summary.startswith("0 B of 256.0 MiB on disk"), summary
    assert "80.0 KiB in memory" in cache_html(stats)


def test_no_small_files_no_memory_clause():
    stats = cache_stats_from_control({"cache": STATUS["cache"]}, 256 << 20)
    assert stats["small_files"] == {"files": 0, "bytes": 0}
    assert "memory" not in cache_summary(stats)
    assert "memory" not in cache_summary(empty_cache_stats(1 << 20))


def test_large_files_read_from_the_server_s_own_file_are_said_apart():
    status = {"cache": {**STATUS["cache"], "server_files": {"open": 1, "not_offered": 0, "opened": 2,
                                                            "refused": 0, "reads": 9, "bytes": 3 << 30}}}
    stats = cache_stats_from_control(status, 256 << 20)
    assert stats["server_files"] == {"opened": 2, "reads": 9, "bytes": 3 << 30}
    summary = cache_summary(stats)
    assert summary.endswith("; read from the server's own files: 3.0 GiB, nothing cached"), summary
    assert "server's own" not in cache_summary(cache_stats_from_control(STATUS, 256 << 20))
    assert "server's own" not in cache_summary(empty_cache_stats(1 << 20))
