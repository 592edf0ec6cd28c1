"""Issue 22: ``algofs serve --log-file`` records every user's paths, so the log and each rotated backup are
0600 whatever the umask (a backup an older version left readable too), and a log directory the server makes
is 0700. A real ``algofs serve`` under umask 022."""

from __future__ import annotations

import os
from pathlib import Path

import requests
from file_modes import mode

from .test_cli import start_serve, stop


def test_the_serve_log_and_its_rotated_backups_are_0600(umask_022: None, tmp_path: Path,
                                                        free_port: int) -> None:
    log = tmp_path / "logs" / "serve.log"  # the directory does not exist yet
    old_backup = tmp_path / "old-backup"
    old_backup.write_text("a backup an older version left readable\n")
    os.chmod(old_backup, 0o644)
    child = start_serve(["--user", "carol", "--log-file", str(log), "--log-max-bytes", "2000"], tmp_path,
                        free_port, {"ALGOFS_SERVE_API_KEY": "sim-carol-secret"})
    try:
        assert mode(log.parent) == 0o700 and mode(log) == 0o600
        base = f"http://127.0.0.1:{free_port}"
        for n in range(120):  # ~80 bytes of access log each: every backup is written
            requests.get(f"{base}/v1/data/.my/private-{n}", headers={"Authorization": "sim-carol-secret"})
        assert (log.parent / "serve.log.3").exists()
    finally:
        stop(child)
    files = sorted(log.parent.iterdir())
    assert [f.name for f in files] == ["serve.log", "serve.log.1", "serve.log.2", "serve.log.3"]
    assert {f.name: mode(f) for f in files} == dict.fromkeys([f.name for f in files], 0o600)
    assert "private-119" in log.read_text()

    # A restart over backups an older version left 0644: they are 0600 from the start.
    os.replace(old_backup, log.parent / "serve.log.3")
    child = start_serve(["--user", "carol", "--log-file", str(log)], tmp_path, free_port,
                        {"ALGOFS_SERVE_API_KEY": "sim-carol-secret"})
    try:
        assert mode(log.parent / "serve.log.3") == 0o600
    finally:
        stop(child)
