"""Runs one algorithm call in its own process: ``python -m algofs_jupyter.server.algorithm_runner``.

Protocol: the request arrives on stdin as JSON ``{"entry_point", "content_type", "data",
"result_file"}`` (binary data base64-encoded). The outcome is written as JSON to ``result_file``,
not stdout, so whatever the algorithm prints stays separate and can be returned as ``stdout``:
``{"result", "content_type"}`` or ``{"error": {"message", "stacktrace", "error_type"}}``.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import sys
import traceback
from pathlib import Path


def decode_input(content_type: str, data: object) -> object:
    if content_type == "binary":
        return base64.b64decode(data)  # type: ignore[arg-type]
    return data


def encode_result(result: object) -> dict:
    if isinstance(result, (bytes, bytearray)):
        return {"result": base64.b64encode(bytes(result)).decode("ascii"), "content_type": "binary"}
    if isinstance(result, str):
        return {"result": result, "content_type": "text"}
    json.dumps(result)  # TypeError for values JSON can't carry
    return {"result": result, "content_type": "json"}


def error(exc: BaseException, error_type: str) -> dict:
    return {"error": {"message": str(exc) or type(exc).__name__,
                      "stacktrace": traceback.format_exc(),
                      "error_type": error_type}}


def load_apply(entry_point: Path):
    sys.path.insert(0, str(entry_point.parent))
    spec = importlib.util.spec_from_file_location("algorithm", entry_point)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.apply


def run(request: dict) -> dict:
    try:
        apply = load_apply(Path(request["entry_point"]))
    except BaseException as exc:  # noqa: BLE001 - any failure to load is the algorithm's fault
        return error(exc, "LoadingError")
    try:
        return encode_result(apply(decode_input(request["content_type"], request["data"])))
    except BaseException as exc:  # noqa: BLE001 - report every failure, including SystemExit
        return error(exc, "AlgorithmError")


def main() -> int:
    request = json.loads(sys.stdin.read())
    outcome = run(request)
    sys.stdout.flush()
    Path(request["result_file"]).write_text(json.dumps(outcome), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
