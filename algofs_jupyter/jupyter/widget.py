"""``AlgofsWidget``: mount controls with live status, a cache inspector and a pipe panel, as one ipywidget.

Slow work (mount, prefetch, pipe, listing algorithms) runs in worker threads. Those threads only set traits
and replace ``Output.outputs`` — never ``with output:``, whose capture belongs to whichever cell the kernel is
executing at that moment (ipywidgets#2358), so results always land in this widget.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable

import ipywidgets as widgets

from . import algorithm_calls, formatting
from .algorithm_calls import AlgorithmFailed, UsageProblem
from .files import Reader, normalise
from .kernel_access import KernelAccess, get_access
from .loader_mount import DEFAULT_PATH as LOADER_DEFAULT_PATH
from .loader_mount import loader_mount

PIPE_TAB = 2  # index of the Pipe tab in ``AlgofsWidget.tabs``


class AlgofsWidget(widgets.VBox):
    def __init__(self, access: KernelAccess | None = None, poll_interval: float | None = 2.0, **kwargs):
        self.access = access or get_access()
        self._workers: list[threading.Thread] = []
        self._workers_lock = threading.Lock()
        self._closed = threading.Event()
        self._algorithms: dict[str, dict] = {}

        self.status_html = widgets.HTML("<i>checking…</i>")
        self.path_text = widgets.Text(placeholder="mount point (default: algofs)", layout={"width": "18em"})
        self.mount_button = widgets.Button(description="Mount", icon="plug", button_style="success")
        self.unmount_button = widgets.Button(description="Unmount", icon="eject")
        self.activity = widgets.HTML("")
        self.mount_button.on_click(lambda _button: self.mount())
        self.unmount_button.on_click(lambda _button: self.unmount())
        self.loader_text = widgets.Text(placeholder=f"loader mount point (default: {LOADER_DEFAULT_PATH})",
                                        layout={"width": "18em"})
        self.loader_button = widgets.Button(
            description="Loader mount", icon="bolt",
            tooltip="a read-only mount owned by this kernel, for data loaders: warm epochs come from the "
                    "page cache without asking the daemon (%algofs loader)")
        self.loader_html = widgets.HTML("")
        self.loader_button.on_click(lambda _button: self.toggle_loader())
        mount_tab = widgets.VBox(
            [widgets.HBox([self.path_text, self.mount_button, self.unmount_button]), self.status_html,
             widgets.HBox([self.loader_text, self.loader_button]), self.loader_html]
        )

        self.cache_html = widgets.HTML("")
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh")
        self.clear_button = widgets.Button(description="Clear cache", icon="trash", button_style="warning")
        self.prefetch_text = widgets.Text(placeholder="data/demo/datasets", layout={"width": "18em"})
        self.prefetch_button = widgets.Button(description="Prefetch", icon="download")
        self.progress = widgets.IntProgress(value=0, min=0, max=100, description="", layout={"width": "20em"})
        self.progress_label = widgets.Label("")
        self.refresh_button.on_click(lambda _button: self.refresh())
        self.clear_button.on_click(lambda _button: self.clear_cache())
        self.prefetch_button.on_click(lambda _button: self.prefetch(self.prefetch_text.value))
        cache_tab = widgets.VBox(
            [
                widgets.HBox([self.refresh_button, self.clear_button]),
                widgets.HBox([self.prefetch_text, self.prefetch_button, self.progress, self.progress_label]),
                self.cache_html,
            ]
        )

        self.algorithm_picker = widgets.Dropdown(
            description="Algorithm", options=[], disabled=True, layout={"width": "22em"}
        )
        self.version_picker = widgets.Dropdown(
            description="Version", options=["latest"], layout={"width": "14em"}
        )
        self.content_type = widgets.ToggleButtons(options=list(algorithm_calls.CONTENT_TYPES), value="text")
        self.input_area = widgets.Textarea(placeholder="input", layout={"width": "40em", "height": "6em"})
        self.upload = widgets.FileUpload(description="binary file", accept="", multiple=False)
        self.timeout_input = widgets.BoundedFloatText(value=300, min=1, max=3000, description="Timeout (s)")
        self.run_button = widgets.Button(description="Run", icon="play", button_style="primary")
        self.pipe_status = widgets.HTML("")
        self.output = widgets.Output(layout={"border": "1px solid #ddd", "min_height": "2em"})
        self.algorithm_picker.observe(self._on_algorithm, names="value")
        self.run_button.on_click(lambda _button: self.run_pipe())
        pipe_tab = widgets.VBox(
            [
                widgets.HBox([self.algorithm_picker, self.version_picker]),
                widgets.HBox([self.content_type, self.upload]),
                self.input_area,
                widgets.HBox([self.timeout_input, self.run_button, self.pipe_status]),
                self.output,
            ]
        )

        self.tabs = widgets.Tab(children=[mount_tab, cache_tab, pipe_tab], titles=("Mount", "Cache", "Pipe"))
        self.tabs.observe(self._on_tab, names="selected_index")
        self._algorithms_loading = threading.Lock()
        header = widgets.HTML("<b>AlgoFS</b>")
        super().__init__([header, self.tabs, self.activity], **kwargs)

        self._background("status", self._refresh_now)
        self.load_algorithms()
        self._poller: threading.Thread | None = None
        if poll_interval:
            self._poller = threading.Thread(
                target=self._poll, args=(poll_interval,), name="algofs-widget-poll", daemon=True
            )
            self._poller.start()

    # ----- background plumbing -----------------------------------------------------------------------
    def _background(self, label: str, work: Callable[[], str | None]) -> threading.Thread:
        def run():
            started = time.monotonic()
            try:
                summary = work()
            except Exception as exc:  # shown in the widget, never lost in a thread
                self.activity.value = f'<span style="color:#c62828">{label} failed: {_escape(exc)}</span>'
            else:
                if label != "status":  # work may say what it did, better than "done"
                    said = _escape(summary) if isinstance(summary, str) else f"{label} done"
                    self.activity.value = f"{said} in {time.monotonic() - started:.1f}s"

        thread = threading.Thread(target=run, name=f"algofs-widget-{label}", daemon=True)
        with self._workers_lock:
            self._workers = [worker for worker in self._workers if worker.is_alive()]
            self._workers.append(thread)
        thread.start()
        return thread

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Wait until no operation started from the widget is running (tests, scripts). True if idle."""
        deadline = time.monotonic() + timeout
        while True:
            with self._workers_lock:
                busy = [worker for worker in self._workers if worker.is_alive()]
            if not busy:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            busy[0].join(remaining)

    def _poll(self, interval: float) -> None:
        while not self._closed.wait(interval):
            try:
                self._refresh_now()
            except Exception:  # keep polling; the next round may work
                pass

    def close(self) -> None:
        self._closed.set()
        super().close()

    # ----- mount -------------------------------------------------------------------------------------
    def _show_status(self, status: dict) -> None:
        self.status_html.value = formatting.status_html(status)
        self.mount_button.disabled = bool(status.get("mounted"))
        self.unmount_button.disabled = not status.get("mounted")
        # refused because processes hold the mount (named in the status): the next click insists
        self._force_next = bool(status.get("busy")) and bool(status.get("mounted"))
        self.unmount_button.description = "Unmount anyway" if self._force_next else "Unmount"
        stats = status.get("cache") or None
        if stats is not None:
            self._show_cache(stats)

    def _show_cache(self, stats: dict) -> None:
        self.cache_html.value = formatting.cache_html(stats)

    def _refresh_now(self) -> None:
        status = self.access.status()
        self._show_status(status)
        self._show_loader(loader_mount().status())
        if not status.get("mounted"):
            self._show_cache(self.access.cache_stats())

    def refresh(self) -> threading.Thread:
        return self._background("refresh", self._refresh_now)

    def mount(self) -> threading.Thread:
        path = self.path_text.value.strip() or None
        self.mount_button.disabled = True
        self.activity.value = "mounting…"
        return self._background("mount", lambda: self._show_status(self.access.mount(path)))

    def unmount(self) -> threading.Thread:
        self.unmount_button.disabled = True
        self.activity.value = "unmounting…"
        force = getattr(self, "_force_next", False)
        return self._background("unmount", lambda: self._show_status(self.access.unmount(force=force)))

    # ----- the kernel's loader mount (jupyter/loader_mount.py) -----------------------------------------
    def _show_loader(self, status: dict) -> None:
        mounted = bool(status.get("mounted"))
        self.loader_button.description = "Unmount loader" if mounted else "Loader mount"
        self.loader_button.icon = "eject" if mounted else "bolt"
        self.loader_text.disabled = mounted
        self.loader_html.value = (f"read-only loader mount: <code>{_escape(status['mountpoint'])}</code>"
                                  if mounted else "")

    def toggle_loader(self) -> threading.Thread:
        """Mount this kernel's read-only loader mount at the path given (or the default), or unmount it."""
        self.loader_button.disabled = True
        path = self.loader_text.value.strip() or None

        def work() -> str:
            loader = loader_mount()
            try:
                if loader.status()["mounted"]:
                    loader.unmount()
                    said = "loader mount unmounted"
                else:
                    mounted = loader.mount(self.access.endpoint(), path)
                    said = f"read-only loader mount at {mounted['mountpoint']}"
            finally:
                self._show_loader(loader.status())
                self.loader_button.disabled = False
            return said

        return self._background("loader mount", work)

    # ----- cache -------------------------------------------------------------------------------------
    def clear_cache(self) -> threading.Thread:
        return self._background("clear cache", lambda: self._show_cache(self.access.clear_cache()))

    def prefetch(self, path: str) -> threading.Thread:
        def work():
            reader = Reader(self.access.mounted_path(), self.access.filesystem)
            target = normalise(path, reader.mountpoint)
            files = reader.files_under(target)
            total = sum(size for _name, size in files) or 1
            self.progress.max, self.progress.value = total, 0
            done = 0
            for name, _size in files:
                for count in reader.stream(name):
                    done += count
                    self.progress.value = min(done, total)
                    self.progress_label.value = (
                        f"{formatting.human_bytes(done)} of {formatting.human_bytes(total)}"
                    )
            self.progress.value = total
            self.progress_label.value = f"prefetched {len(files)} file(s), {formatting.human_bytes(done)}"
            self._show_cache(self.access.cache_stats())

        return self._background("prefetch", work)

    # ----- pipe --------------------------------------------------------------------------------------
    def load_algorithms(self) -> threading.Thread | None:
        """(Re)load the algorithm list, saying so in the Pipe tab; None if a load is already running."""
        if not self._algorithms_loading.acquire(blocking=False):
            return None
        self.algorithm_picker.disabled = True
        self.pipe_status.value = "<i>loading the algorithm list…</i>"
        self.activity.value = "loading the algorithm list…"

        def work() -> str:
            try:
                return self._load_algorithms()
            except Exception as exc:
                self.pipe_status.value = (
                    f'<span style="color:#c62828">could not list algorithms: {_escape(exc)}</span>'
                )
                raise
            finally:
                self.algorithm_picker.disabled = False
                self._algorithms_loading.release()

        return self._background("algorithms", work)

    def _load_algorithms(self) -> str:
        found = self.access.list_algorithms()
        chosen = self.algorithm_picker.value
        self._algorithms = {f"{algo['user']}/{algo['name']}": algo for algo in found}
        self.algorithm_picker.options = list(self._algorithms)
        if chosen in self._algorithms:
            self.algorithm_picker.value = chosen
        if not found:
            summary = "no algorithms found (the Pipe tab lists them again when opened)"
        else:
            owners = sorted({algo["user"] for algo in found})
            summary = f"{len(found)} algorithm(s) of {', '.join(owners)} listed"
        self.pipe_status.value = _escape(summary)
        return summary

    def _on_tab(self, change) -> None:
        if change["new"] == PIPE_TAB and not self._algorithms:
            self.load_algorithms()  # the first load found none or failed: try again when the tab opens

    def _on_algorithm(self, change) -> None:
        algo = self._algorithms.get(change["new"])
        versions = algo["versions"] if algo else ["latest"]
        self.version_picker.options = versions
        self.version_picker.value = "latest" if "latest" in versions else versions[-1]

    def selected_algorithm(self) -> str | None:
        name = self.algorithm_picker.value
        if not name:
            return None
        version = self.version_picker.value
        return name if version in (None, "latest") else f"{name}/{version}"

    def _pipe_input(self):
        content_type = self.content_type.value
        if content_type == "binary" and self.upload.value:
            return bytes(self.upload.value[0]["content"])
        return algorithm_calls.decode_input(self.input_area.value, content_type)

    def run_pipe(self) -> threading.Thread | None:
        ref = self.selected_algorithm()
        if ref is None:
            self.pipe_status.value = '<span style="color:#c62828">pick an algorithm first</span>'
            return None
        self.run_button.disabled = True
        self.pipe_status.value = f"running {_escape(ref)}…"
        self.output.outputs = ()

        def work():
            try:
                result = self.access.pipe(ref, self._pipe_input(), self.timeout_input.value)
            except (AlgorithmFailed, UsageProblem) as exc:
                self._emit_stream("stderr", f"{ref}: {getattr(exc, 'message', exc)}\n")
                self.pipe_status.value = '<span style="color:#c62828">failed</span>'
            else:
                self._emit(_result_bundle(result))
                self.pipe_status.value = f"{result.content_type} result in {result.duration:.2f}s"
            finally:
                self.run_button.disabled = False

        return self._background("pipe", work)

    def _emit(self, bundle: dict) -> None:
        self.output.outputs = (
            *self.output.outputs,
            {"output_type": "display_data", "data": bundle, "metadata": {}},
        )

    def _emit_stream(self, name: str, text: str) -> None:
        self.output.outputs = (*self.output.outputs, {"output_type": "stream", "name": name, "text": text})


def _result_bundle(result: algorithm_calls.PipeResult) -> dict:
    value = result.result
    if result.content_type == "json":
        return {"application/json": value, "text/plain": json.dumps(value, indent=2, ensure_ascii=False)}
    if isinstance(value, (bytes, bytearray)):
        kind = formatting.image_format(bytes(value))
        if kind:
            return {f"image/{kind}": base64.b64encode(bytes(value)).decode(), "text/plain": f"<{kind} image>"}
        return {"text/plain": formatting.hexdump(bytes(value))}
    return {"text/plain": "(no output)" if value is None else str(value)}


def _escape(value) -> str:
    import html

    return html.escape(str(value))
