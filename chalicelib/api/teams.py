"""Team routes (answer 409 teams_disabled unless the account has teams enabled)."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint, Response

from chalicelib.api import render
from chalicelib.api.http import endpoint, json_body, principal, query, source_ip
from chalicelib.api.parsing import Fields, Params
from chalicelib.services.container import get_services
from chalicelib.services.teams import NewTeam, TeamChange

bp = Blueprint(__name__)

FIELDS = ("name", "member_ids", "group_ids")


def parse_new_team(body: Any) -> NewTeam:
    """POST /teams body → NewTeam (profiles are allocated on the profile: its `team_ids`)."""
    f = Fields(body, FIELDS)
    name = f.text("name", required=True, max_length=100)
    assert name is not None
    return NewTeam(name, f.ids("member_ids", "usr") or (), f.ids("group_ids", "grp") or ())


def parse_team_change(body: Any) -> TeamChange:
    """PATCH /teams/{id} body → TeamChange (a list replaces the list)."""
    f = Fields(body, FIELDS)
    if f.has("name") and f.raw("name") is None:
        raise f.error("name", "name must be a string of 1 to 100 characters.")
    return TeamChange(f.text("name", max_length=100), f.ids("member_ids", "usr"), f.ids("group_ids", "grp"))


@bp.route("/teams", methods=["POST"])
@endpoint("manage_teams")
def create_team() -> Response:
    """Create a team."""
    request = bp.current_request
    view = get_services().teams.create(principal(), parse_new_team(json_body(request)), source_ip(request))
    return Response(body=render.team(view), status_code=201)


@bp.route("/teams", methods=["GET"])
@endpoint("view_keypair")
def list_teams() -> dict[str, Any]:
    """The account's teams, newest first."""
    page = Params(query(bp.current_request), ()).page()
    return render.page(get_services().teams.list(principal(), page), render.team)


@bp.route("/teams/{team_id}", methods=["GET"])
@endpoint("view_keypair")
def get_team(team_id: str) -> dict[str, Any]:
    """One team."""
    return render.team(get_services().teams.get(principal(), team_id))


@bp.route("/teams/{team_id}", methods=["PATCH"])
@endpoint("manage_teams")
def patch_team(team_id: str) -> dict[str, Any]:
    """Rename a team or replace its members or groups."""
    request = bp.current_request
    change = parse_team_change(json_body(request))
    return render.team(get_services().teams.update(principal(), team_id, change, source_ip(request)))


@bp.route("/teams/{team_id}", methods=["DELETE"])
@endpoint("manage_teams")
def delete_team(team_id: str) -> Response:
    """Delete a team: its keypairs stay, visible to admins only."""
    request = bp.current_request
    get_services().teams.delete(principal(), team_id, source_ip(request))
    return Response(body="", status_code=204)
