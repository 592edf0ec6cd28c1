"""What a user sees of an executed notebook cell, as text: the one reading of nbformat outputs in tests."""

from __future__ import annotations

from typing import Any


def cell_output_text(cell: Any) -> str:
    """Streams, the ``text/plain`` of results and displays, and errors (``ename: evalue`` and the
    traceback, so a test can check that no frame of this package leaks into it)."""
    parts = []
    for output in cell.get("outputs", []):
        if output["output_type"] == "stream":
            parts.append(output["text"])
        elif output["output_type"] == "error":
            parts.append(f"{output['ename']}: {output['evalue']}")
            parts.append("\n".join(output.get("traceback", [])))
        else:
            parts.append(output.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)
