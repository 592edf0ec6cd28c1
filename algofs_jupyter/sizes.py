"""Byte sizes as people write and read them: ``parse_size("10G")``, ``human_bytes(1536)`` -> ``1.5 KiB``.

At the top level because every layer uses them: the mount's options, ``algofs serve``'s quotas, the
Jupyter displays.
"""

from __future__ import annotations

import argparse

SIZE_SUFFIXES = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """``1073741824``, ``512M``, ``10G`` (binary units; a trailing ``B``/``iB`` is accepted)."""
    value = text.strip().upper().removesuffix("IB").removesuffix("B")
    suffix = value[-1] if value and value[-1] in SIZE_SUFFIXES else ""
    number = value[: len(value) - len(suffix)]
    try:
        return int(float(number) * SIZE_SUFFIXES[suffix])
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a size: {text!r}") from exc


def human_bytes(count: int | float | None) -> str:
    if count is None:
        return "?"
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
