"""User-group routes: groups name several users at once (restricted keypairs, teams)."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint, Response

from chalicelib.api import render
from chalicelib.api.http import endpoint, json_body, principal, query, source_ip
from chalicelib.api.parsing import Fields, Params
from chalicelib.services.container import get_services
from chalicelib.services.groups import GroupChange, NewGroup

bp = Blueprint(__name__)

FIELDS = ("name", "member_ids")


def parse_new_group(body: Any) -> NewGroup:
    """POST /groups body → NewGroup."""
    f = Fields(body, FIELDS)
    name = f.text("name", required=True, max_length=100)
    assert name is not None
    return NewGroup(name, f.ids("member_ids", "usr") or ())


def parse_group_change(body: Any) -> GroupChange:
    """PATCH /groups/{id} body → GroupChange (`member_ids` replaces the members)."""
    f = Fields(body, FIELDS)
    if f.has("name") and f.raw("name") is None:
        raise f.error("name", "name must be a string of 1 to 100 characters.")
    return GroupChange(f.text("name", max_length=100), f.ids("member_ids", "usr"))


@bp.route("/groups", methods=["POST"])
@endpoint("manage_users")
def create_group() -> Response:
    """Create a user group."""
    request = bp.current_request
    group = get_services().groups.create(principal(), parse_new_group(json_body(request)), source_ip(request))
    return Response(body=render.group(group), status_code=201)


@bp.route("/groups", methods=["GET"])
@endpoint("view_keypair")
def list_groups() -> dict[str, Any]:
    """The account's groups, newest first (readable by whoever can pick them for a keypair)."""
    page = Params(query(bp.current_request), ()).page()
    return render.page(get_services().groups.list(principal(), page), render.group)


@bp.route("/groups/{group_id}", methods=["GET"])
@endpoint("view_keypair")
def get_group(group_id: str) -> dict[str, Any]:
    """One group."""
    return render.group(get_services().groups.get(principal(), group_id))


@bp.route("/groups/{group_id}", methods=["PATCH"])
@endpoint("manage_users")
def patch_group(group_id: str) -> dict[str, Any]:
    """Rename a group or replace its members."""
    request = bp.current_request
    change = parse_group_change(json_body(request))
    return render.group(get_services().groups.update(principal(), group_id, change, source_ip(request)))


@bp.route("/groups/{group_id}", methods=["DELETE"])
@endpoint("manage_users")
def delete_group(group_id: str) -> Response:
    """Delete a group (it also leaves its teams)."""
    request = bp.current_request
    get_services().groups.delete(principal(), group_id, source_ip(request))
    return Response(body="", status_code=204)
