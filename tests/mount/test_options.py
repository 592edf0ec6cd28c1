"""``MountOptions`` is the one source of the mount's defaults: flags, child argv, Jupyter."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import pytest

from algofs_jupyter.mount import commands
from algofs_jupyter.mount.mount_process import MountProcess
from algofs_jupyter.mount.options import JUPYTER_DEFAULTS, MountOptions, add_arguments, default_cache_dir


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    commands.add_commands(parser.add_subparsers())
    return parser.parse_args(["mount", "/tmp/mnt", *argv])


def test_the_flags_default_to_the_dataclass() -> None:
    assert MountOptions.from_arguments(parse()) == MountOptions()


def test_a_child_daemon_gets_back_the_options_it_was_given() -> None:
    options = MountOptions(cache_dir=Path("/tmp/c"), cache_size=1 << 30, metadata_ttl=2.5,
                           connectors=("s3+x", "gs"), allow_other=True)
    process = MountProcess("/tmp/mnt", "http://127.0.0.1:1", None, options=options)
    argv = process.command()
    assert argv[argv.index("--cache-dir") + 1] == "/tmp/c"
    assert MountOptions.from_arguments(parse(*argv[argv.index("--api-address") + 2:])) == options


def test_keywords_override_and_none_keeps_the_default() -> None:
    process = MountProcess("/tmp/mnt", "http://127.0.0.1:1", None, cache_dir="/tmp/c", timeout=None,
                           readahead_blocks=2)
    assert process.cache_dir == Path("/tmp/c")
    assert process.options.timeout == MountOptions().timeout and process.options.readahead_blocks == 2
    with pytest.raises(TypeError, match="unknown mount options"):
        MountProcess("/tmp/mnt", "http://127.0.0.1:1", None, cache_sise=1)


def test_the_cache_dir_honours_xdg_cache_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "algofs"
    assert MountOptions().cache_dir == tmp_path / "algofs"
    assert parse().cache_dir == tmp_path / "algofs"


def test_jupyter_differs_only_in_the_cache_cap() -> None:
    assert JUPYTER_DEFAULTS.cache_size == 2 << 30 < MountOptions().cache_size
    assert JUPYTER_DEFAULTS.with_overrides(cache_size=MountOptions().cache_size) == MountOptions()


@pytest.mark.parametrize("doc", ["docs/architecture.md", "docs/filesystem.md"])
def test_every_mount_flag_is_documented(doc: str) -> None:
    """A new MountOptions field is one flag; the docs that list the flags must name it too."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    flags = {flag for action in parser._actions for flag in action.option_strings if flag.startswith("--")}
    text = (Path(__file__).resolve().parents[2] / doc).read_text()
    assert {"--cache-size", "--write-back"} <= flags
    assert sorted(flag for flag in flags - {"--help"} if flag not in text) == []


def test_the_status_reports_every_option_as_json() -> None:
    options = MountOptions(connectors=("dropbox+work",), write_back=2.0)
    status = options.as_status()
    assert set(status) == {spec.name for spec in dataclasses.fields(MountOptions)}
    assert json.loads(json.dumps(status)) == status
    assert status["connectors"] == ["dropbox+work"] and status["write_back"] == 2.0
