"""Keypair routes: create, list, read, change, delete; each body parsed here into a request value."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, TypeVar

from chalice import Blueprint, Response

from chalicelib.api import render
from chalicelib.api.http import endpoint, json_body, principal, query, source_ip
from chalicelib.api.parsing import Fields, Params
from chalicelib.domain.keypairs import ALIAS_RE, Access, Category, KeypairType, Status, Storage, valid_alias
from chalicelib.domain.keyspec import ALGORITHMS
from chalicelib.ids import looks_like_id
from chalicelib.services.container import get_services
from chalicelib.services.keypair_requests import KeypairRequest
from chalicelib.services.keypairs import KeypairChange, KeypairQuery

bp = Blueprint(__name__)
E = TypeVar("E", bound=StrEnum)

CREATE_FIELDS = ("alias", "type", "algorithm", "key_size", "curve", "category", "storage", "status", "access",
                 "allowed_users", "allowed_groups", "team_id", "profile_id", "generate_certificate",
                 "refresh_after_sign")
CHANGE_FIELDS = ("alias", "status", "access", "allowed_users", "allowed_groups")
LIST_FILTERS: dict[str, tuple[str, ...]] = {
    "type": tuple(KeypairType), "status": tuple(Status), "storage": tuple(Storage),
    "category": tuple(Category), "algorithm": ALGORITHMS,
}


def _alias(f: Fields, required: bool) -> str | None:
    alias = f.text("alias", required=required, max_length=64, pattern=ALIAS_RE,
                   what="1 to 64 letters, digits, dots, dashes or underscores")
    if alias is not None and not valid_alias(alias):
        raise f.error("alias", "alias may not look like a keypair id.")
    return alias


def _optional(f: Fields, name: str, enum: type[E]) -> E | None:
    """An enumeration value, or None when the field was left out (a profile or a default fills it)."""
    return f.choice(name, enum) if f.has(name) else None


def parse_new_keypair(body: Any) -> KeypairRequest:
    """POST /keypairs body → KeypairRequest; raises ValidationError.

    `type`, `algorithm`, `key_size`, `curve`, `category`, `storage` and `status` may be left out when the
    keypair profile sets them; the service applies the profile and checks the key parameters together.
    """
    f = Fields(body, CREATE_FIELDS)
    alias = _alias(f, required=True)
    kind = _optional(f, "type", KeypairType)
    access = f.choice("access", Access, Access.OPEN)
    users = f.ids("allowed_users", "usr") or ()
    groups = f.ids("allowed_groups", "grp") or ()
    if access is Access.OPEN and (users or groups):
        raise f.error("access", "allowed_users and allowed_groups need access restricted.")
    team_id = f.raw("team_id")
    if team_id is not None and not (isinstance(team_id, str) and looks_like_id(team_id, "team")):
        raise f.error("team_id", "team_id must be a team id.")
    profile_id = f.raw("profile_id")
    if profile_id is not None and not (isinstance(profile_id, str) and looks_like_id(profile_id, "prof")):
        raise f.error("profile_id", "profile_id must be a keypair profile id.")
    assert alias is not None
    return KeypairRequest(
        alias=alias, type=kind, algorithm=f.raw("algorithm"), key_size=f.raw("key_size"), curve=f.raw("curve"),
        category=_optional(f, "category", Category), storage=_optional(f, "storage", Storage),
        status=_optional(f, "status", Status), access=access, allowed_users=users, allowed_groups=groups,
        team_id=team_id, profile_id=profile_id, generate_certificate=f.flag("generate_certificate", True),
        refresh_after_sign=f.flag("refresh_after_sign", False),
    )


def parse_change(body: Any) -> KeypairChange:
    """PATCH /keypairs/{keypair} body → KeypairChange; raises ValidationError."""
    f = Fields(body, CHANGE_FIELDS)
    return KeypairChange(
        alias=_alias(f, required=False),
        status=f.choice("status", Status) if f.has("status") else None,
        access=f.choice("access", Access) if f.has("access") else None,
        allowed_users=f.ids("allowed_users", "usr"),
        allowed_groups=f.ids("allowed_groups", "grp"),
    )


def parse_query(params: dict[str, str]) -> KeypairQuery:
    """GET /keypairs query → KeypairQuery; unknown parameters and values are 400s."""
    p = Params(params, ("alias", *LIST_FILTERS))
    filters = {name: value for name, choices in LIST_FILTERS.items() if (value := p.choice(name, choices))}
    if (alias := p.get("alias")) is not None:
        filters["alias"] = alias
    return KeypairQuery(dict(sorted(filters.items())), p.page())


@bp.route("/keypairs", methods=["POST"])
@endpoint("generate_keypair")
def create_keypair() -> Response:
    """Create a keypair."""
    request = bp.current_request
    kp = get_services().keypairs.create(principal(), parse_new_keypair(json_body(request)), source_ip(request))
    return Response(body=render.keypair(kp), status_code=201)


@bp.route("/keypairs", methods=["GET"])
@endpoint("view_keypair")
def list_keypairs() -> dict[str, Any]:
    """List keypairs, newest first."""
    result = get_services().keypairs.list(principal(), parse_query(query(bp.current_request)))
    return render.page(result, render.keypair)


@bp.route("/keypairs/{keypair}", methods=["GET"])
@endpoint("view_keypair")
def get_keypair(keypair: str) -> dict[str, Any]:
    """One keypair by id or alias."""
    return render.keypair(get_services().keypairs.get(principal(), keypair))


@bp.route("/keypairs/{keypair}", methods=["PATCH"])
@endpoint("manage_keypair")
def patch_keypair(keypair: str) -> dict[str, Any]:
    """Change alias, status, access or the allowed lists."""
    request = bp.current_request
    change = parse_change(json_body(request))
    return render.keypair(get_services().keypairs.update(principal(), keypair, change, source_ip(request)))


@bp.route("/keypairs/{keypair}", methods=["DELETE"])
@endpoint("manage_keypair")
def delete_keypair(keypair: str) -> Response:
    """Delete a keypair: its key is destroyed, a tombstone stays."""
    request = bp.current_request
    get_services().keypairs.delete(principal(), keypair, source_ip(request))
    return Response(body="", status_code=204)
