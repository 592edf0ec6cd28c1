"""Run notebook cells in a kernel of a running Jupyter server (REST + websocket), as JupyterLab does."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime, timezone

import nbformat
from jupyter_process import JupyterProcess
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect


def _message(code: str, session: str) -> dict:
    return {
        "header": {"msg_id": uuid.uuid4().hex, "msg_type": "execute_request", "username": "test",
                   "session": session, "date": datetime.now(timezone.utc).isoformat(), "version": "5.3"},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                    "allow_stdin": False, "stop_on_error": True},
    }  # fmt: skip


async def _run_cells(server: JupyterProcess, kernel_id: str, cells: list, timeout: float) -> None:
    url = f"ws://127.0.0.1:{server.port}/api/kernels/{kernel_id}/channels"
    request = HTTPRequest(url, headers={"Authorization": f"token {server.token}"})
    connection = await websocket_connect(request)
    session = uuid.uuid4().hex
    try:
        for cell in cells:
            message = _message(cell.source, session)
            await connection.write_message(json.dumps(message))
            outputs, error = [], None
            while True:
                raw = await asyncio.wait_for(connection.read_message(), timeout)
                if raw is None:
                    raise RuntimeError("kernel websocket closed")
                reply = json.loads(raw)
                if reply.get("parent_header", {}).get("msg_id") != message["header"]["msg_id"]:
                    continue
                kind, content = reply["msg_type"], reply["content"]
                if kind == "stream":
                    outputs.append(
                        nbformat.v4.new_output("stream", name=content["name"], text=content["text"])
                    )
                elif kind in ("execute_result", "display_data"):
                    outputs.append(nbformat.v4.new_output("display_data", data=content["data"]))
                elif kind == "error":
                    error = f"{content['ename']}: {content['evalue']}"
                elif kind == "status" and content["execution_state"] == "idle":
                    break
            cell.outputs = outputs
            if error:
                raise AssertionError(f"cell failed: {cell.source[:80]!r}: {error}")
    finally:
        connection.close()


def run_notebook_on_server(
    server: JupyterProcess, notebook_path: str, timeout: float = 180
) -> nbformat.NotebookNode:
    """Open ``notebook_path`` (server-relative) through the contents API and run it in a new server kernel."""
    model = server.get(f"/api/contents/{notebook_path}").json()
    notebook = nbformat.from_dict(model["content"])
    directory = notebook_path.rsplit("/", 1)[0] if "/" in notebook_path else ""
    kernel = server.request("POST", "/api/kernels", json={"name": "python3", "path": directory}).json()
    try:
        cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
        asyncio.run(_run_cells(server, kernel["id"], cells, timeout))
    finally:
        server.request("DELETE", f"/api/kernels/{kernel['id']}")
    return notebook
