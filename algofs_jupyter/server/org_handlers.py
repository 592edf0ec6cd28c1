"""Routes of organizations and of the admin API (docs/server.md, "Organizations and the admin API").

Admin calls (``POST /v1/users``, ``POST /v1/organizations``) take a key of a user the operator named with
``--admin``; as on the hosted service, where they were admin routes, anyone else gets 403. The organization
types answer server admins and organization admins (the official client's ``edit_org`` reads them first).
An organization's own routes answer its members (``GET``) and its admins or a server admin (changes); to
anyone else the organization does not exist (404), as a private collection's contents.
A called algorithm's per-call token changes nothing here (403).
"""

from __future__ import annotations

import uuid

from .errors import ApiError, bad_request, forbidden, not_found
from .handler_base import ApiHandler, parse_json_object
from .organizations import NAME, ORG_TYPES, Organization, OrganizationStore, check_role


class OrgHandler(ApiHandler):
    @property
    def organizations(self) -> OrganizationStore:
        return self.application.settings["organizations"]

    @property
    def api_address(self) -> str:
        return f"{self.request.protocol}://{self.request.host}"

    def is_admin(self) -> bool:
        """A server admin, calling with their own key (not from inside an algorithm)."""
        return self.identity.algo_owner is None and self.identity.username in self.users.admins

    def require_admin(self) -> None:
        if not self.is_admin():
            raise forbidden("only an admin of this server may do this (algofs serve --admin USER)")

    def body(self) -> dict:
        """A JSON object; an empty or form-encoded body (the official client's ``data={}``) is ``{}``."""
        if not self.request.body.strip():
            return {}
        mime = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if mime == "application/x-www-form-urlencoded":
            return {}
        return parse_json_object(self.request.body)

    def visible(self, name: str) -> Organization:
        """The organization, for a server admin or one of its members; 404 to everyone else."""
        org = self.organizations.require(name)
        if not self.is_admin() and self.identity.username not in org.members:
            raise not_found(f"organization {name!r} not found")
        return org

    def require_org_admin(self, name: str) -> Organization:
        org = self.visible(name)
        if self.identity.algo_owner is not None or not (
                self.is_admin() or org.members.get(self.identity.username) == "admin"):
            raise forbidden(f"only the admins of organization {name!r} (or a server admin) may change it")
        return org


class OrganizationTypesHandler(OrgHandler):
    """``GET /v1/organization/types``: the hosted API's three types, for server admins and the admins of an
    organization (the official client's ``edit_org`` asks for them before it edits); others get 403."""

    def get(self) -> None:
        me = self.identity.username
        if not any(o["role"] == "admin" for o in self.organizations.of_user(me)):
            self.require_admin()
        self.write_json(ORG_TYPES)


class OrganizationsHandler(OrgHandler):
    """``POST /v1/organizations``: create an organization (admins only); it starts with no members."""

    def post(self) -> None:
        self.require_admin()
        org = self.organizations.create(self.body())
        self.write_json(org.view(self.api_address, with_members=True))


class OrganizationHandler(OrgHandler):
    """``GET|PUT /v1/organizations/<org>``: read (members, admins), edit (its admins, server admins: 204)."""

    def get(self, name: str) -> None:
        self.write_json(self.visible(name).view(self.api_address, with_members=True))

    def put(self, name: str) -> None:
        self.require_org_admin(name)
        self.organizations.edit(name, self.body())
        self.set_status(204)
        self.finish()


class MemberHandler(OrgHandler):
    """``PUT|DELETE /v1/organizations/<org>/members/<user>``: invite (``{"role"}``, default member: an empty
    200, as the hosted API answered the client's ``invite_to_org``) or remove (204) a member."""

    def put(self, name: str, user: str) -> None:
        self.require_org_admin(name)
        role = check_role(self.body().get("role", "member"))
        if not self.users.is_user(user):
            raise not_found(f"user {user!r} not found")
        self.organizations.set_member(name, user, role)
        self.set_status(200)
        self.finish()

    def delete(self, name: str, user: str) -> None:
        self.require_org_admin(name)
        self.organizations.remove_member(name, user)
        self.set_status(204)
        self.finish()


class UsersHandler(OrgHandler):
    """``POST /v1/users {"username", "email", …}`` (admins only): a new user, with its folder and an API key
    (``api_key``, an extension: the hosted service mailed its users instead)."""

    def post(self) -> None:
        self.require_admin()
        body = self.body()
        name, email = body.get("username"), body.get("email", "")
        if not isinstance(name, str) or not NAME.match(name):
            raise bad_request("username must be 1-64 ASCII letters, digits or underscores")
        if not isinstance(email, str) or len(email) > 320:
            raise bad_request("email must be a string")
        fullname = body.get("fullname", name)
        if not isinstance(fullname, str) or len(fullname) > 256:
            raise bad_request("fullname must be a string")
        if self.users.is_user(name) or self.organizations.get(name) is not None:
            raise ApiError(409, f"{name!r} is already a user's or an organization's name", code=4090)
        record = {"id": str(uuid.uuid4()), "email": email, "fullname": fullname}
        key = self.users.create_user(name, record)
        self.write_json({"id": record["id"], "username": name, "email": email, "fullname": fullname,
                         "self_link": f"{self.api_address}/v1/users/{name}", "resource_type": "user",
                         "api_key": key})


class WhoAmIHandler(OrgHandler):
    """``GET /v1/algofs/whoami`` (extension): the caller's name, organizations and whether they are an admin,
    so a mount or panel shows the organizations' folders beside the caller's own."""

    def get(self) -> None:
        me = self.identity.username
        self.write_json({"username": me, "organizations": self.organizations.of_user(me),
                         "admin": self.is_admin()})


_ORG = r"/v1/organizations/(\w{1,64})"
ROUTES: list[tuple] = [
    (r"/v1/organization/types/?", OrganizationTypesHandler),
    (r"/v1/organizations/?", OrganizationsHandler),
    (_ORG + r"/?", OrganizationHandler),
    (_ORG + r"/members/(\w{1,64})/?", MemberHandler),
    (r"/v1/users/?", UsersHandler),
    (r"/v1/algofs/whoami", WhoAmIHandler),
]
