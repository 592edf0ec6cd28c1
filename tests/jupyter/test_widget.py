"""Headless ``AlgofsWidget`` tests: no kernel (ipywidgets falls back to a dummy comm), real backend."""

from __future__ import annotations

import base64
import errno
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from algofs_jupyter.jupyter.loader_mount import loader_mount
from algofs_jupyter.jupyter.widget import AlgofsWidget
from algofs_jupyter.mount.mount_table import is_algofs_mount


@pytest.fixture
def panel(local_access):
    widget = AlgofsWidget(access=local_access, poll_interval=None)
    assert widget.wait_idle(60)
    try:
        yield widget
    finally:
        widget.close()


def test_pipe_panel_lists_algorithms_and_shows_a_result(panel):
    assert "demo/echo" in panel.algorithm_picker.options
    assert "anowell/Pinky" in panel.algorithm_picker.options
    panel.algorithm_picker.value = "demo/echo"
    assert "1.0.0" in panel.version_picker.options and panel.version_picker.value == "latest"
    panel.version_picker.value = "1.0.0"
    panel.content_type.value = "json"
    panel.input_area.value = '{"numbers": [1, 2, 3]}'
    panel.run_button.click()
    assert panel.wait_idle(60)
    (output,) = panel.output.outputs
    assert output["data"]["application/json"] == {"numbers": [1, 2, 3]}
    assert "json result" in panel.pipe_status.value
    assert not panel.run_button.disabled


def test_pipe_panel_shows_images_and_errors(panel, api_server):
    png = Path(api_server.root, "data", "demo", "images", "gradient.png").read_bytes()
    panel.algorithm_picker.value = "demo/echo"
    panel.content_type.value = "binary"
    upload = {"name": "gradient.png", "type": "image/png", "size": len(png), "content": memoryview(png)}
    panel.upload.value = ({**upload, "last_modified": datetime.now(timezone.utc)},)
    panel.run_button.click()
    assert panel.wait_idle(60)
    assert base64.b64decode(panel.output.outputs[0]["data"]["image/png"]) == png

    panel.algorithm_picker.value = "demo/fail"
    panel.content_type.value = "text"
    panel.input_area.value = "boom"
    panel.run_button.click()
    assert panel.wait_idle(60)
    (output,) = panel.output.outputs
    assert output["output_type"] == "stream" and "always fails" in output["text"]
    assert "failed" in panel.pipe_status.value


def test_cache_tab_without_mount(panel):
    assert "cache is empty" in panel.cache_html.value
    panel.clear_button.click()
    assert panel.wait_idle(30)
    assert "cache is empty" in panel.cache_html.value


@pytest.mark.fuse
def test_mount_unmount_buttons_and_cache_table(panel, local_access, requires_fuse, no_stale_mounts):
    panel.path_text.value = "mnt"
    panel.mount_button.click()
    assert panel.wait_idle(60)
    assert "mode: fuse" in panel.status_html.value, panel.status_html.value
    assert panel.mount_button.disabled and not panel.unmount_button.disabled
    mountpoint = no_stale_mounts / "mnt"

    assert "cities.csv" not in panel.cache_html.value
    (mountpoint / "data" / "demo" / "datasets" / "cities.csv").read_bytes()
    panel.refresh_button.click()
    assert panel.wait_idle(30)
    assert "cities.csv" in panel.cache_html.value

    panel.prefetch_text.value = "data/demo/public"
    panel.prefetch_button.click()
    assert panel.wait_idle(60)
    assert panel.progress.value == panel.progress.max
    assert "hello.txt" in panel.cache_html.value

    panel.clear_button.click()
    assert panel.wait_idle(30)
    assert "cities.csv" not in panel.cache_html.value

    panel.unmount_button.click()
    assert panel.wait_idle(60)
    assert "mode: unmounted" in panel.status_html.value
    assert not panel.mount_button.disabled and panel.unmount_button.disabled
    assert not local_access.status()["mounted"]


def test_background_poll_updates_status(local_access):
    widget = AlgofsWidget(access=local_access, poll_interval=0.2)
    try:
        assert widget.wait_idle(60)
        widget.status_html.value = "stale"
        deadline = time.monotonic() + 10
        while widget.status_html.value == "stale" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "mode:" in widget.status_html.value
    finally:
        widget.close()


class _SlowListing:
    """Just enough of a KernelAccess for the Pipe tab: a listing that waits until released."""

    def __init__(self, answers: list[list[dict]]):
        self.answers = answers
        self.release = threading.Event()
        self.calls = 0

    def status(self) -> dict:
        return {"mode": "unmounted", "mounted": False, "reason": None, "mountpoint": "algofs",
                "mountpoint_abs": "/tmp/algofs"}

    def cache_stats(self) -> dict:
        return {}

    def list_algorithms(self) -> list[dict]:
        self.calls += 1
        assert self.release.wait(30)
        return self.answers.pop(0)


def test_pipe_tab_says_what_is_loading_and_lists_again_when_opened():
    """Issue 25, item 9: the Pipe tab showed an empty list and "algorithms done in 0.0s"."""
    echo = {"user": "demo", "name": "echo", "versions": ["1.0.0", "latest"]}
    access = _SlowListing([[], [echo]])
    widget = AlgofsWidget(access=access, poll_interval=None)
    try:
        assert "loading" in widget.pipe_status.value and widget.algorithm_picker.disabled
        access.release.set()
        assert widget.wait_idle(30)
        assert "no algorithms found" in widget.pipe_status.value
        assert "done in" not in widget.activity.value and "no algorithms found" in widget.activity.value
        widget.tabs.selected_index = 2  # opening the Pipe tab lists them again
        assert widget.wait_idle(30)
        assert access.calls == 2
        assert list(widget.algorithm_picker.options) == ["demo/echo"] and not widget.algorithm_picker.disabled
        assert "1 algorithm(s) of demo" in widget.pipe_status.value
        widget.tabs.selected_index = 0
        widget.tabs.selected_index = 2  # a list is there: no reload on every visit
        assert widget.wait_idle(30) and access.calls == 2
    finally:
        widget.close()


@pytest.mark.fuse
def test_loader_mount_button_mounts_a_read_only_view_for_this_kernel(panel, local_access, api_server,
                                                                     requires_fuse, no_stale_mounts):
    """The Mount tab's "Loader mount" is ``%algofs loader`` (jupyter/loader_mount.py) without a magic."""
    full = no_stale_mounts / "full"
    (full / "kept.txt").parent.mkdir()
    (full / "kept.txt").write_text("mine")
    try:
        panel.loader_text.value = str(full)
        panel.loader_button.click()
        assert panel.wait_idle(60)
        assert "is not empty" in panel.activity.value and not loader_mount().status()["mounted"]
        assert not panel.loader_button.disabled and panel.loader_button.description == "Loader mount"

        target = no_stale_mounts / "train"
        panel.loader_text.value = str(target)
        panel.loader_button.click()
        assert panel.wait_idle(60)
        assert loader_mount().status()["mounted"], panel.activity.value
        assert str(target) in panel.loader_html.value and panel.loader_button.description == "Unmount loader"
        cities = Path("data", "demo", "datasets", "cities.csv")
        assert (target / cities).read_bytes() == Path(api_server.root, cities).read_bytes()
        with pytest.raises(OSError) as refused:
            open(target / "data" / "demo" / "new.txt", "wb")
        assert refused.value.errno == errno.EROFS
        assert not local_access.status()["mounted"]  # the notebook's main mount is another matter

        panel.loader_button.click()
        assert panel.wait_idle(60)
        assert not loader_mount().status()["mounted"] and not is_algofs_mount(target)
        assert panel.loader_button.description == "Loader mount" and panel.loader_html.value == ""
    finally:
        loader_mount().unmount()
