"""The server extension's start-up log line (issue 25, item 9: it said "fuse at … (None)")."""

from __future__ import annotations

from algofs_jupyter.jupyter.serverext import startup_summary


def _status(mode: str, reason: str | None) -> dict:
    return {"mode": mode, "mountpoint_abs": "/home/u/algofs", "reason": reason,
            "api_address": "http://127.0.0.1:8765"}


def test_mounted_names_the_mount_and_the_api_and_no_none():
    line = startup_summary(_status("fuse", None))
    assert "None" not in line
    assert "/home/u/algofs" in line and "http://127.0.0.1:8765" in line and "mounted" in line


def test_fallback_and_errors_say_why():
    assert startup_summary(_status("fallback", "no /dev/fuse")).endswith(": no /dev/fuse")
    assert "fallback" in startup_summary(_status("fallback", "no /dev/fuse"))
    line = startup_summary(_status("error", "fusermount3 failed"))
    assert "not mounted" in line and "fusermount3 failed" in line
    assert "None" not in startup_summary(_status("unmounted", None))
