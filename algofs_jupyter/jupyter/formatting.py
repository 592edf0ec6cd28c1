"""Rich (HTML) and plain-text renderings of status, cache stats, listings and bytes, for magics and widget.

Every display carries ``text/plain`` too, so ``jupyter execute`` output and terminal IPython stay readable.
"""

from __future__ import annotations

import html
import time

from IPython.display import Image, display

from ..sizes import human_bytes as human_bytes  # the widget and magics import it from here


def ratio_text(ratio: float | None) -> str:
    return "n/a" if ratio is None else f"{ratio:.0%}"


def status_lines(status: dict) -> list[str]:
    lines = [f"mode: {status['mode']}" + (f" ({status['reason']})" if status.get("reason") else "")]
    lines.append(f"mountpoint: {status['mountpoint_abs']}" + (" [mounted]" if status.get("mounted") else ""))
    server = status.get("api_address") or "not connected yet"
    if status.get("embedded_server"):
        server += " (embedded demo server)"
    lines.append(f"api: {server}")
    if status.get("username"):
        lines.append(f"user: {status['username']}")
    if status.get("cache"):
        lines.append("cache: " + cache_summary(status["cache"]))
    if status.get("busy_message"):  # an unmount refused, or done, while processes held the mount
        lines.append(status["busy_message"])
    return lines


def status_html(status: dict) -> str:
    colour = {"fuse": "#2e7d32", "fallback": "#ef6c00", "error": "#c62828"}.get(status["mode"], "#555")
    rows = "".join(f"<div>{html.escape(line)}</div>" for line in status_lines(status)[1:])
    head = html.escape(status_lines(status)[0])
    return f'<div class="algofs-status"><b style="color:{colour}">{head}</b>{rows}</div>'


def show_status(status: dict) -> None:
    display({"text/plain": "\n".join(status_lines(status)), "text/html": status_html(status)}, raw=True)


def cache_summary(stats: dict) -> str:
    small = stats.get("small_files") or {}
    memory = (
        f" + {human_bytes(small.get('bytes', 0))} in memory ({small.get('files', 0)} small file(s))"
        if small.get("files") else ""
    )
    server = stats.get("server_files") or {}  # large files read by descriptor (a server on this machine)
    local = (
        f"; read from the server's own files: {human_bytes(server.get('bytes', 0))}, nothing cached"
        if server.get("reads") else ""
    )
    return (
        f"{human_bytes(stats['size_bytes'])} of {human_bytes(stats.get('limit_bytes'))} on disk{memory}, "
        f"{len(stats['entries'])} file(s), hits {stats['hits']} / misses {stats['misses']} "
        f"(hit ratio {ratio_text(stats.get('hit_ratio'))}), fetched {human_bytes(stats['bytes_fetched'])}"
        f"{local}"
    )


def cache_text(stats: dict) -> str:
    lines = [cache_summary(stats)]
    for entry in stats["entries"]:
        lines.append(
            f"  {entry['path']}  {human_bytes(entry['cached_bytes'])} / {human_bytes(entry.get('size'))}"
        )
    return "\n".join(lines)


def cache_html(stats: dict) -> str:
    rows = (
        "".join(
            f"<tr><td>{html.escape(entry['path'])}</td><td>{human_bytes(entry['cached_bytes'])}</td>"
            f"<td>{human_bytes(entry.get('size'))}</td></tr>"
            for entry in stats["entries"]
        )
        or '<tr><td colspan="3"><i>cache is empty</i></td></tr>'
    )
    return (
        f"<div>{html.escape(cache_summary(stats))}</div>"
        '<table class="algofs-cache"><thead><tr><th>path</th><th>cached</th><th>size</th></tr></thead>'
        f"<tbody>{rows}</tbody></table>"
    )


def show_cache(stats: dict) -> None:
    display({"text/plain": cache_text(stats), "text/html": cache_html(stats)}, raw=True)


def show_listing(path: str, entries, via: str) -> None:
    plain = [
        f"{entry.name}/" if entry.is_dir else f"{entry.name}  {human_bytes(entry.size)}" for entry in entries
    ]
    rows = "".join(
        f"<tr><td>{html.escape(entry.name)}{'/' if entry.is_dir else ''}</td>"
        f"<td>{'' if entry.is_dir else human_bytes(entry.size)}</td></tr>"
        for entry in entries
    )
    caption = f"{path or '/'}: {len(entries)} entries (via {via})"
    display(
        {
            "text/plain": "\n".join([caption, *plain]),
            "text/html": f"<table><caption>{html.escape(caption)}</caption><tbody>{rows}</tbody></table>",
        },
        raw=True,
    )


def image_format(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    return None


def hexdump(data: bytes, limit: int = 256) -> str:
    lines = [f"{len(data)} bytes (binary)"]
    for offset in range(0, min(len(data), limit), 16):
        chunk = data[offset : offset + 16]
        lines.append(f"{offset:08x}  {chunk.hex(' ')}")
    if len(data) > limit:
        lines.append("…")
    return "\n".join(lines)


def show_bytes(data: bytes, name: str = "") -> None:
    kind = image_format(data)
    if kind:
        display(Image(data=data, format=kind))
        return
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        display({"text/plain": hexdump(data)}, raw=True)
        return
    print(text, end="" if text.endswith("\n") else "\n")


class ProgressDisplay:
    """A progress bar as an updatable display (works in JupyterLab, ``jupyter execute`` and terminals)."""

    min_interval = 0.2

    def __init__(self, label: str, total: int):
        self.label = label
        self.total = max(1, total)
        self._last = 0.0
        self.handle = display(self._bundle(0), raw=True, display_id=True)

    def _bundle(self, done: int, note: str | None = None) -> dict:
        percent = min(100, int(done * 100 / self.total))
        text = note or f"{self.label}: {percent}% ({human_bytes(done)} of {human_bytes(self.total)})"
        return {
            "text/plain": text,
            "text/html": f'<div>{html.escape(text)}</div><progress value="{percent}" max="100" '
            'style="width:30em"></progress>',
        }

    def update(self, done: int) -> None:
        now = time.monotonic()
        if now - self._last >= self.min_interval and self.handle is not None:
            self._last = now
            self.handle.update(self._bundle(done), raw=True)

    def finish(self, note: str) -> None:
        if self.handle is not None:
            self.handle.update(self._bundle(self.total, note), raw=True)
        else:
            print(note)
