"""``%algofs`` / ``%%algofs pipe`` in a real IPython shell against the demo API server."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest
from IPython.core.error import UsageError
from IPython.testing.globalipapp import get_ipython
from IPython.utils.capture import capture_output

from algofs_jupyter.jupyter.loader_mount import loader_mount
from algofs_jupyter.jupyter.magics import AlgofsError, AlgorithmError


@pytest.fixture(scope="module")
def ip():
    shell = get_ipython()
    shell.extension_manager.load_extension("algofs_jupyter")
    return shell


def run(ip, line: str, cell: str | None = None):
    """Run a magic; return (captured output, value, exception raised inside the cell or None)."""
    source = f"%{line}" if cell is None else f"%%{line}\n{cell}"
    with capture_output() as captured:
        result = ip.run_cell(source)
    return captured, result.result, result.error_in_exec


def text_of(captured) -> str:
    parts = [captured.stdout, captured.stderr]
    parts += [output.data.get("text/plain", "") for output in captured.outputs]
    return "\n".join(parts)


@pytest.mark.parametrize(
    ("line", "cell"),
    [
        ("algofs bogus", None),
        ("algofs pipe demo/echo", None),  # pipe is a cell magic
        ("algofs status", "body"),  # status is a line magic
        ("algofs pipe", "x"),
        ("algofs pipe demo/echo --timeout soon", "x"),
        ("algofs pipe demo/echo --json --text", "x"),
        ("algofs pipe demo/echo --out 1abc", "x"),
        ("algofs pipe 'not an algo'", "x"),
        ("algofs pipe demo/echo --json", "{not json"),
        ("algofs cache empty", None),
    ],
)
def test_bad_arguments_give_one_line_usage_error(ip, local_access, line, cell):
    _captured, _value, error = run(ip, line, cell)
    assert isinstance(error, UsageError), error
    assert "\n" not in str(error)


def test_pipe_text_and_out_variable(ip, local_access):
    captured, _value, error = run(ip, "algofs pipe demo/echo --out echoed", "hello algofs")
    assert error is None
    assert ip.user_ns["echoed"] == "hello algofs"
    assert "hello algofs" in captured.stdout


def test_pipe_json_is_pretty(ip, local_access):
    body = json.dumps({"b": [1, 2], "a": "x"})
    captured, _value, error = run(ip, "algofs pipe demo/echo/1.0.0 --json --out answer", body)
    assert error is None
    assert ip.user_ns["answer"] == {"b": [1, 2], "a": "x"}
    bundle = captured.outputs[0].data
    assert bundle["application/json"] == {"b": [1, 2], "a": "x"}
    assert bundle["text/plain"] == json.dumps({"b": [1, 2], "a": "x"}, indent=2)


def test_pipe_binary_image_is_shown_as_image(ip, local_access, api_server):
    png = Path(api_server.root, "data", "demo", "images", "gradient.png")
    captured, _value, error = run(ip, "algofs pipe demo/echo --binary --out picture", str(png))
    assert error is None
    assert ip.user_ns["picture"] == png.read_bytes()
    assert "image/png" in captured.outputs[0].data


def test_algorithm_error_is_short(ip, local_access):
    captured, _value, error = run(ip, "algofs pipe demo/fail", "boom")
    assert isinstance(error, AlgorithmError)
    assert "always fails" in str(error)
    assert error._render_traceback_() == [f"AlgorithmError: {error}"]


def test_status_hides_the_key(ip, local_access, api_server):
    captured, _value, error = run(ip, "algofs status")
    assert error is None
    text = text_of(captured)
    assert "mode:" in text and api_server.url.rstrip("/") in text
    assert api_server.api_key not in text


def test_ls_cat_prefetch_without_mount_use_the_api(ip, local_access, api_server, monkeypatch):
    monkeypatch.setenv("ALGOFS_DISABLE_FUSE", "1")
    captured, _value, error = run(ip, "algofs ls data/demo/datasets")
    assert error is None
    listing = text_of(captured)
    assert "cities.csv" in listing and "planets.json" in listing

    captured, _value, error = run(ip, "algofs cat data://demo/datasets/cities.csv")
    assert error is None
    expected = Path(api_server.root, "data", "demo", "datasets", "cities.csv").read_text()
    assert captured.stdout.strip() == expected.strip()

    captured, _value, error = run(ip, "algofs prefetch data/demo/datasets")
    assert error is None
    assert "prefetched" in text_of(captured) and "via api" in text_of(captured)

    captured, _value, error = run(ip, "algofs ls data/demo/no-such-collection")
    assert error is not None and "\n" not in str(error)


@pytest.mark.fuse
def test_mount_ls_cache_unmount(ip, local_access, requires_fuse, no_stale_mounts):
    captured, _value, error = run(ip, "algofs mount mnt")
    assert error is None, error
    status = local_access.status()
    assert status["mounted"] and status["mode"] == "fuse", status
    assert Path(status["mountpoint_abs"]) == no_stale_mounts / "mnt"

    captured, _value, error = run(ip, "algofs ls data/demo/datasets")
    assert "cities.csv" in text_of(captured) and "via mount" in text_of(captured)

    run(ip, "algofs cat data/demo/datasets/cities.csv")
    captured, _value, error = run(ip, "algofs cache")
    assert error is None and "cities.csv" in text_of(captured)

    captured, _value, error = run(ip, "algofs prefetch data/demo/datasets")
    assert error is None and "via mount" in text_of(captured)

    captured, _value, error = run(ip, "algofs cache clear")
    assert error is None and "cities.csv" not in text_of(captured)

    captured, _value, error = run(ip, "algofs unmount")
    assert error is None and "mode: unmounted" in text_of(captured)
    assert not local_access.status()["mounted"]


@pytest.mark.parametrize("line", ["algofs cat data/demo/datasets/what?.txt", "algofs ls data/demo/weird#dir"])
def test_a_name_the_api_cannot_carry_is_explained(ip, local_access, api_server, monkeypatch, line):
    """Issue 25 item 5: the one-line error names the rule, not only "no such file"."""
    monkeypatch.setenv("ALGOFS_DISABLE_FUSE", "1")
    _captured, _value, error = run(ip, line)
    assert error is not None and "\n" not in str(error)
    assert "`?` and `#` can't be in names on this storage" in str(error), str(error)


def test_loader_mounts_a_read_only_view_the_kernel_owns(ip, local_access, requires_fuse, no_stale_mounts,
                                                         monkeypatch, api_server):
    """``%algofs loader``: the same data as the main mount, read-only, files opened without the daemon
    (the read-only mount's own tests count that), unmounted by ``--unmount``; bad requests are one line."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(no_stale_mounts / "xdg-cache"))
    (no_stale_mounts / "full").mkdir()
    (no_stale_mounts / "full" / "mine.txt").write_text("kept")
    _captured, _value, error = run(ip, f"algofs loader {no_stale_mounts / 'full'}")
    assert isinstance(error, AlgofsError) and "not empty" in str(error)
    assert (no_stale_mounts / "full" / "mine.txt").read_text() == "kept"

    target = no_stale_mounts / "train"
    captured, _value, error = run(ip, f"algofs loader {target}")
    assert error is None, error
    assert "read-only loader mount at" in text_of(captured)
    cities = target / "data" / "demo" / "datasets" / "cities.csv"
    assert cities.read_bytes() == Path(api_server.root, "data", "demo", "datasets", "cities.csv").read_bytes()
    with pytest.raises(OSError) as refused:
        (target / "data" / "demo" / "datasets" / "new.txt").write_text("x")
    assert refused.value.errno == errno.EROFS
    status = loader_mount().status()
    assert status["mounted"] and status["read_only"] and Path(status["mountpoint"]) == target
    assert str(no_stale_mounts / "xdg-cache") in status["cache_dir"]
    assert api_server.api_key not in json.dumps(status)
    assert not local_access.status()["mounted"]  # the main mount is another matter
    captured, _value, error = run(ip, "algofs status")
    assert error is None and f"loader mount (read-only, this kernel's): {target}" in text_of(captured)
    assert api_server.api_key not in text_of(captured)

    _captured, _value, error = run(ip, f"algofs loader {no_stale_mounts / 'elsewhere'}")
    assert isinstance(error, AlgofsError) and "--unmount first" in str(error)
    _captured, _value, error = run(ip, f"algofs loader {target}")  # again at the same path: fine
    assert error is None

    captured, _value, error = run(ip, "algofs loader --unmount")
    assert error is None and f"unmounted {target}" in text_of(captured)
    assert not loader_mount().status()["mounted"]
    assert not os.path.ismount(target)
    captured, _value, error = run(ip, "algofs loader --unmount")
    assert error is None and "no loader mount" in text_of(captured)
    captured, _value, error = run(ip, "algofs status")
    assert error is None and "loader mount" not in text_of(captured)


def test_loader_without_fuse_says_how_to_read_instead(ip, local_access, monkeypatch, no_stale_mounts):
    monkeypatch.setenv("ALGOFS_DISABLE_FUSE", "1")
    _captured, _value, error = run(ip, f"algofs loader {no_stale_mounts / 'train'}")
    assert isinstance(error, AlgofsError)
    assert "FUSE disabled" in str(error) and "AlgoFileSystem().cat" in str(error)
    assert not (no_stale_mounts / "train").exists()
