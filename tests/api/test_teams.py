"""Teams: off, `team_id` is refused; on, a team keypair exists only for its members and admins.

Outside the team a keypair answers 404 by id and by alias, is missing from lists, and a log filter
naming it is a 404 as well; signing it is refused like signing a keypair that does not exist.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chalicelib.ids import new_id
from chalicelib.storage.tables import SignatureLogModel
from tests.support.api import Account, Api, check_signed, digest_body
from tests.support.clock import FakeMonotonic, on_cache_clock

EC = {"type": "dynamic", "algorithm": "ECDSA", "curve": "P-256", "storage": "disk"}


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeMonotonic:
    return on_cache_clock(monkeypatch)


@pytest.fixture
def team(api: Api) -> dict[str, Any]:
    """Teams on; a team with a direct member and a member through a group; its keypair; an outsider lead."""
    api.ok("PATCH", "/account", {"teams_enabled": True})
    direct = api.new_user("direct", roles=("developer",))
    via_group = api.new_user("via-group", roles=("developer",))
    outsider = api.new_user("outsider", roles=("lead",))
    group = api.ok("POST", "/groups", {"name": "web devs", "member_ids": [via_group.user_id]}, 201)
    made = api.ok("POST", "/teams", {"name": "web", "member_ids": [direct.user_id], "group_ids": [group["id"]]}, 201)
    kp = api.ok("POST", "/keypairs", {"alias": "web-release", **EC, "team_id": made["id"]}, 201)
    open_kp = api.ok("POST", "/keypairs", {"alias": "everyone", **EC}, 201)
    return {"team": made, "direct": direct, "via_group": via_group, "outsider": outsider, "group": group,
            "kp": kp, "open": open_kp}


def test_teams_off_refuse_team_ids_and_the_team_routes(api: Api) -> None:
    error = api.error("POST", "/keypairs", {"alias": "t", **EC, "team_id": new_id("team")}, 400, "validation_error")
    assert error["details"]["field"] == "team_id"
    for method, path, body in [("GET", "/teams", None), ("POST", "/teams", {"name": "x"}),
                               ("GET", f"/teams/{new_id('team')}", None)]:
        api.error(method, path, body, 409, "teams_disabled")


def test_members_see_and_use_the_team_keypair(api: Api, team: dict[str, Any], tmp_path: Path) -> None:
    kp = team["kp"]
    assert kp["team_id"] == team["team"]["id"]
    for who in ("direct", "via_group"):
        member = api.as_(team[who])
        assert member.ok("GET", f"/keypairs/{kp['id']}")["id"] == kp["id"]
        assert member.ok("GET", "/keypairs/web-release")["id"] == kp["id"]
        assert {k["id"] for k in member.ok("GET", "/keypairs")["items"]} == {kp["id"], team["open"]["id"]}
        assert [k["id"] for k in member.ok("GET", "/keypairs?alias=web-release")["items"]] == [kp["id"]]
        signed = member.ok("POST", f"/keypairs/{kp['alias']}/sign", digest_body(who.encode()))
        check_signed(tmp_path, signed, who.encode())
        assert member.ok("GET", f"/signature-logs?keypair_id={kp['id']}")["items"]
        assert member.ok("GET", "/signature-logs?keypair_alias=web-release")["items"]
        assert member.ok("GET", f"/audit-logs?resource_id={kp['id']}")["items"]
    # Admins see every team's keypairs.
    assert {k["id"] for k in api.ok("GET", "/keypairs")["items"]} == {kp["id"], team["open"]["id"]}
    assert api.ok("GET", f"/keypairs/{kp['id']}/generations")["items"]


def test_everyone_else_gets_404_everywhere(api: Api, account: Account, team: dict[str, Any]) -> None:
    kp, outsider = team["kp"], api.as_(team["outsider"])
    for ref in (kp["id"], kp["alias"]):
        outsider.error("GET", f"/keypairs/{ref}", None, 404, "not_found")
        outsider.error("PATCH", f"/keypairs/{ref}", {"status": "offline"}, 404, "not_found")
        outsider.error("POST", f"/keypairs/{ref}/refresh", None, 404, "not_found")
        outsider.error("GET", f"/keypairs/{ref}/generations", None, 404, "not_found")
        outsider.error("DELETE", f"/keypairs/{ref}", None, 404, "not_found")
    # In lists, and in the logs' keypair filters.
    assert [k["id"] for k in outsider.ok("GET", "/keypairs")["items"]] == [team["open"]["id"]]
    assert [k["id"] for k in outsider.ok("GET", "/keypairs?type=dynamic")["items"]] == [team["open"]["id"]]
    assert outsider.ok("GET", "/keypairs?alias=web-release")["items"] == []
    outsider.error("GET", f"/signature-logs?keypair_id={kp['id']}", None, 404, "not_found")
    outsider.error("GET", "/signature-logs?keypair_alias=web-release", None, 404, "not_found")
    outsider.error("GET", f"/audit-logs?resource_id={kp['id']}", None, 404, "not_found")
    # Signing is refused as for a keypair that does not exist: the refusal's entry does not name it.
    before = {e.sk for e in SignatureLogModel.query(account.id)}
    for ref in (kp["id"], kp["alias"]):
        outsider.error("POST", f"/keypairs/{ref}/sign", digest_body(b"x"), 404, "not_found")
    new = [e for e in SignatureLogModel.query(account.id) if e.sk not in before]
    assert [(e.status, e.error, e.keypair_id, e.key_id) for e in new] == [("failed", "not_found", None, None)] * 2
    # Nothing changed.
    assert api.ok("GET", f"/keypairs/{kp['id']}")["status"] == "online"


def test_only_members_and_admins_create_team_keypairs(api: Api, team: dict[str, Any]) -> None:
    body = {"alias": "outsiders-try", **EC, "team_id": team["team"]["id"]}
    assert api.as_(team["outsider"]).error("POST", "/keypairs", body, 403, "forbidden")["details"]["field"] == (
        "team_id")
    api.as_(team["direct"]).ok("POST", "/keypairs", {**body, "alias": "members-may"}, 201)
    error = api.error("POST", "/keypairs", {**body, "team_id": new_id("team")}, 400, "validation_error")
    assert error["details"]["field"] == "team_id"


def test_leaving_the_team_takes_effect_within_five_seconds(
    api: Api, team: dict[str, Any], clock: FakeMonotonic
) -> None:
    direct, via_group, kp = api.as_(team["direct"]), api.as_(team["via_group"]), team["kp"]
    direct.ok("GET", f"/keypairs/{kp['id']}")
    via_group.ok("GET", f"/keypairs/{kp['id']}")
    api.ok("PATCH", f"/teams/{team['team']['id']}", {"member_ids": []})
    api.ok("PATCH", f"/groups/{team['group']['id']}", {"member_ids": []})
    clock.advance(5.001)
    for member in (direct, via_group):
        member.error("GET", f"/keypairs/{kp['id']}", None, 404, "not_found")
        member.error("POST", f"/keypairs/{kp['id']}/sign", digest_body(b"x"), 404, "not_found")


def test_turning_teams_off_keeps_team_keypairs_to_their_team(api: Api, team: dict[str, Any],
                                                              clock: FakeMonotonic) -> None:
    api.ok("PATCH", "/account", {"teams_enabled": False})
    clock.advance(5.001)
    api.as_(team["outsider"]).error("GET", f"/keypairs/{team['kp']['id']}", None, 404, "not_found")
    api.as_(team["direct"]).ok("GET", f"/keypairs/{team['kp']['id']}")
    api.error("GET", "/teams", None, 409, "teams_disabled")


def test_team_changes_validate_members_and_groups(api: Api, team: dict[str, Any]) -> None:
    team_id = team["team"]["id"]
    for body, field in [({"member_ids": [new_id("usr")]}, "member_ids"), ({"group_ids": [new_id("grp")]}, "group_ids"),
                        ({"name": None}, "name"), ({"profile_ids": []}, "profile_ids")]:
        assert api.error("PATCH", f"/teams/{team_id}", body, 400, "validation_error")["details"]["field"] == field
    renamed = api.ok("PATCH", f"/teams/{team_id}", {"name": "web platform"})
    assert renamed["name"] == "web platform" and renamed["member_ids"] == [team["direct"].user_id]
    listed = api.ok("GET", "/teams")["items"]
    assert [t["id"] for t in listed] == [team_id]


def test_deleting_a_group_takes_it_out_of_its_teams(api: Api, team: dict[str, Any]) -> None:
    api.ok("DELETE", f"/groups/{team['group']['id']}", status=204)
    assert api.ok("GET", f"/teams/{team['team']['id']}")["group_ids"] == []
    api.error("GET", f"/groups/{team['group']['id']}", None, 404, "not_found")
