"""User routes: create, list, read, change and delete users (their API keys: api/identity.py)."""

from __future__ import annotations

import re
from typing import Any

from chalice import Blueprint, Response

from chalicelib.api import render
from chalicelib.api.http import endpoint, json_body, principal, query, source_ip
from chalicelib.api.parsing import Fields, Params
from chalicelib.domain.identity import PERMISSIONS, ROLES
from chalicelib.services.container import get_services
from chalicelib.services.users import NewUser, UserChange

bp = Blueprint(__name__)

FIELDS = ("name", "email", "roles", "permissions")
# Deliberately loose: one @, no spaces; the address is a label, never used to send anything.
EMAIL_RE = re.compile(r"[^@\s]{1,64}@[^@\s]{1,189}")


def _email(f: Fields) -> str | None:
    return f.text("email", nullable=True, max_length=254, pattern=EMAIL_RE, what="an email address")


def parse_new_user(body: Any) -> NewUser:
    """POST /users body → NewUser."""
    f = Fields(body, FIELDS)
    name = f.text("name", required=True, max_length=100)
    assert name is not None
    return NewUser(name, _email(f), f.names("roles", ROLES) or (), f.names("permissions", PERMISSIONS) or ())


def parse_user_change(body: Any) -> UserChange:
    """PATCH /users/{id} body → UserChange (`email: null` clears the email)."""
    f = Fields(body, FIELDS)
    name = f.text("name", max_length=100)
    if f.has("name") and name is None:
        raise f.error("name", "name must be a string of 1 to 100 characters.")
    return UserChange(frozenset(n for n in FIELDS if f.has(n)), name, _email(f),
                      f.names("roles", ROLES) or (), f.names("permissions", PERMISSIONS) or ())


@bp.route("/users", methods=["POST"])
@endpoint("manage_users")
def create_user() -> Response:
    """Create a user (then give it an API key with POST /users/{id}/api-keys)."""
    request = bp.current_request
    view = get_services().users.create(principal(), parse_new_user(json_body(request)), source_ip(request))
    return Response(body=render.user(view), status_code=201)


@bp.route("/users", methods=["GET"])
@endpoint("manage_users")
def list_users() -> dict[str, Any]:
    """The account's users, newest first."""
    page = Params(query(bp.current_request), ()).page()
    return render.page(get_services().users.list(principal(), page), render.user)


@bp.route("/users/{user_id}", methods=["GET"])
@endpoint("manage_users")
def get_user(user_id: str) -> dict[str, Any]:
    """One user, with the groups it belongs to."""
    return render.user(get_services().users.get(principal(), user_id))


@bp.route("/users/{user_id}", methods=["PATCH"])
@endpoint("manage_users")
def patch_user(user_id: str) -> dict[str, Any]:
    """Change a user's name, email, roles or extra permissions."""
    request = bp.current_request
    change = parse_user_change(json_body(request))
    return render.user(get_services().users.update(principal(), user_id, change, source_ip(request)))


@bp.route("/users/{user_id}", methods=["DELETE"])
@endpoint("manage_users")
def delete_user(user_id: str) -> Response:
    """Delete a user: its API keys are revoked and it leaves its groups and teams."""
    request = bp.current_request
    get_services().users.delete(principal(), user_id, source_ip(request))
    return Response(body="", status_code=204)
