"""What a user sees of an executed notebook cell, as text: the one reading of nbformat outputs in tests."""

from __future__ import annotations

from typing import Any


def cell_output_text(cell: Any) -> str:
    """Streams, the ``text/plain`` of results and displays, and errors (``ename: evalue`` and the
    traceback, so a test can check that no frame of this package leaks into it)."""
    parts = []
    previous = None
    for output in cell.get("outputs", []):
        if output["output_type"] == "stream":
            # one print may arrive as several stream messages ("True", " 1.1.0\n"): Jupyter shows them as
            # one text, so they are joined as written, not with a newline between
            same_stream = previous is not None and previous["output_type"] == "stream" \
                and previous["name"] == output["name"]
            if same_stream:
                parts[-1] += output["text"]
            else:
                parts.append(output["text"])
        elif output["output_type"] == "error":
            parts.append(f"{output['ename']}: {output['evalue']}")
            parts.append("\n".join(output.get("traceback", [])))
        else:
            parts.append(output.get("data", {}).get("text/plain", ""))
        previous = output
    return "\n".join(parts)
