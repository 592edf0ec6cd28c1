"""``@authorized`` lets a deployment's Authorizer (e.g. JupyterHub's) restrict AlgoFS actions."""

from __future__ import annotations

import pytest
from jupyter_server.auth.authorizer import Authorizer


class ReadOnlyAlgofs(Authorizer):
    """Allows reading AlgoFS state, refuses every change (mount, unmount, cache clear, pipe)."""

    def is_authorized(self, handler, user, action, resource) -> bool:
        return resource != "algofs" or action == "read"


@pytest.fixture
def jp_server_config(jp_server_config):
    server = {**jp_server_config["ServerApp"], "authorizer_class": ReadOnlyAlgofs}
    return {**jp_server_config, "ServerApp": server}


@pytest.mark.parametrize(("method", "route"), [("POST", "mount"), ("POST", "unmount"), ("DELETE", "cache"),
                                               ("POST", "pipe")])  # fmt: skip
async def test_authorizer_can_refuse_changes(call, method, route):
    code, _body = await call(method, route, {"algorithm": "demo/echo", "input": "x"})
    assert code == 403


@pytest.mark.parametrize("route", ["status", "cache", "algorithms"])
async def test_authorizer_allows_reads(call, route):
    code, _body = await call("GET", route)
    assert code == 200
