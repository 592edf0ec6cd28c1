"""The one mount-table reader (``mount/mount_table.py``)."""

from __future__ import annotations

from pathlib import Path

from algofs_jupyter.mount import mount_table
from algofs_jupyter.mount.mount_table import MountEntry, parse_mountinfo_line


def test_mountinfo_lines_with_and_without_optional_fields() -> None:
    line = "36 35 0:41 / /tmp/my\\040mount rw,nosuid shared:1 master:2 - fuse.algofs algofs rw,user_id=0"
    assert parse_mountinfo_line(line) == MountEntry("/tmp/my mount", "fuse.algofs", "0:41",
                                                                  "rw,user_id=0")
    assert parse_mountinfo_line("22 27 0:21 / /proc rw,relatime - proc proc rw") == \
        MountEntry("/proc", "proc", "0:21", "rw")
    assert parse_mountinfo_line("garbage") is None


def test_the_table_of_this_process() -> None:
    entries = mount_table.mount_entries()
    assert any(entry.mountpoint == "/" for entry in entries)
    assert mount_table.entry_at("/proc") is not None and mount_table.entry_at("/proc").fs_type == "proc"
    assert not mount_table.is_algofs_mount("/proc")


def test_mount_path_resolves_the_parent_only(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    (tmp_path / "real" / "mnt").symlink_to("/nonexistent")
    assert mount_table.mount_path(tmp_path / "link" / "mnt") == str(tmp_path.resolve() / "real" / "mnt")
