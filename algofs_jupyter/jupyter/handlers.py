"""REST API of the server extension under ``{base_url}algofs/`` (specified in docs/rest-api.md).

Every verb is ``@tornado.web.authenticated`` (→ 403 for anonymous API calls) and ``@authorized`` (so an
Authorizer, e.g. JupyterHub's, can restrict mount and pipe actions). Blocking work runs in threads.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import Callable
from typing import Protocol, cast

import tornado.web
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin

from ..publish import VERSION_TYPES, PublishError, publish
from . import algorithm_calls
from .algorithm_calls import AlgorithmFailed, UsageProblem
from .api_provider import ApiEndpoint, ApiProvider
from .busy_unmount import BusyUnmount
from .mount_manager import MountManager


class AlgofsState(Protocol):
    """What the handlers use of ``AlgofsApp`` (serverext.py imports this module, so not the class itself)."""

    mount_manager: MountManager
    busy_unmount: BusyUnmount
    api_provider: ApiProvider

    def algorithm_owner_list(self, endpoint: ApiEndpoint) -> list[str]: ...


class AlgofsHandler(ExtensionHandlerMixin, APIHandler):
    auth_resource = "algofs"

    @property
    def algofs(self) -> AlgofsState:
        # jupyter_server types ``extensionapp`` as the base ExtensionApp; the one that registers these
        # handlers (initialize_handlers) is always an AlgofsApp.
        return cast(AlgofsState, self.extensionapp)

    @property
    def manager(self) -> MountManager:
        return self.algofs.mount_manager

    def body(self) -> dict:
        if not self.request.body:
            return {}
        try:
            data = json.loads(self.request.body)
        except json.JSONDecodeError as exc:
            raise tornado.web.HTTPError(400, f"request body is not JSON: {exc.msg}") from None
        if not isinstance(data, dict):
            raise tornado.web.HTTPError(400, "request body must be a JSON object")
        return data

    async def listed_from_api(self, what: str, listing: Callable[[ApiEndpoint], list[dict]]) -> list[dict]:
        """``listing(endpoint)`` in a thread; an API down or misconfigured is a 502 naming ``what``."""
        try:
            endpoint = await asyncio.to_thread(self.algofs.api_provider.endpoint)
            return await asyncio.to_thread(listing, endpoint)
        except Exception as exc:  # upstream API down or misconfigured
            raise tornado.web.HTTPError(502, f"could not list {what}: {exc}") from None

    def reply(self, payload: dict, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(payload))


class StatusHandler(AlgofsHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self):
        self.reply(await self.manager.astatus())


class MountHandler(AlgofsHandler):
    @tornado.web.authenticated
    @authorized
    async def post(self):
        path = self.body().get("path")
        if path is not None:
            if not isinstance(path, str) or not path.strip():
                raise tornado.web.HTTPError(400, '"path" must be a non-empty string')
            try:
                path = str(self.manager.resolve_inside_root(path))
            except ValueError as exc:
                raise tornado.web.HTTPError(400, str(exc)) from None
        status = await self.manager.amount(path)
        if status.get("mounted"):
            await self.algofs.busy_unmount.after_mount()
        self.reply(status)


class UnmountHandler(AlgofsHandler):
    @tornado.web.authenticated
    @authorized
    async def post(self):
        force = self.body().get("force", False)
        if not isinstance(force, bool):
            raise tornado.web.HTTPError(400, '"force" must be true or false')
        self.reply(await self.algofs.busy_unmount.unmount(force))


class CacheHandler(AlgofsHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self):
        self.reply(await self.manager.acache_stats())

    @tornado.web.authenticated
    @authorized
    async def delete(self):
        self.reply(await self.manager.aclear_cache())


class AlgorithmsHandler(AlgofsHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self):
        app = self.algofs
        def listing(endpoint: ApiEndpoint) -> list[dict]:
            return algorithm_calls.list_algorithms(endpoint, app.algorithm_owner_list(endpoint))

        found = await self.listed_from_api("algorithms", listing)
        self.reply({"algorithms": found})


class OrganizationsHandler(AlgofsHandler):
    """The caller's organizations and where their shared folders are (``<mount point>/data/<org>``)."""

    @tornado.web.authenticated
    @authorized
    async def get(self):
        found = await self.listed_from_api("organizations", algorithm_calls.list_organizations)
        folder = self.manager.relative_mountpoint()
        self.reply({"organizations": [{**org, "path": f"{folder}/data/{org['name']}"} for org in found]})


class PipeHandler(AlgofsHandler):
    @tornado.web.authenticated
    @authorized
    async def post(self):
        body = self.body()
        ref = body.get("algorithm")
        content_type = body.get("content_type", "text")
        data = body.get("input", "")
        timeout = body.get("timeout")
        if not isinstance(ref, str):
            raise tornado.web.HTTPError(400, '"algorithm" (user/algo[/version]) is required')
        if not isinstance(data, str):
            raise tornado.web.HTTPError(400, '"input" must be a string (base64 for binary)')
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float))):
            raise tornado.web.HTTPError(400, '"timeout" must be a number of seconds')
        try:
            if content_type == "binary":
                try:
                    data = base64.b64decode(data, validate=True)
                except binascii.Error:
                    raise UsageProblem("binary input must be base64") from None
            value = algorithm_calls.decode_input(data, content_type)
            endpoint = await asyncio.to_thread(self.algofs.api_provider.endpoint)
            result = await asyncio.to_thread(algorithm_calls.pipe, endpoint, ref, value, timeout)
        except UsageProblem as exc:
            raise tornado.web.HTTPError(400, str(exc)) from None
        except AlgorithmFailed as exc:
            self.reply({"message": exc.message, "error_type": exc.error_type}, status=422)
            return
        self.reply(result.to_json())


class PublishHandler(AlgofsHandler):
    """The panel's publish: the code of a cell or file as a new version. A failed build is an answer (200,
    ``ok: false`` and the build's log), as for the ``%%algofs publish`` magic; problems that are not the
    code's (not the owner, no API) are a 400 with the reason."""

    @tornado.web.authenticated
    @authorized
    async def post(self):
        body = self.body()
        ref, source, version = body.get("algorithm"), body.get("source"), body.get("version", "minor")
        if not isinstance(ref, str) or not isinstance(source, str):
            raise tornado.web.HTTPError(400, '"algorithm" (user/name) and "source" (text) are required')
        if version not in VERSION_TYPES:
            raise tornado.web.HTTPError(400, f'"version" must be one of {", ".join(VERSION_TYPES)}')
        try:
            endpoint = await asyncio.to_thread(self.algofs.api_provider.endpoint)
            result = await asyncio.to_thread(publish, ref, source, version, api_address=endpoint.api_address,
                                             api_key=endpoint.api_key)
        except PublishError as exc:
            raise tornado.web.HTTPError(400, str(exc)) from None
        self.reply({"ok": result.ok, "algorithm": result.algorithm, "version": result.version,
                    "commit": result.commit, "logs": result.logs, "build_id": result.build_id,
                    "message": str(result)})


def route_table() -> list[tuple[str, type]]:
    return [
        (r"/algofs/status", StatusHandler),
        (r"/algofs/mount", MountHandler),
        (r"/algofs/unmount", UnmountHandler),
        (r"/algofs/cache", CacheHandler),
        (r"/algofs/algorithms", AlgorithmsHandler),
        (r"/algofs/organizations", OrganizationsHandler),
        (r"/algofs/pipe", PipeHandler),
        (r"/algofs/publish", PublishHandler),
    ]
