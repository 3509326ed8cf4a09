"""Keypair-profile routes: presets a keypair request uses with `profile_id`."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from chalice import Blueprint, Response

from chalicelib.api import render
from chalicelib.api.http import endpoint, json_body, principal, query, source_ip
from chalicelib.api.parsing import Fields, Params
from chalicelib.domain.keypairs import Category, KeypairType, Status, Storage
from chalicelib.domain.keyspec import ALGORITHMS
from chalicelib.domain.profiles import PROFILE_FIELDS, ProfileMode
from chalicelib.services.container import get_services
from chalicelib.services.profiles import ProfileValues

bp = Blueprint(__name__)

FIELDS = ("name", "mode", *PROFILE_FIELDS, "team_ids")
_CHOICES: dict[str, type[StrEnum]] = {"type": KeypairType, "category": Category, "storage": Storage,
                                      "status": Status}


def parse_profile(body: Any, *, create: bool) -> ProfileValues:
    """POST or PATCH /keypair-profiles body → ProfileValues (a null keypair field is left to requests)."""
    f = Fields(body, FIELDS)
    values: dict[str, Any] = {}
    if create or f.has("name"):
        values["name"] = f.text("name", required=True, max_length=100)
    if create or f.has("mode"):
        values["mode"] = f.choice("mode", ProfileMode)
    for name, enum in _CHOICES.items():
        if f.has(name):
            values[name] = None if f.raw(name) is None else f.choice(name, enum).value
    if f.has("algorithm"):
        algorithm = f.raw("algorithm")
        if algorithm is not None and algorithm not in ALGORITHMS:
            raise f.unsupported("algorithm", f"algorithm must be one of {', '.join(ALGORITHMS)}.")
        values["algorithm"] = algorithm
    if f.has("key_size"):
        values["key_size"] = f.integer("key_size", minimum=1, maximum=16384, nullable=True)
    if f.has("curve"):
        values["curve"] = f.text("curve", max_length=16, nullable=True)
    if f.has("team_ids"):
        values["team_ids"] = f.ids("team_ids", "team")
    return ProfileValues(frozenset(values), values)


@bp.route("/keypair-profiles", methods=["POST"])
@endpoint("manage_profiles")
def create_profile() -> Response:
    """Create a keypair profile."""
    request = bp.current_request
    profile = get_services().profiles.create(principal(), parse_profile(json_body(request), create=True),
                                             source_ip(request))
    return Response(body=render.profile(profile), status_code=201)


@bp.route("/keypair-profiles", methods=["GET"])
@endpoint("view_keypair")
def list_profiles() -> dict[str, Any]:
    """The account's keypair profiles, newest first (whoever creates keypairs picks from them)."""
    page = Params(query(bp.current_request), ()).page()
    return render.page(get_services().profiles.list(principal(), page), render.profile)


@bp.route("/keypair-profiles/{profile_id}", methods=["GET"])
@endpoint("view_keypair")
def get_profile(profile_id: str) -> dict[str, Any]:
    """One keypair profile."""
    return render.profile(get_services().profiles.get(principal(), profile_id))


@bp.route("/keypair-profiles/{profile_id}", methods=["PATCH"])
@endpoint("manage_profiles")
def patch_profile(profile_id: str) -> dict[str, Any]:
    """Change a profile (keypairs made with it keep their parameters); `team_ids` allocates it to teams."""
    request = bp.current_request
    values = parse_profile(json_body(request), create=False)
    return render.profile(get_services().profiles.update(principal(), profile_id, values, source_ip(request)))


@bp.route("/keypair-profiles/{profile_id}", methods=["DELETE"])
@endpoint("manage_profiles")
def delete_profile(profile_id: str) -> Response:
    """Delete a keypair profile."""
    request = bp.current_request
    get_services().profiles.delete(principal(), profile_id, source_ip(request))
    return Response(body="", status_code=204)
