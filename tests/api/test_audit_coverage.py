"""Every mutating route writes exactly one audit entry per state change (and the sign route its signature log).

`CASES` maps each mutating route of `app.app.routes` to a function that makes valid requests to it and
says which entries each must write. A route missing from the table fails the test, so a new route
cannot ship without its audit entry being checked. To add one: write a case function that prepares
what it needs, makes each request inside `ctx.change()`, and calls `change.expect(...)`.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from asn1crypto import tsp

from tests.support.api import Account, Api

MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
EC_KEYPAIR = {"algorithm": "ECDSA", "curve": "P-256", "storage": "disk"}
Entry = tuple[str, str, str | None]  # (type, action, resource_id)
ANY_TYPE = "*"  # for an entry whose type is not the point (a refusal that names no keypair)


@dataclass
class Change:
    """The log entries one request wrote, and whether the case checked them."""

    audit: list[Any] = field(default_factory=list)
    signatures: list[Any] = field(default_factory=list)
    checked: bool = False

    def expect(self, *audit: Entry, signatures: int = 0) -> None:
        """Exactly these audit entries (in any order) and this many signature-log entries."""
        self.checked = True
        # With a wildcard expected, types are not compared at all (cases use it for one-entry changes).
        wildcard = any(kind == ANY_TYPE for kind, _, _ in audit)
        got = sorted((ANY_TYPE if wildcard else e.type, e.action, e.resource_id) for e in self.audit)
        assert got == sorted(audit), f"audit entries {got}, expected {sorted(audit)}"
        assert len(self.signatures) == signatures, f"{len(self.signatures)} signature-log entries, not {signatures}"
        for entry in self.audit:
            assert entry.outcome in ("success", "failure") and entry.at and entry.actor


@dataclass
class Ctx:
    """What a case works with: the account's admin API and a record of every change made."""

    api: Api
    account: Account
    changes: list[Change] = field(default_factory=list)

    @contextmanager
    def change(self) -> Iterator[Change]:
        """Collect the log entries written by the requests made inside the block."""
        before_audit, before_sig = _log_keys(self.account.id)
        change = Change()
        yield change
        from chalicelib.storage.tables import AuditLogModel, SignatureLogModel

        change.audit = [e for e in AuditLogModel.query(self.account.id, consistent_read=True)
                        if e.sk not in before_audit]
        change.signatures = [e for e in SignatureLogModel.query(self.account.id, consistent_read=True)
                             if e.sk not in before_sig]
        self.changes.append(change)

    def keypair(self, alias: str, kind: str = "static", **extra: Any) -> dict[str, Any]:
        """A keypair made before the change under test."""
        return dict(self.api.ok("POST", "/keypairs", {"alias": alias, "type": kind, **EC_KEYPAIR, **extra}, 201))


def _log_keys(account: str) -> tuple[set[str], set[str]]:
    from chalicelib.storage.tables import AuditLogModel, SignatureLogModel

    return ({e.sk for e in AuditLogModel.query(account, consistent_read=True)},
            {e.sk for e in SignatureLogModel.query(account, consistent_read=True)})


def _digest_body(data: bytes = b"artifact") -> dict[str, str]:
    return {"hash": base64.b64encode(hashlib.sha256(data).digest()).decode(), "hash_algorithm": "SHA-256"}


# -- one function per mutating route ------------------------------------------------------------


def create_keypair(ctx: Ctx) -> None:
    for kind in ("static", "dynamic"):
        with ctx.change() as change:
            kp = ctx.api.ok("POST", "/keypairs", {"alias": f"new-{kind}", "type": kind, **EC_KEYPAIR}, 201)
        change.expect((kind, "generate", kp["id"]))
    with ctx.change() as change:  # refused: nothing changed, nothing logged
        assert ctx.api.call("POST", "/keypairs", {"alias": "new-static", "type": "static",
                                                  **EC_KEYPAIR}).status_code == 409
    change.expect()


def patch_keypair(ctx: Ctx) -> None:
    kp = ctx.keypair("patched", "dynamic")
    for body, action in (({"status": "offline"}, "suspend"), ({"status": "online"}, "unsuspend"),
                         ({"alias": "patched-2"}, "update"), ({"access": "restricted"}, "update"),
                         ({"alias": "patched-3", "status": "offline"}, "update")):
        with ctx.change() as change:
            ctx.api.ok("PATCH", f"/keypairs/{kp['id']}", body)
        change.expect(("dynamic", action, kp["id"]))
    with ctx.change() as change:  # no state change, no entry
        ctx.api.ok("PATCH", f"/keypairs/{kp['id']}", {"alias": "patched-3", "status": "offline"})
    change.expect()


def delete_keypair(ctx: Ctx) -> None:
    kp = ctx.keypair("doomed")
    with ctx.change() as change:
        ctx.api.ok("DELETE", f"/keypairs/{kp['id']}", status=204)
    change.expect(("static", "delete", kp["id"]))
    with ctx.change() as change:
        assert ctx.api.call("DELETE", f"/keypairs/{kp['id']}").status_code == 404
    change.expect()


def refresh_keypair(ctx: Ctx) -> None:
    kp = ctx.keypair("refreshed", "dynamic")
    with ctx.change() as change:
        ctx.api.ok("POST", f"/keypairs/{kp['id']}/refresh")
    change.expect(("dynamic", "refresh", kp["id"]))
    static = ctx.keypair("not-refreshed")
    with ctx.change() as change:
        assert ctx.api.call("POST", f"/keypairs/{static['id']}/refresh").status_code == 409
    change.expect()


def sign(ctx: Ctx) -> None:
    """Every attempt writes one signature-log entry; a refusal also one sign_denied audit entry."""
    kp = ctx.keypair("signer")
    with ctx.change() as change:
        signed = ctx.api.ok("POST", f"/keypairs/{kp['id']}/sign", _digest_body())
    change.expect(signatures=1)
    assert change.signatures[0].id == signed["signature_log_id"] and change.signatures[0].status == "success"
    ctx.api.ok("PATCH", f"/keypairs/{kp['id']}", {"status": "offline"})
    with ctx.change() as change:
        refused = ctx.api.call("POST", f"/keypairs/{kp['id']}/sign", _digest_body())
        assert refused.status_code == 403
    change.expect(("static", "sign_denied", kp["id"]), signatures=1)
    assert change.signatures[0].status == "failed" and change.signatures[0].error == "keypair_offline"
    with ctx.change() as change:
        assert ctx.api.call("POST", "/keypairs/no-such-alias/sign", _digest_body()).status_code == 404
    change.expect((ANY_TYPE, "sign_denied", None), signatures=1)


def timestamp(ctx: Ctx) -> None:
    """Time-stamps are counted (services/timestamping.py StampCounter), never logged one by one."""
    query = tsp.TimeStampReq({
        "version": 1,
        "message_imprint": {"hash_algorithm": {"algorithm": "sha256"}, "hashed_message": hashlib.sha256(b"x").digest()},
        "cert_req": True,
    }).dump()
    with ctx.change() as change:
        response = ctx.api.client.http.post("/api/v1/timestamp", body=query, headers={
            "X-API-Key": ctx.account.api_key, "Content-Type": "application/timestamp-query", "Accept": "*/*"})
        assert response.status_code == 200
    change.expect()


def patch_account(ctx: Ctx) -> None:
    with ctx.change() as change:
        ctx.api.ok("PATCH", "/account", {"public_tsa": True})
    change.expect(("account", "update", ctx.account.id))
    with ctx.change() as change:
        ctx.api.ok("PATCH", "/account", {"public_tsa": True})
    change.expect()


def create_api_key(ctx: Ctx) -> None:
    with ctx.change() as change:
        key = ctx.api.ok("POST", f"/users/{ctx.account.user_id}/api-keys", {"name": "ci"}, 201)
    change.expect(("api_key", "create", key["id"]))


def revoke_api_key(ctx: Ctx) -> None:
    key = ctx.api.ok("POST", f"/users/{ctx.account.user_id}/api-keys", {"name": "old"}, 201)
    with ctx.change() as change:
        ctx.api.ok("DELETE", f"/users/{ctx.account.user_id}/api-keys/{key['id']}", status=204)
    change.expect(("api_key", "revoke", key["id"]))
    with ctx.change() as change:  # revoking again is a no-op: no second entry
        ctx.api.ok("DELETE", f"/users/{ctx.account.user_id}/api-keys/{key['id']}", status=204)
    change.expect()


def create_user(ctx: Ctx) -> None:
    with ctx.change() as change:
        user = ctx.api.ok("POST", "/users", {"name": "dev", "roles": ["developer"]}, 201)
    change.expect(("user", "create", user["id"]))
    with ctx.change() as change:  # refused (bad role): nothing written
        assert ctx.api.call("POST", "/users", {"name": "x", "roles": ["king"]}).status_code == 400
    change.expect()


def patch_user(ctx: Ctx) -> None:
    user = ctx.api.ok("POST", "/users", {"name": "dev", "roles": ["developer"]}, 201)
    with ctx.change() as change:
        ctx.api.ok("PATCH", f"/users/{user['id']}", {"roles": ["lead"], "email": "dev@example.com"})
    change.expect(("user", "update", user["id"]))
    with ctx.change() as change:
        ctx.api.ok("PATCH", f"/users/{user['id']}", {"roles": ["lead"]})
    change.expect()
    with ctx.change() as change:  # the last admin keeps the role: refused, nothing written
        assert ctx.api.call("PATCH", f"/users/{ctx.account.user_id}", {"roles": ["lead"]}).status_code == 409
    change.expect()


def delete_user(ctx: Ctx) -> None:
    """One entry for the user; its revoked keys are listed in it."""
    user = ctx.api.ok("POST", "/users", {"name": "leaver", "roles": ["developer"]}, 201)
    ctx.api.ok("POST", f"/users/{user['id']}/api-keys", {"name": "k"}, 201)
    with ctx.change() as change:
        ctx.api.ok("DELETE", f"/users/{user['id']}", status=204)
    change.expect(("user", "delete", user["id"]))
    assert len(change.audit[0].details["revoked_api_keys"]) == 1
    with ctx.change() as change:
        assert ctx.api.call("DELETE", f"/users/{user['id']}").status_code == 404
    change.expect()


def create_group(ctx: Ctx) -> None:
    with ctx.change() as change:
        group = ctx.api.ok("POST", "/groups", {"name": "release", "member_ids": [ctx.account.user_id]}, 201)
    change.expect(("group", "create", group["id"]))


def patch_group(ctx: Ctx) -> None:
    group = ctx.api.ok("POST", "/groups", {"name": "release"}, 201)
    with ctx.change() as change:
        ctx.api.ok("PATCH", f"/groups/{group['id']}", {"member_ids": [ctx.account.user_id]})
    change.expect(("group", "update", group["id"]))


def delete_group(ctx: Ctx) -> None:
    group = ctx.api.ok("POST", "/groups", {"name": "release"}, 201)
    with ctx.change() as change:
        ctx.api.ok("DELETE", f"/groups/{group['id']}", status=204)
    change.expect(("group", "delete", group["id"]))


def _teams_on(ctx: Ctx) -> None:
    ctx.api.ok("PATCH", "/account", {"teams_enabled": True})


def create_team(ctx: Ctx) -> None:
    with ctx.change() as change:  # teams off: refused, nothing written
        assert ctx.api.call("POST", "/teams", {"name": "web"}).status_code == 409
    change.expect()
    _teams_on(ctx)
    with ctx.change() as change:
        team = ctx.api.ok("POST", "/teams", {"name": "web", "member_ids": [ctx.account.user_id]}, 201)
    change.expect(("team", "create", team["id"]))


def patch_team(ctx: Ctx) -> None:
    _teams_on(ctx)
    team = ctx.api.ok("POST", "/teams", {"name": "web"}, 201)
    with ctx.change() as change:
        ctx.api.ok("PATCH", f"/teams/{team['id']}", {"name": "web-2"})
    change.expect(("team", "update", team["id"]))


def delete_team(ctx: Ctx) -> None:
    _teams_on(ctx)
    team = ctx.api.ok("POST", "/teams", {"name": "web"}, 201)
    with ctx.change() as change:
        ctx.api.ok("DELETE", f"/teams/{team['id']}", status=204)
    change.expect(("team", "delete", team["id"]))


PROFILE = {"name": "ec", "mode": "fixed", "algorithm": "ECDSA", "curve": "P-256"}


def create_profile(ctx: Ctx) -> None:
    with ctx.change() as change:
        profile = ctx.api.ok("POST", "/keypair-profiles", PROFILE, 201)
    change.expect(("profile", "create", profile["id"]))


def patch_profile(ctx: Ctx) -> None:
    profile = ctx.api.ok("POST", "/keypair-profiles", PROFILE, 201)
    with ctx.change() as change:
        ctx.api.ok("PATCH", f"/keypair-profiles/{profile['id']}", {"mode": "customizable"})
    change.expect(("profile", "update", profile["id"]))


def delete_profile(ctx: Ctx) -> None:
    profile = ctx.api.ok("POST", "/keypair-profiles", PROFILE, 201)
    with ctx.change() as change:
        ctx.api.ok("DELETE", f"/keypair-profiles/{profile['id']}", status=204)
    change.expect(("profile", "delete", profile["id"]))


def _window_body(ctx: Ctx) -> dict[str, Any]:
    from datetime import timedelta

    from chalicelib.clock import rfc3339, utc_now

    kp = ctx.keypair("offline-one", status="offline")
    now = utc_now()
    return {"name": "release 1.0", "keypair_ids": [kp["id"]], "starts_at": rfc3339(now - timedelta(minutes=1)),
            "ends_at": rfc3339(now + timedelta(hours=1)), "max_signatures": 3}


def create_window(ctx: Ctx) -> None:
    body = _window_body(ctx)
    with ctx.change() as change:
        window = ctx.api.ok("POST", "/release-windows", body, 201)
    change.expect(("release_window", "create", window["id"]))
    with ctx.change() as change:  # a windowed signature: its entry, no audit entry
        ctx.api.ok("POST", f"/keypairs/{body['keypair_ids'][0]}/sign", _digest_body())
    change.expect(signatures=1)


def patch_window(ctx: Ctx) -> None:
    window = ctx.api.ok("POST", "/release-windows", _window_body(ctx), 201)
    with ctx.change() as change:
        ctx.api.ok("PATCH", f"/release-windows/{window['id']}", {"max_signatures": 10})
    change.expect(("release_window", "update", window["id"]))


def delete_window(ctx: Ctx) -> None:
    window = ctx.api.ok("POST", "/release-windows", _window_body(ctx), 201)
    with ctx.change() as change:
        ctx.api.ok("DELETE", f"/release-windows/{window['id']}", status=204)
    change.expect(("release_window", "delete", window["id"]))


CASES: dict[tuple[str, str], Callable[[Ctx], None]] = {
    ("POST", "/api/v1/keypairs"): create_keypair,
    ("PATCH", "/api/v1/keypairs/{keypair}"): patch_keypair,
    ("DELETE", "/api/v1/keypairs/{keypair}"): delete_keypair,
    ("POST", "/api/v1/keypairs/{keypair}/refresh"): refresh_keypair,
    ("POST", "/api/v1/keypairs/{keypair}/sign"): sign,
    ("POST", "/api/v1/timestamp"): timestamp,
    ("PATCH", "/api/v1/account"): patch_account,
    ("POST", "/api/v1/users/{user_id}/api-keys"): create_api_key,
    ("DELETE", "/api/v1/users/{user_id}/api-keys/{key_id}"): revoke_api_key,
    ("POST", "/api/v1/users"): create_user,
    ("PATCH", "/api/v1/users/{user_id}"): patch_user,
    ("DELETE", "/api/v1/users/{user_id}"): delete_user,
    ("POST", "/api/v1/groups"): create_group,
    ("PATCH", "/api/v1/groups/{group_id}"): patch_group,
    ("DELETE", "/api/v1/groups/{group_id}"): delete_group,
    ("POST", "/api/v1/teams"): create_team,
    ("PATCH", "/api/v1/teams/{team_id}"): patch_team,
    ("DELETE", "/api/v1/teams/{team_id}"): delete_team,
    ("POST", "/api/v1/keypair-profiles"): create_profile,
    ("PATCH", "/api/v1/keypair-profiles/{profile_id}"): patch_profile,
    ("DELETE", "/api/v1/keypair-profiles/{profile_id}"): delete_profile,
    ("POST", "/api/v1/release-windows"): create_window,
    ("PATCH", "/api/v1/release-windows/{window_id}"): patch_window,
    ("DELETE", "/api/v1/release-windows/{window_id}"): delete_window,
}


def mutating_routes() -> list[tuple[str, str]]:
    from app import app

    return sorted((method, path) for path, methods in app.routes.items() for method in methods if method in MUTATING)


def test_every_mutating_route_has_a_case() -> None:
    routes = mutating_routes()
    missing = [f"{method} {path}" for method, path in routes if (method, path) not in CASES]
    assert not missing, "mutating routes without an audit-coverage case (add them to CASES): " + ", ".join(missing)
    stale = [f"{method} {path}" for method, path in CASES if (method, path) not in routes]
    assert not stale, "CASES names routes that no longer exist: " + ", ".join(stale)


@pytest.mark.parametrize("route", mutating_routes(), ids=lambda r: f"{r[0]} {r[1]}")
def test_each_state_change_writes_exactly_one_audit_entry(
    client: Any, account: Account, route: tuple[str, str]
) -> None:
    case = CASES.get(route)
    assert case is not None, f"{route[0]} {route[1]} has no audit-coverage case: add one to CASES"
    ctx = Ctx(Api(client, account), account)
    case(ctx)
    assert ctx.changes and all(c.checked for c in ctx.changes), "every change must state what it logs"


def test_entries_written_by_the_cases_are_readable_through_the_api(client: Any, account: Account) -> None:
    ctx = Ctx(Api(client, account), account)
    create_keypair(ctx)
    sign(ctx)
    written = {e.id for c in ctx.changes for e in c.audit}
    listed = json.loads(ctx.api.call("GET", "/audit-logs?limit=500").body)["items"]
    assert written <= {e["id"] for e in listed}
    signed = {e.id for c in ctx.changes for e in c.signatures}
    assert signed == {e["id"] for e in json.loads(ctx.api.call("GET", "/signature-logs").body)["items"]}
