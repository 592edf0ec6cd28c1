"""Per-owner caps from the operator's file (algo_cgroups.CapsTable): defaults, overrides, live changes."""

from __future__ import annotations

import json
import os
import time

import pytest

from algofs_jupyter.server import watched_file
from algofs_jupyter.server.algo_cgroups import CapsTable, OwnerCaps


def write(path, table) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(table) if isinstance(table, dict) else table)
    os.replace(tmp, path)


def test_overrides_apply_per_owner_and_follow_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(watched_file, "CHECK_INTERVAL", 0.0)
    caps_file = tmp_path / "owner-caps.json"
    write(caps_file, {"default": {"processes": 32}, "users": {"alice": {"memory_bytes": 4 << 30, "cpus": 2}}})
    table = CapsTable(OwnerCaps(processes=64, memory_bytes=1 << 30, cpus=1.0), caps_file)
    assert table.for_owner("bob") == OwnerCaps(processes=32, memory_bytes=1 << 30, cpus=1.0)
    assert table.for_owner("alice") == OwnerCaps(processes=32, memory_bytes=4 << 30, cpus=2.0)
    write(caps_file, "{ not json")  # half-written or broken by hand: the previous caps stay
    time.sleep(0.01)
    assert table.for_owner("alice").memory_bytes == 4 << 30
    write(caps_file, {"users": {"bob": {"processes": 8}}})
    time.sleep(0.01)
    assert table.for_owner("bob").processes == 8 and table.for_owner("alice").processes == 64
    caps_file.unlink()
    time.sleep(0.01)
    assert table.for_owner("bob") == table.default


@pytest.mark.parametrize("spec", [{"users": {"a": {"threads": 3}}}, {"default": {"processes": -1}},
                                  {"default": {"cpus": True}}])
def test_a_bad_caps_file_at_start_says_what_is_wrong(tmp_path, spec):
    caps_file = tmp_path / "owner-caps.json"
    write(caps_file, spec)
    with pytest.raises(ValueError):
        CapsTable(OwnerCaps(), caps_file)
