"""HTTP routes of the rest of the hosted algorithm lifecycle the official client calls (issue 27).

``GET|POST /v1/algorithms/<id>/secrets`` · ``GET /v1/secret-provider`` · ``GET /v1/algorithms/<id>/errors`` ·
``GET /v1/users/<user>/errors`` · ``GET /v1/organizations/<org>/errors`` · ``GET /v1/scms`` ·
``GET /v1/algorithms/<u>/<a>/scm/status`` · ``GET /v1/algorithm-environments/edge/languages[/<lang>/
environments]`` · ``GET …/environment-specifications/<id>/template``.

Secrets and error lists belong to the algorithm's owner (an organization's errors: to its members):
anyone else gets 403, an unknown id 404, and a per-call token from inside an algorithm may not reach
them at all (``ManageHandler.caller``).
"""

from __future__ import annotations

from .algo_errors import ErrorLog
from .algo_manage_handlers import ManageHandler
from .algo_registry import SCM, not_authorized, now_iso
from .algo_secrets import PROVIDER, SecretStore
from .algo_templates import LANGUAGES, environments, template_tarball
from .errors import ApiError


class ByIdHandler(ManageHandler):
    """An algorithm named by its id, for its owner only (an organization's: for its members)."""

    def owned(self, algorithm_id: str) -> tuple[str, str, dict]:
        found = self.registry.find_by_id(algorithm_id)
        if found is None:
            raise ApiError(404, "No such algorithm")
        if not self.registry.store.acts_for(found[0], self.caller):
            raise not_authorized()
        return found

    @property
    def errors(self) -> ErrorLog:
        return self.application.settings["algorithm_errors"]


class SecretsHandler(ByIdHandler):
    @property
    def secrets(self) -> SecretStore:
        return self.application.settings["algorithm_secrets"]

    def get(self, algorithm_id: str) -> None:
        self.owned(algorithm_id)
        self.write_json(self.secrets.listing(algorithm_id))

    async def post(self, algorithm_id: str) -> None:
        owner, name, _ = self.owned(algorithm_id)
        secret = self.secrets.put(algorithm_id, self.json_body(), now_iso())
        retire = self.refresh_pool()
        if retire is not None:  # warm workers started with the old values: the next call starts afresh
            await retire(owner, name)
        self.write_json(secret)


class SecretProviderHandler(ManageHandler):
    def get(self) -> None:
        self.write_json([PROVIDER])


class AlgorithmErrorsHandler(ByIdHandler):
    def get(self, algorithm_id: str) -> None:
        owner, _, _ = self.owned(algorithm_id)
        self.write_json(self.errors.for_algorithm(owner, algorithm_id))


class UserErrorsHandler(ByIdHandler):
    def get(self, user: str) -> None:
        if self.caller != user:
            raise not_authorized()
        self.write_json(self.errors.for_owner(user))


class OrganizationErrorsHandler(ByIdHandler):
    """Errors of the algorithms an organization owns, for its members (``organizations.py``, the
    ``organizations`` application setting)."""

    def get(self, org: str) -> None:
        organizations = self.application.settings.get("organizations")
        if organizations is None or organizations.get(org) is None:
            raise ApiError(404, "no such organization")
        if self.caller is None or organizations.role(org, self.caller) is None:
            raise not_authorized()
        self.write_json(self.errors.for_owner(org))


class ScmsHandler(ManageHandler):
    def get(self) -> None:
        self.write_json({"marker": None, "next_link": None, "results": [SCM["scm"]]})


class ScmStatusHandler(ManageHandler):
    def get(self, owner: str, name: str) -> None:
        self.registry.require(owner, name, self.identity.username)
        self.write_json({"scm_connection_status": "active", "scm": SCM["scm"]})


class LanguagesHandler(ManageHandler):
    def get(self) -> None:
        self.write_json(LANGUAGES)


class EnvironmentsHandler(ManageHandler):
    def get(self, language: str) -> None:
        self.write_json(environments(language))


class TemplateHandler(ManageHandler):
    def get(self, specification_id: str) -> None:
        body = template_tarball(specification_id)
        self.set_header("Content-Type", "application/gzip")
        self.finish(body)


_ID = r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
_ENVS = r"/v1/algorithm-environments/edge"
#: Before the management routes: an id is not an owner name (it has hyphens), but be explicit.
ROUTES: list[tuple] = [
    (rf"/v1/algorithms/{_ID}/secrets/?", SecretsHandler),
    (rf"/v1/algorithms/{_ID}/errors/?", AlgorithmErrorsHandler),
    (r"/v1/secret-provider/?", SecretProviderHandler),
    (r"/v1/users/(\w+)/errors/?", UserErrorsHandler),
    (r"/v1/organizations/(\w+)/errors/?", OrganizationErrorsHandler),
    (r"/v1/scms/?", ScmsHandler),
    (r"/v1/algorithms/(\w+)/([A-Za-z_][\w.-]*)/scm/status/?", ScmStatusHandler),
    (rf"{_ENVS}/languages/?", LanguagesHandler),
    (rf"{_ENVS}/languages/([\w.-]+)/environments/?", EnvironmentsHandler),
    (rf"{_ENVS}/environment-specifications/([\w-]+)/template/?", TemplateHandler),
]
