"""Cookie-authenticated (browser) POST/DELETE calls must carry the XSRF token; token-authenticated not."""

from __future__ import annotations

import json
import secrets

from tornado.httputil import HTTPHeaders


async def login_cookie(jp_fetch, jp_serverapp) -> str:
    """The cookie a browser gets after opening the server with ``?token=…``."""
    token = jp_serverapp.identity_provider.token
    response = await jp_fetch("algofs", "status", headers={"Authorization": ""}, params={"token": token})
    assert response.code == 200
    cookies = HTTPHeaders(response.headers).get_list("Set-Cookie")
    login = [cookie.split(";", 1)[0] for cookie in cookies if cookie.startswith("username-")]
    assert login, cookies
    return login[0]


async def test_cookie_auth_post_needs_the_xsrf_token(jp_fetch, jp_serverapp):
    cookie = await login_cookie(jp_fetch, jp_serverapp)
    unauth = {"Authorization": ""}

    response = await jp_fetch("algofs", "status", headers={**unauth, "Cookie": cookie}, raise_error=False)
    assert response.code == 200  # reads only need the login cookie

    response = await jp_fetch("algofs", "unmount", method="POST", body="{}", raise_error=False,
                              headers={**unauth, "Cookie": cookie})  # fmt: skip
    assert response.code == 403

    xsrf = secrets.token_hex(16)
    response = await jp_fetch(
        "algofs",
        "unmount",
        method="POST",
        body="{}",
        raise_error=False,
        headers={**unauth, "Cookie": f"{cookie}; _xsrf={xsrf}", "X-XSRFToken": xsrf},
    )
    assert response.code == 200, response.body
    assert json.loads(response.body)["mounted"] is False
