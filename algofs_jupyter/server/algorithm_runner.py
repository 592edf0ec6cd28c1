"""The long-lived worker that runs one algorithm version (the hosted runner protocol, contract §5.3).

Run as a script (``python algorithm_runner.py ENTRY_POINT``); it imports nothing from this package, so
it also runs under a sandbox's own Python. It loads the algorithm once, prints ``PIPE_INIT_COMPLETE`` on
the protocol channel, then reads one JSON request per line on stdin::

    {"content_type": "text|json|binary", "data": ..., "api_key": "<per-call token>", "cpu_seconds": 300}

and answers each with one JSON line: ``{"result", "metadata": {"content_type"}, "stdout"}`` or
``{"error": {"message", "stacktrace", "error_type"}, "stdout"}``. Whatever the algorithm prints goes
to fd 1, which is a memfd emptied per call, so stdout is captured per call (also that of child
processes); the protocol uses a private duplicate of the original stdout. A load failure is answered
as a ``LoadingError`` for every request, as the hosted runner did.

``--check`` is the build step: load, confirm a callable ``apply``, print one JSON report and exit.

In the box (``algo_sandbox.py``) the network namespace has only a loopback; with ``ALGOFS_API_SOCKET`` set,
:class:`ApiForwarder` listens on ``127.0.0.1:<port>`` inside it and pipes each connection to the API
server's Unix socket, and ``ALGORITHMIA_API`` names that port: code reaches this API and nothing else.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import resource
import socket
import sys
import threading
import traceback
from pathlib import Path
from typing import Any

READY = "PIPE_INIT_COMPLETE"
MAX_STDOUT = 1 << 20


class ApiForwarder:
    """``127.0.0.1:<port>`` -> the API's Unix socket, two threads per connection (calls back into the API
    are few; a simple pump keeps the runner free of imports)."""

    def __init__(self, unix_path: str):
        self.unix_path = unix_path
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, name="api-forwarder", daemon=True).start()

    def _accept(self) -> None:
        while True:
            client, _ = self.listener.accept()
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                upstream.connect(self.unix_path)
            except OSError:
                client.close()
                upstream.close()
                continue
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock, how in ((sink, socket.SHUT_WR), (source, socket.SHUT_RD)):
                try:
                    sock.shutdown(how)
                except OSError:
                    pass


def start_api_forwarder() -> None:
    path = os.environ.pop("ALGOFS_API_SOCKET", None)
    if path:
        os.environ["ALGORITHMIA_API"] = f"http://127.0.0.1:{ApiForwarder(path).port}"


def decode_input(content_type: str, data: object) -> object:
    if content_type == "binary":
        return base64.b64decode(data)  # type: ignore[arg-type]
    return data


def encode_result(result: object) -> dict:
    if isinstance(result, (bytes, bytearray)):
        return {"result": base64.b64encode(bytes(result)).decode("ascii"),
                "metadata": {"content_type": "binary"}}
    if isinstance(result, str):
        return {"result": result, "metadata": {"content_type": "text"}}
    json.dumps(result)  # TypeError for values JSON cannot carry
    return {"result": result, "metadata": {"content_type": "json"}}


def error(exc: BaseException, error_type: str) -> dict:
    return {"error": {"message": str(exc) or type(exc).__name__,
                      "stacktrace": traceback.format_exc(),
                      "error_type": error_type}}


def load_apply(entry_point: Path) -> Any:
    sys.path.insert(0, str(entry_point.parent))
    spec = importlib.util.spec_from_file_location("algorithm", entry_point)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {entry_point.name}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    apply = getattr(module, "apply", None)
    if not callable(apply):
        raise AttributeError(f"{entry_point.name} defines no function apply(input)")
    return apply


def build_log(exc: BaseException, code_dir: Path) -> str:
    """The failure as the author needs it: frames of their own files only, paths relative to the code."""
    prefix = str(code_dir) + os.sep  # with the separator: /run/algofs/algo is a prefix of the runner's path
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith(prefix)]
    lines = ["Traceback (most recent call last):\n", *traceback.format_list(frames)] if frames else []
    lines += traceback.format_exception_only(type(exc), exc)
    return "".join(lines).replace(prefix, "")


def check(entry_point: Path) -> int:
    """The build step: one JSON line ``{"ok": bool, "log": str}``."""
    try:
        load_apply(entry_point)
    except BaseException as exc:  # every load failure is a build failure
        report = {"ok": False, "log": build_log(exc, entry_point.parent)}
    else:
        report = {"ok": True, "log": f"loaded {entry_point.name}: apply(input) found"}
    sys.stdout.flush()
    os.write(1, (json.dumps(report) + "\n").encode())
    return 0


class CallStdout:
    """fd 1 redirected to a memfd that is read and emptied after every call."""

    def __init__(self) -> None:
        self.protocol = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
        memfd = os.memfd_create("algorithm-stdout")
        os.dup2(memfd, 1)
        os.close(memfd)

    def take(self) -> str:
        sys.stdout.flush()
        size = os.lseek(1, 0, os.SEEK_CUR)
        text = os.pread(1, min(size, MAX_STDOUT), 0).decode("utf-8", "replace")
        os.ftruncate(1, 0)
        os.lseek(1, 0, os.SEEK_SET)
        return text


def limit_cpu_for_next_call(seconds: float) -> None:
    """Soft RLIMIT_CPU = CPU used so far + this call's budget (SIGXCPU ends the worker if exceeded)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = int(usage.ru_utime + usage.ru_stime + seconds) + 1
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def serve(entry_point: Path) -> int:
    out = CallStdout()
    try:
        apply, load_failure = load_apply(entry_point), None
    except BaseException as exc:  # reported to every caller as LoadingError
        apply, load_failure = None, error(exc, "LoadingError")
    out.take()  # output printed while loading belongs to no call
    out.protocol.write(READY + "\n")
    for line in sys.stdin:
        try:
            request = json.loads(line)
        except (ValueError, RecursionError):
            out.protocol.write(json.dumps({"error": {"message": "malformed request", "stacktrace": "",
                                                     "error_type": "AlgorithmError"}}) + "\n")
            continue
        outcome = load_failure or run_one(apply, request)
        outcome["stdout"] = out.take()
        try:
            text = json.dumps(outcome)
        except (TypeError, ValueError, RecursionError) as exc:
            text = json.dumps({"error": {"message": f"result cannot be sent as JSON: {exc}",
                                         "stacktrace": "", "error_type": "AlgorithmError"},
                               "stdout": outcome["stdout"]})
        out.protocol.write(text + "\n")
    return 0


def run_one(apply: Any, request: dict) -> dict:
    if request.get("cpu_seconds"):
        limit_cpu_for_next_call(float(request["cpu_seconds"]))
    key = request.get("api_key")
    if key:
        os.environ["ALGORITHMIA_API_KEY"] = key
    try:
        return encode_result(apply(decode_input(request.get("content_type", "json"), request.get("data"))))
    except BaseException as exc:  # report every failure, including SystemExit
        return error(exc, "AlgorithmError")
    finally:
        os.environ.pop("ALGORITHMIA_API_KEY", None)


def main(argv: list[str]) -> int:
    start_api_forwarder()
    if len(argv) >= 2 and argv[0] == "--check":
        return check(Path(argv[1]))
    if len(argv) != 1:
        sys.stderr.write("usage: algorithm_runner.py [--check] ENTRY_POINT\n")
        return 2
    return serve(Path(argv[0]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
