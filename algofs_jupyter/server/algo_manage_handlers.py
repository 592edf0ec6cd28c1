"""HTTP routes of the algorithm management API (contract §5.2; shapes of the client's Test/api/app.py).

``GET /v1/algorithms/<u>`` (listing, extension) · ``POST /v1/algorithms/<u>`` (create) ·
``GET|PUT /v1/algorithms/<u>/<a>`` (info/exists, update) · ``GET|POST .../versions`` (list, publish) ·
``GET .../versions/<hash|version>`` · ``POST .../compile`` · ``GET .../builds[/<id>[/logs]]`` ·
``PUT|GET .../source`` (source upload, extension: docs/algorithm-source.md).

The official 2.0.5 client's ``update()`` sends its dicts through ``requests``' form encoding, which
keeps only their keys; such a body changes nothing and is answered with the current algorithm.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from .algo_registry import AlgorithmRegistry, NoSuchAlgorithm
from .errors import ApiError, bad_request
from .handler_base import ApiHandler, parse_json_object

MAX_MANAGE_BODY = 11 * 1024 * 1024


class ManageHandler(ApiHandler):
    @property
    def registry(self) -> AlgorithmRegistry:
        return self.application.settings["registry"]

    @property
    def caller(self) -> str | None:
        """Calls made with a per-call token from inside an algorithm may read, never manage."""
        return self.identity.username if self.identity.algo_owner is None else None

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        if isinstance(kwargs.get("exc_info", (None, None, None))[1], NoSuchAlgorithm):
            self.set_header("X-Error-Message", "No such algorithm")
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps({"error": "No such algorithm"}))
            return
        super().write_error(status_code, **kwargs)

    def query(self) -> dict[str, str]:
        return {k: self.get_query_argument(k) for k in self.request.query_arguments}

    def json_body(self, form_ok: bool = False) -> dict[str, Any]:
        body = self.request.body
        if len(body) > MAX_MANAGE_BODY:
            raise ApiError(413, "request body exceeds the limit")
        if not body.strip():
            return {}
        mime = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if form_ok and mime == "application/x-www-form-urlencoded":
            return {}
        return parse_json_object(body)

    def refresh_pool(self) -> Callable[[str, str], Awaitable[object]] | None:
        """The executor's ``retire(owner, name)`` (the warm pool drops stale workers), if it has one."""
        executor = self.application.settings["executor"]
        return getattr(executor, "retire", None)


class UserAlgorithmsHandler(ManageHandler):
    """``GET /v1/algorithms/<user>`` lists published algorithms; ``POST`` creates one."""

    def get(self, owner: str) -> None:
        self.write_json({"results": self.registry.store.list_user(owner, caller=self.identity.username)})

    def post(self, owner: str) -> None:
        self.write_json(self.registry.create(owner, self.caller or "", self.json_body()))


class AlgorithmHandler(ManageHandler):
    def get(self, owner: str, name: str) -> None:
        record = self.registry.require(owner, name, self.identity.username)
        self.write_json(self.registry.algorithm_view(owner, name, record))

    def put(self, owner: str, name: str) -> None:
        self.write_json(self.registry.update(owner, name, self.caller or "", self.json_body(form_ok=True)))


class VersionsHandler(ManageHandler):
    def get(self, owner: str, name: str) -> None:
        self.write_json(self.registry.versions(owner, name, self.identity.username, self.query()))

    async def post(self, owner: str, name: str) -> None:
        body = await self.registry.publish(owner, name, self.caller or "", self.json_body(),
                                           on_published=self.refresh_pool())
        self.write_json(body)


class VersionHandler(ManageHandler):
    def get(self, owner: str, name: str, ref: str) -> None:
        self.write_json(self.registry.version_info(owner, name, self.identity.username, ref))


class CompileHandler(ManageHandler):
    async def post(self, owner: str, name: str) -> None:
        self.json_body()  # validated even though compile takes no options
        self.write_json(await self.registry.compile(owner, name, self.caller or ""))


class BuildsHandler(ManageHandler):
    def get(self, owner: str, name: str, build_id: str | None = None, logs: str | None = None) -> None:
        if build_id is None:
            self.write_json(self.registry.builds(owner, name, self.caller, self.query()))
        else:
            self.write_json(self.registry.build(owner, name, self.caller, build_id, logs=bool(logs)))


class SourceHandler(ManageHandler):
    """Extension: ``PUT`` the source as ``text/x-python`` (= algorithm.py) or JSON ``{"files": {...}}``."""

    def put(self, owner: str, name: str) -> None:
        self.registry.require(owner, name, self.caller, write=True)  # 403/404 before looking at the body
        mime = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if mime == "application/json":
            files = self.json_body().get("files")
            if not isinstance(files, dict):
                raise bad_request('expected {"files": {"algorithm.py": "<source>", ...}}')
        else:
            try:
                files = {"algorithm.py": self.request.body.decode("utf-8")}
            except UnicodeDecodeError as exc:
                raise bad_request("source must be UTF-8 text") from exc
        self.write_json(self.registry.upload_source(owner, name, self.caller or "", files))

    def get(self, owner: str, name: str) -> None:
        self.registry.require(owner, name, self.caller, write=True)
        source = self.registry.store.meta_dir(owner, name) / "source"
        files = {p.name: p.read_text(errors="replace") for p in sorted(source.glob("*")) if p.is_file()}
        self.write_json({"files": files})


_ALGO = r"/v1/algorithms/(\w+)/([A-Za-z_][\w.-]*)"
ROUTES: list[tuple] = [
    (r"/v1/algorithms/(\w+)/?", UserAlgorithmsHandler),
    (_ALGO + r"/?", AlgorithmHandler),
    (_ALGO + r"/versions/?", VersionsHandler),
    (_ALGO + r"/versions/([\w.-]+)/?", VersionHandler),
    (_ALGO + r"/compile/?", CompileHandler),
    (_ALGO + r"/builds/?", BuildsHandler),
    (_ALGO + r"/builds/([\w-]+)/?", BuildsHandler),
    (_ALGO + r"/builds/([\w-]+)/(logs)/?", BuildsHandler),
    (_ALGO + r"/source/?", SourceHandler),
]
