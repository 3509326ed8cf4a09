"""Identity writes under faults: a failed transaction leaves nothing half-made.

Each write below (users, keys, groups, teams, profiles, windows, account settings, a team keypair with a
profile) is one TransactWriteItems holding the change and its audit entry. The transaction is made to
fail the way AWS and networks fail (tests/support/faults.py); the answer is the matching 4xx/5xx and
every table the write touches reads exactly as before. A windowed signature whose write fails returns no
signature and leaves the window's count as it was.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.clock import rfc3339
from chalicelib.storage.connection import client as dynamodb
from chalicelib.storage.tables import (
    AccountModel,
    ApiKeyModel,
    AuditLogModel,
    GroupModel,
    KeypairModel,
    ProfileModel,
    ReleaseWindowModel,
    SignatureLogModel,
    TeamModel,
    UserModel,
)
from tests.support.api import Api, digest_body
from tests.support.faults import FAILURES, STATUS, failing

EC = {"type": "static", "algorithm": "ECDSA", "curve": "P-256", "storage": "disk"}
Request = tuple[str, str, Any]


def snapshot(account: str) -> dict[str, Any]:
    """Every item of the account in the tables an identity write can touch (read in the test only)."""

    def rows(items: Any) -> list[str]:
        return sorted(json.dumps(item.serialize(), sort_keys=True, default=str) for item in items)

    return {
        "account": rows([AccountModel.get(account, consistent_read=True)]),
        "users": rows(UserModel.query(account, consistent_read=True)),
        "api_keys": rows(ApiKeyModel.scan(ApiKeyModel.account == account, consistent_read=True)),
        "groups": rows(GroupModel.query(account, consistent_read=True)),
        "teams": rows(TeamModel.query(account, consistent_read=True)),
        "profiles": rows(ProfileModel.query(account, consistent_read=True)),
        "windows": rows(ReleaseWindowModel.query(account, consistent_read=True)),
        "keypairs": rows(KeypairModel.query(account, consistent_read=True)),
        "audit": sorted(e.sk for e in AuditLogModel.query(account, consistent_read=True)),
        "signatures": sorted(e.sk for e in SignatureLogModel.query(account, consistent_read=True)),
    }


def _user_in_everything(api: Api) -> str:
    user = api.new_user("leaver", roles=("developer",)).user_id
    api.ok("POST", f"/users/{user}/api-keys", {"name": "second"}, 201)
    api.ok("POST", "/groups", {"name": "g", "member_ids": [user]}, 201)
    api.ok("POST", "/teams", {"name": "t", "member_ids": [user]}, 201)
    return user


def _window(api: Api) -> dict[str, Any]:
    kp = api.ok("POST", "/keypairs", {"alias": "offline", **EC, "status": "offline"}, 201)
    now = datetime.now(UTC)
    return dict(api.ok("POST", "/release-windows", {
        "name": "w", "keypair_ids": [kp["id"]], "starts_at": rfc3339(now - timedelta(minutes=1)),
        "ends_at": rfc3339(now + timedelta(hours=1)), "max_signatures": 5}, 201))


def _group_in_team(api: Api) -> str:
    group = api.ok("POST", "/groups", {"name": "g"}, 201)["id"]
    api.ok("POST", "/teams", {"name": "t", "group_ids": [group]}, 201)
    return str(group)


def _team_with_profile(api: Api) -> str:
    team = api.ok("POST", "/teams", {"name": "t"}, 201)["id"]
    api.ok("POST", "/keypair-profiles", {"name": "p", "mode": "fixed", "algorithm": "EdDSA", "team_ids": [team]}, 201)
    return str(team)


def _team_keypair(api: Api) -> Request:
    team = _team_with_profile(api)
    profile = api.ok("GET", f"/teams/{team}")["profile_ids"][0]
    return "POST", "/keypairs", {"alias": "team-kp", "type": "static", "team_id": team, "profile_id": profile}


WRITES: dict[str, Callable[[Api], Request]] = {
    "create user": lambda api: ("POST", "/users", {"name": "new", "roles": ["developer"]}),
    "change user": lambda api: ("PATCH", f"/users/{api.new_user('u', roles=('developer',)).user_id}",
                                {"roles": ["lead"]}),
    "delete user (keys, group, team)": lambda api: ("DELETE", f"/users/{_user_in_everything(api)}", None),
    "issue key": lambda api: ("POST", f"/users/{api.account.user_id}/api-keys", {"name": "k"}),
    "create group": lambda api: ("POST", "/groups", {"name": "g", "member_ids": [api.account.user_id]}),
    "change group": lambda api: ("PATCH", f"/groups/{api.ok('POST', '/groups', {'name': 'g'}, 201)['id']}",
                                 {"member_ids": [api.account.user_id]}),
    "delete group (in a team)": lambda api: ("DELETE", f"/groups/{_group_in_team(api)}", None),
    "create team": lambda api: ("POST", "/teams", {"name": "t"}),
    "delete team (a profile allocated)": lambda api: ("DELETE", f"/teams/{_team_with_profile(api)}", None),
    "create profile": lambda api: ("POST", "/keypair-profiles", {"name": "p", "mode": "customizable"}),
    "create window": lambda api: ("POST", "/release-windows", {**{k: v for k, v in _window(api).items() if k in (
        "keypair_ids", "starts_at", "ends_at")}, "name": "second"}),
    "change window": lambda api: ("PATCH", f"/release-windows/{_window(api)['id']}", {"max_signatures": 9}),
    "delete window": lambda api: ("DELETE", f"/release-windows/{_window(api)['id']}", None),
    "account settings": lambda api: ("PATCH", "/account", {"require_keypair_profile": True}),
    "team keypair with a profile": _team_keypair,
}
# A failed condition is a refusal of the change (409), not an outage; the other classes as the sign path has them.
WANT = {**STATUS, "conditional": 409}


@pytest.mark.parametrize("failure", sorted(FAILURES))
@pytest.mark.parametrize("write", sorted(WRITES))
def test_a_failed_transaction_leaves_nothing_half_made(api: Api, write: str, failure: str) -> None:
    api.ok("PATCH", "/account", {"teams_enabled": True})
    method, path, body = WRITES[write](api)
    before = snapshot(api.account.id)
    with failing(dynamodb(), "TransactWriteItems", failure, times=1) as failed:
        response = api.call(method, path, body)
    assert failed == ["TransactWriteItems"], "the fault was not reached"
    assert response.status_code == WANT[failure], response.body[:300]
    assert json.loads(response.body)["error"]["code"]
    assert snapshot(api.account.id) == before
    # The same request then succeeds: nothing was left behind to trip over.
    assert api.call(method, path, body).status_code < 300


@pytest.mark.parametrize("failure", sorted(f for f in FAILURES if f != "conditional"))
def test_a_failed_windowed_signature_counts_nothing_and_returns_no_signature(api: Api, failure: str) -> None:
    window = _window(api)
    kp = window["keypair_ids"][0]
    with failing(dynamodb(), "TransactWriteItems", failure, times=1) as failed:
        response = api.call("POST", f"/keypairs/{kp}/sign", digest_body(b"x"))
    assert failed == ["TransactWriteItems"]
    assert response.status_code == STATUS[failure] and b'"signature"' not in response.body
    assert api.ok("GET", f"/release-windows/{window['id']}")["signatures_used"] == 0
    entries = [e for e in SignatureLogModel.query(api.account.id) if e.keypair_id == kp]
    assert [(e.status, e.signature) for e in entries] == [("failed", None)]  # the refusal is logged
    assert api.call("POST", f"/keypairs/{kp}/sign", digest_body(b"x")).status_code == 200
    assert api.ok("GET", f"/release-windows/{window['id']}")["signatures_used"] == 1
