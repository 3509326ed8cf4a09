"""The authorisation matrix: every route of `app.routes` by every caller → the status it must get.

Callers: one user per role of account A (admin, lead, developer, auditor), a request with no key, and
account B's admin. The expected status comes from one table, `ROUTES` — one line per route: the
permission it needs, the status of an allowed call, and how to make a valid request (objects of A are
made fresh for every cell, so a DELETE in one cell leaves the next cell its own object). From that line:

- a role holding the permission gets the allowed status, any other role 403;
- no key gets 401 (public routes answer everyone);
- B's admin gets 404 for anything that names an object of A, and otherwise acts in B's own account.

A route missing from `ROUTES` fails `test_every_route_is_in_the_table`: adding a route is adding a line.
The cross-account tests below are generated from the same routes: guessed ids, other accounts' tokens.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from asn1crypto import tsp

from chalicelib.clock import rfc3339, utc_now
from chalicelib.domain.identity import ROLES
from chalicelib.ids import new_id, ulid
from tests.support.api import Account, Api, digest_body, make_account

PUBLIC = "public"  # a route that needs no key
ANYONE = None  # a route any authenticated caller may use
CALLERS = ("admin", "lead", "developer", "auditor", "no key", "other account")
EC = {"type": "static", "algorithm": "ECDSA", "curve": "P-256", "storage": "disk"}


class World:
    """Accounts A and B (teams on in both), a user with a key for each role of A, and fresh objects of A."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.a, self.b = make_account(), make_account()
        self.admin = Api(client, self.a)
        for account in (self.a, self.b):
            Api(client, account).ok("PATCH", "/account", {"teams_enabled": True})
        self.callers: dict[str, Account | None] = {"admin": self.a, "no key": None, "other account": self.b}
        for role in ("lead", "developer", "auditor"):
            self.callers[role] = self.admin.new_user(role, roles=(role,))
        self.count = 0
        # One signature, then a checkpoint of both accounts' logs (a minute ahead, past the settling time),
        # so the transparency routes have entries to prove and checkpoints to serve.
        self.admin.ok("POST", f"/keypairs/{self.kp()}/sign", digest_body(b"logged"))
        other = Api(client, self.b).ok("POST", "/keypairs", {"alias": self.fresh("kp"), **EC}, 201)
        Api(client, self.b).ok("POST", f"/keypairs/{other['id']}/sign", digest_body(b"logged"))
        self.audit_entry = self.admin.ok("GET", "/audit-logs?limit=1")["items"][0]["id"]
        self.signature_entry = self.admin.ok("GET", "/signature-logs?limit=1")["items"][0]["id"]
        from chalicelib.services.container import get_services

        for account in (self.a, self.b):
            get_services().checkpointer.run_account(account.id, utc_now() + timedelta(minutes=2))

    def fresh(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}-{self.count}"

    def kp(self, **extra: Any) -> str:
        body = {"alias": self.fresh("kp"), **EC, **extra}
        return str(self.admin.ok("POST", "/keypairs", body, 201)["id"])

    def user(self) -> str:
        return str(self.admin.ok("POST", "/users", {"name": self.fresh("user"), "roles": ["developer"]}, 201)["id"])

    def key(self) -> str:
        user = self.user()
        return f"{user}/api-keys/{self.admin.ok('POST', f'/users/{user}/api-keys', {}, 201)['id']}"

    def group(self) -> str:
        return str(self.admin.ok("POST", "/groups", {"name": self.fresh("group")}, 201)["id"])

    def team(self) -> str:
        return str(self.admin.ok("POST", "/teams", {"name": self.fresh("team")}, 201)["id"])

    def profile(self) -> str:
        body = {"name": self.fresh("profile"), "mode": "customizable", "algorithm": "EdDSA"}
        return str(self.admin.ok("POST", "/keypair-profiles", body, 201)["id"])

    def window_body(self) -> dict[str, Any]:
        now = utc_now()
        return {"name": self.fresh("window"), "keypair_ids": [self.kp(status="offline")],
                "starts_at": rfc3339(now), "ends_at": rfc3339(now + timedelta(hours=1))}

    def window(self) -> str:
        return str(self.admin.ok("POST", "/release-windows", self.window_body(), 201)["id"])


Make = Callable[[World], tuple[str, Any]]


@dataclass(frozen=True)
class Rule:
    """One route's line: who may call it, what an allowed call answers, how to make one.

    `other`: what B's admin gets when the request names no object of A (default: `ok`, in B's account).
    """

    permission: str | None
    ok: int
    make: Make
    names_object: bool = True
    other: int | None = None
    content_type: str = "application/json"


def _tsa_query(w: World) -> tuple[str, Any]:
    imprint = {"hash_algorithm": {"algorithm": "sha256"}, "hashed_message": hashlib.sha256(b"x").digest()}
    return "/api/v1/timestamp", tsp.TimeStampReq({"version": 1, "message_imprint": imprint}).dump()


V1 = "/api/v1"
ROUTES: dict[tuple[str, str], Rule] = {
    ("GET", "/api/v1/health"): Rule(PUBLIC, 200, lambda w: (f"{V1}/health", None), names_object=False),
    ("GET", "/api/v1/openapi.json"): Rule(PUBLIC, 200, lambda w: (f"{V1}/openapi.json", None), names_object=False),
    ("GET", "/console"): Rule(PUBLIC, 302, lambda w: ("/console", None), names_object=False),  # to /console/
    ("GET", "/console/{asset}"): Rule(PUBLIC, 200, lambda w: ("/console/app.js", None), names_object=False),
    ("GET", "/api/v1/me"): Rule(ANYONE, 200, lambda w: (f"{V1}/me", None), names_object=False),
    ("GET", "/api/v1/ca"): Rule(ANYONE, 200, lambda w: (f"{V1}/ca", None), names_object=False),
    ("POST", "/api/v1/timestamp"): Rule(ANYONE, 200, _tsa_query, names_object=False,
                                        content_type="application/timestamp-query"),
    ("GET", "/api/v1/account"): Rule("manage_account", 200, lambda w: (f"{V1}/account", None), names_object=False),
    ("PATCH", "/api/v1/account"): Rule("manage_account", 200, lambda w: (f"{V1}/account", {"public_tsa": False}),
                                       names_object=False),
    ("POST", "/api/v1/keypairs"): Rule("generate_keypair", 201, lambda w: (
        f"{V1}/keypairs", {"alias": w.fresh("new"), **EC}), names_object=False),
    ("GET", "/api/v1/keypairs"): Rule("view_keypair", 200, lambda w: (f"{V1}/keypairs", None), names_object=False),
    ("GET", "/api/v1/keypairs/{keypair}"): Rule("view_keypair", 200, lambda w: (f"{V1}/keypairs/{w.kp()}", None)),
    ("PATCH", "/api/v1/keypairs/{keypair}"): Rule("manage_keypair", 200, lambda w: (
        f"{V1}/keypairs/{w.kp()}", {"status": "offline"})),
    ("DELETE", "/api/v1/keypairs/{keypair}"): Rule("manage_keypair", 204, lambda w: (
        f"{V1}/keypairs/{w.kp()}", None)),
    ("GET", "/api/v1/keypairs/{keypair}/generations"): Rule("view_keypair", 200, lambda w: (
        f"{V1}/keypairs/{w.kp()}/generations", None)),
    ("POST", "/api/v1/keypairs/{keypair}/refresh"): Rule("manage_keypair", 200, lambda w: (
        f"{V1}/keypairs/{w.kp(type='dynamic')}/refresh", None)),
    ("POST", "/api/v1/keypairs/{keypair}/sign"): Rule("sign", 200, lambda w: (
        f"{V1}/keypairs/{w.kp()}/sign", digest_body(b"matrix"))),
    ("GET", "/api/v1/audit-logs"): Rule("view_audit_log", 200, lambda w: (f"{V1}/audit-logs", None),
                                        names_object=False),
    ("GET", "/api/v1/signature-logs"): Rule("view_audit_log", 200, lambda w: (f"{V1}/signature-logs", None),
                                            names_object=False),
    ("GET", "/api/v1/audit-logs/{entry_id}"): Rule("view_audit_log", 200, lambda w: (
        f"{V1}/audit-logs/{w.audit_entry}", None)),
    ("GET", "/api/v1/signature-logs/{entry_id}"): Rule("view_audit_log", 200, lambda w: (
        f"{V1}/signature-logs/{w.signature_entry}", None)),
    ("GET", "/api/v1/audit-logs/checkpoint"): Rule("view_audit_log", 200, lambda w: (
        f"{V1}/audit-logs/checkpoint", None), names_object=False),
    ("GET", "/api/v1/signature-logs/checkpoint"): Rule("view_audit_log", 200, lambda w: (
        f"{V1}/signature-logs/checkpoint", None), names_object=False),
    ("GET", "/api/v1/audit-logs/{entry_id}/proof"): Rule("view_audit_log", 200, lambda w: (
        f"{V1}/audit-logs/{w.audit_entry}/proof", None)),
    ("GET", "/api/v1/signature-logs/{entry_id}/proof"): Rule("view_audit_log", 200, lambda w: (
        f"{V1}/signature-logs/{w.signature_entry}/proof", None)),
    ("GET", "/api/v1/audit-logs/consistency"): Rule("view_audit_log", 200, lambda w: (
        f"{V1}/audit-logs/consistency?from=1", None), names_object=False),
    ("GET", "/api/v1/signature-logs/consistency"): Rule("view_audit_log", 200, lambda w: (
        f"{V1}/signature-logs/consistency?from=1", None), names_object=False),
    ("GET", "/api/v1/keypairs/{keypair}/generations/{generation}"): Rule("view_keypair", 200, lambda w: (
        f"{V1}/keypairs/{w.kp()}/generations/1", None)),
    # Public trust material: anyone, with or without a key, of any account.
    ("GET", "/api/v1/trust/{account_id}"): Rule(PUBLIC, 200, lambda w: (f"{V1}/trust/{w.a.id}", None)),
    ("GET", "/api/v1/trust/{account_id}/{certificate}"): Rule(PUBLIC, 200, lambda w: (
        f"{V1}/trust/{w.a.id}/tsa.cer", None)),
    ("POST", "/api/v1/users"): Rule("manage_users", 201, lambda w: (
        f"{V1}/users", {"name": w.fresh("u"), "roles": ["developer"]}), names_object=False),
    ("GET", "/api/v1/users"): Rule("manage_users", 200, lambda w: (f"{V1}/users", None), names_object=False),
    ("GET", "/api/v1/users/{user_id}"): Rule("manage_users", 200, lambda w: (f"{V1}/users/{w.user()}", None)),
    ("PATCH", "/api/v1/users/{user_id}"): Rule("manage_users", 200, lambda w: (
        f"{V1}/users/{w.user()}", {"roles": ["auditor"]})),
    ("DELETE", "/api/v1/users/{user_id}"): Rule("manage_users", 204, lambda w: (f"{V1}/users/{w.user()}", None)),
    ("POST", "/api/v1/users/{user_id}/api-keys"): Rule("manage_users", 201, lambda w: (
        f"{V1}/users/{w.user()}/api-keys", {"name": "ci"})),
    ("GET", "/api/v1/users/{user_id}/api-keys"): Rule("manage_users", 200, lambda w: (
        f"{V1}/users/{w.user()}/api-keys", None)),
    ("DELETE", "/api/v1/users/{user_id}/api-keys/{key_id}"): Rule("manage_users", 204, lambda w: (
        f"{V1}/users/{w.key()}", None)),
    ("POST", "/api/v1/groups"): Rule("manage_users", 201, lambda w: (f"{V1}/groups", {"name": w.fresh("g")}),
                                     names_object=False),
    ("GET", "/api/v1/groups"): Rule("view_keypair", 200, lambda w: (f"{V1}/groups", None), names_object=False),
    ("GET", "/api/v1/groups/{group_id}"): Rule("view_keypair", 200, lambda w: (f"{V1}/groups/{w.group()}", None)),
    ("PATCH", "/api/v1/groups/{group_id}"): Rule("manage_users", 200, lambda w: (
        f"{V1}/groups/{w.group()}", {"name": "renamed"})),
    ("DELETE", "/api/v1/groups/{group_id}"): Rule("manage_users", 204, lambda w: (f"{V1}/groups/{w.group()}", None)),
    ("POST", "/api/v1/teams"): Rule("manage_teams", 201, lambda w: (f"{V1}/teams", {"name": w.fresh("t")}),
                                    names_object=False),
    ("GET", "/api/v1/teams"): Rule("view_keypair", 200, lambda w: (f"{V1}/teams", None), names_object=False),
    ("GET", "/api/v1/teams/{team_id}"): Rule("view_keypair", 200, lambda w: (f"{V1}/teams/{w.team()}", None)),
    ("PATCH", "/api/v1/teams/{team_id}"): Rule("manage_teams", 200, lambda w: (
        f"{V1}/teams/{w.team()}", {"name": "renamed"})),
    ("DELETE", "/api/v1/teams/{team_id}"): Rule("manage_teams", 204, lambda w: (f"{V1}/teams/{w.team()}", None)),
    ("POST", "/api/v1/keypair-profiles"): Rule("manage_profiles", 201, lambda w: (
        f"{V1}/keypair-profiles", {"name": w.fresh("p"), "mode": "fixed", "algorithm": "EdDSA"}), names_object=False),
    ("GET", "/api/v1/keypair-profiles"): Rule("view_keypair", 200, lambda w: (f"{V1}/keypair-profiles", None),
                                              names_object=False),
    ("GET", "/api/v1/keypair-profiles/{profile_id}"): Rule("view_keypair", 200, lambda w: (
        f"{V1}/keypair-profiles/{w.profile()}", None)),
    ("PATCH", "/api/v1/keypair-profiles/{profile_id}"): Rule("manage_profiles", 200, lambda w: (
        f"{V1}/keypair-profiles/{w.profile()}", {"mode": "fixed"})),
    ("DELETE", "/api/v1/keypair-profiles/{profile_id}"): Rule("manage_profiles", 204, lambda w: (
        f"{V1}/keypair-profiles/{w.profile()}", None)),
    # B's admin names A's keypair in the body: no such keypair in B.
    ("POST", "/api/v1/release-windows"): Rule("manage_releases", 201, lambda w: (
        f"{V1}/release-windows", w.window_body()), names_object=False, other=400),
    ("GET", "/api/v1/release-windows"): Rule("view_keypair", 200, lambda w: (f"{V1}/release-windows", None),
                                             names_object=False),
    ("GET", "/api/v1/release-windows/{window_id}"): Rule("view_keypair", 200, lambda w: (
        f"{V1}/release-windows/{w.window()}", None)),
    ("PATCH", "/api/v1/release-windows/{window_id}"): Rule("manage_releases", 200, lambda w: (
        f"{V1}/release-windows/{w.window()}", {"max_signatures": 10})),
    ("DELETE", "/api/v1/release-windows/{window_id}"): Rule("manage_releases", 204, lambda w: (
        f"{V1}/release-windows/{w.window()}", None)),
}


def app_routes() -> list[tuple[str, str]]:
    from app import app

    return sorted((method, path) for path, methods in app.routes.items() for method in methods)


def expected(rule: Rule, caller: str) -> int:
    """The status the table says `caller` gets."""
    if rule.permission == PUBLIC:
        return rule.ok
    if caller == "no key":
        return 401
    if caller == "other account":
        return 404 if rule.names_object else (rule.other or rule.ok)
    if rule.permission is ANYONE or rule.permission in ROLES[caller]:
        return rule.ok
    return 403


@pytest.fixture(scope="module")
def world(aws: Any) -> Iterator[World]:
    from chalice.test import Client

    from app import app

    with Client(app, stage_name="local") as client:
        yield World(client)


def send(w: World, method: str, path: str, body: Any, caller: Account | None, content_type: str) -> Any:
    headers = {"Content-Type": content_type, "Accept": "*/*"}
    if caller is not None:
        headers["X-API-Key"] = caller.api_key
    raw = body if isinstance(body, bytes) or body is None else json.dumps(body)
    fn = getattr(w.client.http, method.lower())
    return fn(path, headers=headers, body=raw) if raw is not None else fn(path, headers=headers)


def test_every_route_is_in_the_table() -> None:
    routes = app_routes()
    missing = [f"{m} {p}" for m, p in routes if (m, p) not in ROUTES]
    assert not missing, "routes without a line in the authorisation matrix (add one to ROUTES): " + ", ".join(missing)
    stale = [f"{m} {p}" for m, p in ROUTES if (m, p) not in routes]
    assert not stale, "ROUTES names routes that no longer exist: " + ", ".join(stale)


def test_the_openapi_document_states_the_permissions_this_table_proves() -> None:
    """The reference tells users which permission each route needs: the one the matrix checks by calling it."""
    from chalicelib.api.openapi_spec import OPERATIONS

    stated = {(op.method, op.path): op.permission for op in OPERATIONS}
    assert stated == {route: rule.permission for route, rule in ROUTES.items()}


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("route", app_routes(), ids=lambda r: f"{r[0]} {r[1]}")
def test_matrix(world: World, route: tuple[str, str], caller: str) -> None:
    rule = ROUTES.get(route)
    assert rule is not None, f"{route[0]} {route[1]} has no line in ROUTES"
    path, body = rule.make(world)
    response = send(world, route[0], path, body, world.callers[caller], rule.content_type)
    want = expected(rule, caller)
    assert response.status_code == want, (caller, route, response.status_code, response.body[:300])
    if want >= 400:
        error = json.loads(response.body)["error"]
        assert set(error) == {"code", "message", "details"}
        assert error["code"] == {401: "unauthenticated", 403: "forbidden", 404: "not_found"}.get(want, error["code"])
        if want == 403:
            assert error["details"]["permission"] == rule.permission


# -- across accounts: guessed ids, and tokens that belong to another account --------------------------------

# The id prefix each path parameter takes (`key_id` is a bare ULID); a new parameter needs a line here.
PARAMETERS = {"keypair": "kp_", "user_id": "usr_", "key_id": "", "group_id": "grp_", "team_id": "team_",
              "profile_id": "prof_", "window_id": "rw_", "entry_id": "log_", "generation": "",
              "account_id": "acct_", "certificate": ""}


def _guess(name: str) -> str:
    if name == "generation":  # a number: one no keypair reaches
        return "999999"
    return f"{PARAMETERS[name]}{ulid()}"


@pytest.mark.parametrize("route", [r for r in app_routes() if "{" in r[1] and ROUTES[r].permission != PUBLIC],
                         ids=lambda r: f"{r[0]} {r[1]}")
def test_guessed_ids_are_404(world: World, route: tuple[str, str]) -> None:
    method, template = route
    path = re.sub(r"\{(\w+)\}", lambda m: _guess(m.group(1)), template)
    _, body = ROUTES[route].make(world)
    response = send(world, method, path, body, world.a, ROUTES[route].content_type)
    assert response.status_code == 404, (route, path, response.body[:300])
    assert json.loads(response.body)["error"]["code"] == "not_found"


def list_routes(w: World) -> list[str]:
    """Every GET route without parameters whose answer is a paginated list (found by asking)."""
    found = []
    for method, path in app_routes():
        if method != "GET" or "{" in path or ROUTES[(method, path)].permission == PUBLIC:
            continue
        raw = send(w, "GET", path, None, w.a, "application/json").body
        if not raw.startswith(b"{"):
            continue  # a checkpoint is text
        body = json.loads(raw)
        if isinstance(body, dict) and "next" in body and "items" in body:
            found.append(path)
    return found


def test_nothing_of_one_account_is_listed_for_another(world: World) -> None:
    for account in (world.a, world.b):  # at least two of everything in each account
        api = Api(world.client, account)
        for _ in range(2):
            api.ok("POST", "/keypairs", {"alias": world.fresh("two"), **EC}, 201)
            api.ok("POST", "/users", {"name": "two", "roles": ["auditor"]}, 201)
            api.ok("POST", "/groups", {"name": "two"}, 201)
            api.ok("POST", "/teams", {"name": "two"}, 201)
            api.ok("POST", "/keypair-profiles", {"name": "two", "mode": "fixed"}, 201)
    lists = list_routes(world)
    assert len(lists) >= 8, lists
    seen: dict[str, set[str]] = {}
    for name, account in (("a", world.a), ("b", world.b)):
        seen[name] = set()
        for path in lists:
            items = json.loads(send(world, "GET", f"{path}?limit=500", None, account, "application/json").body)["items"]
            seen[name] |= {str(item.get("id")) for item in items}
    assert seen["a"] and seen["b"] and not seen["a"] & seen["b"]


def test_another_accounts_pagination_tokens_are_400(world: World) -> None:
    for path in list_routes(world):
        token = json.loads(send(world, "GET", f"{path}?limit=1", None, world.a, "application/json").body)["next"]
        assert token, f"{path}: account A needs two items for a token"
        response = send(world, "GET", f"{path}?limit=1&next={token}", None, world.b, "application/json")
        assert response.status_code == 400, (path, response.body[:300])
        assert json.loads(response.body)["error"]["code"] == "invalid_pagination_token"
        # The token works where it belongs.
        own = send(world, "GET", f"{path}?limit=1&next={token}", None, world.a, "application/json")
        assert own.status_code == 200, (path, own.body[:300])
    # And a keypair's generation pages: B's own keypair with A's token.
    a_kp = Api(world.client, world.a).ok("POST", "/keypairs", {"alias": world.fresh("gen"), **EC,
                                                                "type": "dynamic"}, 201)
    Api(world.client, world.a).ok("POST", f"/keypairs/{a_kp['id']}/refresh")
    token = json.loads(send(world, "GET", f"/api/v1/keypairs/{a_kp['id']}/generations?limit=1", None, world.a,
                            "application/json").body)["next"]
    b_kp = Api(world.client, world.b).ok("POST", "/keypairs", {"alias": world.fresh("gen"), **EC}, 201)
    response = send(world, "GET", f"/api/v1/keypairs/{b_kp['id']}/generations?limit=1&next={token}", None, world.b,
                    "application/json")
    assert response.status_code == 400 and json.loads(response.body)["error"]["code"] == "invalid_pagination_token"


def test_the_matrix_has_a_line_for_new_id_kinds() -> None:
    params = {name for _, path in app_routes() for name in re.findall(r"\{(\w+)\}", path)} - {"asset"}
    assert params <= set(PARAMETERS), f"add the id prefix of {params - set(PARAMETERS)} to PARAMETERS"
    assert new_id("kp").startswith(PARAMETERS["keypair"])
