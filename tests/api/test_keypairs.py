"""Keypair routes end to end: create, get, list, paginate, patch and delete, for every algorithm and size."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from pynamodb.exceptions import DoesNotExist

from chalicelib.clock import parse_rfc3339
from chalicelib.ids import looks_like_id
from chalicelib.storage.tables import AliasClaim, AuditLogModel, GenerationModel, KeyMaterialModel, KeypairModel

SPECS = [
    pytest.param({"algorithm": "RSA", "key_size": 2048}, id="rsa2048"),
    pytest.param({"algorithm": "RSA", "key_size": 3072}, id="rsa3072"),
    pytest.param({"algorithm": "RSA", "key_size": 4096}, id="rsa4096", marks=pytest.mark.slow),
    pytest.param({"algorithm": "ECDSA", "curve": "P-256"}, id="p256"),
    pytest.param({"algorithm": "ECDSA", "curve": "P-384"}, id="p384"),
    pytest.param({"algorithm": "ECDSA", "curve": "P-521"}, id="p521"),
    pytest.param({"algorithm": "EdDSA"}, id="ed25519"),
]
CURVE_SIZES = {"P-256": 256, "P-384": 384, "P-521": 521}


class Http:
    """JSON calls through the Chalice test client as one account's admin."""

    def __init__(self, client: Any, api_key: str) -> None:
        self.client = client
        self.api_key = api_key

    def call(self, method: str, path: str, body: Any = None) -> Any:
        headers = {"X-API-Key": self.api_key, "Content-Type": "application/json"}
        fn = getattr(self.client.http, method.lower())
        if body is None:
            return fn(f"/api/v1{path}", headers=headers)
        return fn(f"/api/v1{path}", headers=headers, body=json.dumps(body))

    def ok(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        response = self.call(method, path, body)
        assert response.status_code == status, (method, path, response.status_code, response.body[:300])
        return json.loads(response.body) if response.body else None

    def error(self, method: str, path: str, body: Any, status: int, code: str) -> dict[str, Any]:
        response = self.call(method, path, body)
        assert response.status_code == status, (method, path, response.status_code, response.body[:300])
        error = json.loads(response.body)["error"]
        assert error["code"] == code and error["message"] and isinstance(error["details"], dict)
        return dict(error)


@pytest.fixture(scope="module")
def mod_client(aws: dict[str, str]) -> Iterator[Any]:
    """A Chalice test client shared by the module."""
    from chalice.test import Client

    from app import app

    with Client(app, stage_name="local") as c:
        yield c


@pytest.fixture
def http(mod_client: Any, account: Any) -> Http:
    """The API as a fresh account's admin."""
    return Http(mod_client, account.api_key)


@pytest.fixture(scope="module")
def shared_http(mod_client: Any, shared_account: Any) -> Http:
    """The API as the module account's admin."""
    return Http(mod_client, shared_account.api_key)


def audit_actions(account: str, resource_id: str) -> list[str]:
    """The actions of the audit entries about one resource, oldest first."""
    return [e.action for e in AuditLogModel.query(account, filter_condition=AuditLogModel.resource_id == resource_id)]


def check_public_key(kp: dict[str, Any], spec: dict[str, Any]) -> None:
    """The public key has the requested parameters and `key_id` is the SHA-256 of its SPKI DER."""
    public = serialization.load_pem_public_key(kp["public_key"].encode())
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert kp["key_id"] == hashlib.sha256(der).hexdigest()
    if spec["algorithm"] == "RSA":
        assert isinstance(public, rsa.RSAPublicKey) and public.key_size == spec["key_size"]
    elif spec["algorithm"] == "ECDSA":
        assert isinstance(public, ec.EllipticCurvePublicKey) and public.curve.key_size == CURVE_SIZES[spec["curve"]]
    else:
        assert isinstance(public, ed25519.Ed25519PublicKey)


def check_schedule(kp: dict[str, Any]) -> None:
    """Dynamic keypairs are due on a quarter hour within one interval; static ones never."""
    if kp["type"] == "static":
        assert kp["next_refresh_at"] is None
        return
    due = parse_rfc3339(kp["next_refresh_at"])
    created = parse_rfc3339(kp["created_at"])
    assert due.minute % 15 == 0 and due.second == 0 and due.microsecond == 0
    assert created + timedelta(seconds=60) < due <= created + timedelta(minutes=16)


@pytest.mark.parametrize("kind", ["static", "dynamic"])
@pytest.mark.parametrize("spec", SPECS)
def test_keypair_lifecycle(shared_http: Http, shared_account: Any, spec: dict[str, Any], kind: str) -> None:
    api, account = shared_http, shared_account.id
    alias = f"{spec['algorithm']}-{spec.get('key_size') or spec.get('curve') or 'ed'}-{kind}".lower()
    kp = api.ok("POST", "/keypairs", {"alias": alias, "type": kind, **spec}, 201)

    assert looks_like_id(kp["id"], "kp")
    expected = {
        "alias": alias, "type": kind, "algorithm": spec["algorithm"], "key_size": spec.get("key_size"),
        "curve": "Ed25519" if spec["algorithm"] == "EdDSA" else spec.get("curve"), "category": "production",
        "storage": "disk", "status": "online", "access": "open", "allowed_users": [], "allowed_groups": [],
        "team_id": None, "profile_id": None, "generate_certificate": True, "refresh_after_sign": False,
        "generation": 1, "created_by": shared_account.user_id,
    }
    assert {k: kp[k] for k in expected} == expected
    check_public_key(kp, spec)
    check_schedule(kp)
    assert kp["certificate"]["pem"].startswith("-----BEGIN CERTIFICATE-----")

    # Read back by id, by alias (any case: aliases are unique case-insensitively) and through lists.
    assert api.ok("GET", f"/keypairs/{kp['id']}") == kp
    assert api.ok("GET", f"/keypairs/{alias}") == kp
    assert api.ok("GET", f"/keypairs/{alias.upper()}")["id"] == kp["id"]
    assert api.ok("GET", f"/keypairs?alias={alias}")["items"] == [kp]
    listed = api.ok("GET", f"/keypairs?algorithm={spec['algorithm']}&type={kind}&limit=500")["items"]
    assert kp in listed

    # Rename: the claim moves, the certificate keeps the alias it was issued for.
    renamed = api.ok("PATCH", f"/keypairs/{alias}", {"alias": f"{alias}-v2"})
    assert renamed["alias"] == f"{alias}-v2" and renamed["id"] == kp["id"]
    assert renamed["certificate"] == kp["certificate"] and renamed["key_id"] == kp["key_id"]
    api.error("GET", f"/keypairs/{alias}", None, 404, "not_found")
    assert api.ok("GET", f"/keypairs/{alias}-v2")["id"] == kp["id"]

    # Status changes are suspend / unsuspend in the audit log.
    assert api.ok("PATCH", f"/keypairs/{kp['id']}", {"status": "offline"})["status"] == "offline"
    assert api.ok("PATCH", f"/keypairs/{kp['id']}", {"status": "online"})["status"] == "online"
    assert audit_actions(account, kp["id"]) == ["generate", "update", "suspend", "unsuspend"]

    stored = KeypairModel.get(account, kp["id"])
    material = KeyMaterialModel.get(kp["id"])
    assert material.account == account and material.key_ref == stored.key_ref

    assert api.call("DELETE", f"/keypairs/{kp['id']}").status_code == 204
    for method, ref in [("GET", kp["id"]), ("GET", f"{alias}-v2"), ("DELETE", f"{alias}-v2")]:
        api.error(method, f"/keypairs/{ref}", None, 404, "not_found")
    api.error("PATCH", f"/keypairs/{kp['id']}", {"status": "offline"}, 404, "not_found")
    assert api.ok("GET", f"/keypairs?alias={alias}-v2")["items"] == []
    listed = api.ok("GET", f"/keypairs?algorithm={spec['algorithm']}&type={kind}&limit=500")["items"]
    assert kp["id"] not in {item["id"] for item in listed}
    assert audit_actions(account, kp["id"])[-1] == "delete"

    tombstone = KeypairModel.get(account, kp["id"])
    assert tombstone.deleted_at is not None and tombstone.due_shard is None and tombstone.next_refresh_at is None
    # The private key is gone; the generation (public key + certificate) stays, retired.
    with pytest.raises(DoesNotExist):
        KeyMaterialModel.get(kp["id"])
    generation = GenerationModel.get(kp["id"], 1)
    assert generation.key_id == kp["key_id"] and generation.retired_at is not None
    assert generation.public_key == kp["public_key"] and generation.certificate.pem == kp["certificate"]["pem"]

    # Its alias is free again.
    again = api.ok("POST", "/keypairs", {"alias": f"{alias}-v2", "type": "static", "algorithm": "EdDSA"}, 201)
    assert again["id"] != kp["id"] and api.ok("GET", f"/keypairs/{alias}-v2")["id"] == again["id"]


def test_alias_rename_frees_old_alias(http: Http, account: Any) -> None:
    first = http.ok("POST", "/keypairs", {"alias": "build", "type": "static", "algorithm": "EdDSA"}, 201)
    http.ok("PATCH", "/keypairs/build", {"alias": "release"})
    second = http.ok("POST", "/keypairs", {"alias": "build", "type": "static", "algorithm": "EdDSA"}, 201)
    assert http.ok("GET", "/keypairs/build")["id"] == second["id"]
    assert http.ok("GET", "/keypairs/release")["id"] == first["id"]
    # Renaming onto a taken alias (in any case) is refused and changes nothing.
    http.error("PATCH", "/keypairs/release", {"alias": "BUILD"}, 409, "alias_taken")
    assert http.ok("GET", "/keypairs/release")["id"] == first["id"]
    assert http.ok("GET", "/keypairs/build")["id"] == second["id"]
    # Changing only the case of an alias is a rename onto the keypair's own claim.
    assert http.ok("PATCH", "/keypairs/release", {"alias": "Release"})["alias"] == "Release"
    assert http.ok("GET", "/keypairs/release")["alias"] == "Release"
    claims = [c.alias_key for c in AliasClaim.query(account.id)]
    assert sorted(claims) == ["build", "release"]


def test_create_with_every_field(http: Http, account: Any) -> None:
    body = {
        "alias": "everything", "type": "dynamic", "algorithm": "ECDSA", "key_size": None, "curve": "P-384",
        "category": "test", "storage": "disk", "status": "offline", "access": "restricted",
        "allowed_users": [account.user_id], "allowed_groups": [], "team_id": None, "profile_id": None,
        "generate_certificate": False, "refresh_after_sign": True,
    }
    kp = http.ok("POST", "/keypairs", body, 201)
    assert {k: kp[k] for k in body} == body
    assert kp["certificate"] is None
    check_schedule(kp)
    assert audit_actions(account.id, kp["id"]) == ["generate"]


def test_patch_access_rules(http: Http, account: Any) -> None:
    kp = http.ok("POST", "/keypairs", {"alias": "rules", "type": "static", "algorithm": "EdDSA"}, 201)
    ref = f"/keypairs/{kp['id']}"
    # Lists need a restricted keypair.
    http.error("PATCH", ref, {"allowed_users": [account.user_id]}, 400, "validation_error")
    restricted = http.ok("PATCH", ref, {"access": "restricted", "allowed_users": [account.user_id]})
    assert restricted["access"] == "restricted" and restricted["allowed_users"] == [account.user_id]
    http.error("PATCH", ref, {"access": "open", "allowed_users": [account.user_id]}, 400, "validation_error")
    # Opening a keypair clears its lists.
    opened = http.ok("PATCH", ref, {"access": "open"})
    assert opened["access"] == "open" and opened["allowed_users"] == [] and opened["allowed_groups"] == []
    # An unchanged value changes nothing and writes no audit entry.
    assert http.ok("PATCH", ref, {"access": "open", "status": "online"}) == opened
    assert audit_actions(account.id, kp["id"]) == ["generate", "update", "update"]


def test_lists_filter_by_every_field(http: Http) -> None:
    made = [
        ("a", "static", {"algorithm": "ECDSA", "curve": "P-256"}, "production", "online"),
        ("b", "dynamic", {"algorithm": "EdDSA"}, "test", "online"),
        ("c", "static", {"algorithm": "RSA", "key_size": 2048}, "production", "offline"),
        ("d", "dynamic", {"algorithm": "ECDSA", "curve": "P-384"}, "test", "offline"),
        ("e", "static", {"algorithm": "EdDSA"}, "production", "online"),
        ("f", "static", {"algorithm": "EdDSA"}, "test", "online"),
    ]
    ids: dict[str, str] = {}
    for alias, kind, spec, category, status in made:
        body = {"alias": alias, "type": kind, "category": category, "status": status, **spec}
        ids[alias] = http.ok("POST", "/keypairs", body, 201)["id"]
    http.ok("DELETE", "/keypairs/f", status=204)

    def aliases(query: str) -> list[str]:
        page = http.ok("GET", f"/keypairs?{query}")
        assert page["next"] is None
        return [item["alias"] for item in page["items"]]

    assert aliases("") == ["e", "d", "c", "b", "a"]
    assert aliases("type=dynamic") == ["d", "b"]
    assert aliases("type=static") == ["e", "c", "a"]
    assert aliases("status=offline") == ["d", "c"]
    assert aliases("status=online") == ["e", "b", "a"]
    assert aliases("storage=disk") == ["e", "d", "c", "b", "a"]
    assert aliases("storage=hsm") == []
    assert aliases("algorithm=EdDSA") == ["e", "b"]
    assert aliases("algorithm=ECDSA") == ["d", "a"]
    assert aliases("algorithm=RSA") == ["c"]
    assert aliases("category=test") == ["d", "b"]
    assert aliases("category=production") == ["e", "c", "a"]
    assert aliases("alias=c") == ["c"]
    assert aliases("alias=C") == ["c"]
    assert aliases("alias=c&status=online") == []
    assert aliases("alias=f") == []
    assert aliases("alias=nothing") == []
    assert aliases(f"alias={ids['c']}") == []
    assert aliases("type=dynamic&category=test&status=offline&algorithm=ECDSA") == ["d"]
    for bad in ["type=ephemeral", "status=paused", "storage=cloud", "algorithm=DSA", "category=prod", "colour=red"]:
        http.error("GET", f"/keypairs?{bad}", None, 400, "validation_error")


def walk(http: Http, query: str, limit: int) -> list[list[str]]:
    """Every page of a list, following `next` until null."""
    pages: list[list[str]] = []
    token = None
    while True:
        suffix = f"&next={token}" if token else ""
        body = http.ok("GET", f"/keypairs?{query}&limit={limit}{suffix}")
        pages.append([item["id"] for item in body["items"]])
        token = body["next"]
        if token is None:
            return pages
        assert len(pages) < 50


def test_pagination_fills_pages_and_returns_each_item_once(http: Http) -> None:
    created = []
    for n in range(9):
        status = "offline" if n % 3 == 0 else "online"
        body = {"alias": f"kp-{n}", "type": "static", "algorithm": "EdDSA", "status": status}
        created.append(http.ok("POST", "/keypairs", body, 201)["id"])
    newest_first = created[::-1]
    assert newest_first == sorted(created, reverse=True)

    pages = walk(http, "", 4)
    assert [len(p) for p in pages] == [4, 4, 1]
    assert [i for p in pages for i in p] == newest_first
    # Exactly `limit` items left: the last full page already says there is no more.
    assert [len(p) for p in walk(http, "", 3)] == [3, 3, 3]
    assert walk(http, "", 9) == [newest_first]
    assert walk(http, "", 500) == [newest_first]

    # Filters skip items, yet every page is full until the last.
    online = [i for n, i in enumerate(created) if n % 3 != 0][::-1]
    pages = walk(http, "status=online", 4)
    assert [len(p) for p in pages] == [4, 2]
    assert [i for p in pages for i in p] == online
    offline = walk(http, "status=offline", 1)
    assert offline == [[created[6]], [created[3]], [created[0]]]

    # A deleted keypair disappears from later pages without disturbing the walk.
    first = http.ok("GET", "/keypairs?limit=2")
    http.ok("DELETE", f"/keypairs/{newest_first[3]}", status=204)
    rest = walk(http, f"next={first['next']}", 2)
    assert [item["id"] for item in first["items"]] + [i for p in rest for i in p] == (
        newest_first[:3] + newest_first[4:]
    )

    for bad in ["0", "501", "-1", "abc", "2.5", "", "%C2%B2", "%D9%A3"]:
        http.error("GET", f"/keypairs?limit={bad}", None, 400, "validation_error")


def test_concurrent_creates_of_one_alias(http: Http, account: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from chalicelib.services.container import get_deps

    deps = get_deps()
    disk = deps.disk
    barrier = threading.Barrier(2, timeout=10)

    class RacingDisk:
        """Holds each request after its key is made until both are ready, so both commits race."""

        storage = "disk"

        def generate(self, *args: Any, **kwargs: Any) -> Any:
            key = disk.generate(*args, **kwargs)
            barrier.wait()
            return key

        def __getattr__(self, name: str) -> Any:
            return getattr(disk, name)

    monkeypatch.setattr(deps, "disk", RacingDisk())
    # The test client swaps os.environ per request; two threads could leave a copy in place.
    monkeypatch.setattr(os, "environ", os.environ)
    results: list[Any] = []
    body = {"alias": "contested", "type": "static", "algorithm": "ECDSA", "curve": "P-256"}

    def create() -> None:
        results.append(http.call("POST", "/keypairs", body))

    threads = [threading.Thread(target=create) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    monkeypatch.undo()

    statuses = sorted(r.status_code for r in results)
    assert statuses == [201, 409], [r.body[:200] for r in results]
    winner = json.loads(next(r.body for r in results if r.status_code == 201))
    loser = json.loads(next(r.body for r in results if r.status_code == 409))
    assert loser["error"]["code"] == "alias_taken"
    assert http.ok("GET", "/keypairs/contested")["id"] == winner["id"]
    # The loser left nothing behind: one keypair, one claim, one generation, one key-material row.
    assert [kp.id for kp in KeypairModel.query(account.id)] == [winner["id"]]
    assert [c.keypair_id for c in AliasClaim.query(account.id)] == [winner["id"]]
    materials = [m.id for m in KeyMaterialModel.scan(KeyMaterialModel.account == account.id)]
    assert [m for m in materials if m.startswith("kp_")] == [winner["id"]]
    assert audit_actions(account.id, winner["id"]) == ["generate"]


def test_dynamic_schedule_follows_the_clock(http: Http, account: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import UTC

    from chalicelib.services.container import get_deps

    cases = {
        datetime(2031, 5, 6, 12, 10, 0, tzinfo=UTC): "2031-05-06T12:15:00Z",
        datetime(2031, 5, 6, 12, 13, 59, tzinfo=UTC): "2031-05-06T12:15:00Z",
        # Within the tick's one-minute window the next tick would already see it as due: skip to the one after.
        datetime(2031, 5, 6, 12, 14, 30, tzinfo=UTC): "2031-05-06T12:30:00Z",
        datetime(2031, 5, 6, 23, 59, 59, tzinfo=UTC): "2031-05-07T00:15:00Z",
    }
    for n, (now, due) in enumerate(cases.items()):
        monkeypatch.setattr(get_deps(), "clock", lambda now=now: now)
        kp = http.ok("POST", "/keypairs", {"alias": f"dyn-{n}", "type": "dynamic", "algorithm": "EdDSA"}, 201)
        assert kp["next_refresh_at"] == due and kp["created_at"] == kp["refreshed_at"]
        stored = KeypairModel.get(account.id, kp["id"])
        assert stored.next_refresh_at == due and stored.due_shard is not None
        static = http.ok("POST", "/keypairs", {"alias": f"st-{n}", "type": "static", "algorithm": "EdDSA"}, 201)
        assert static["next_refresh_at"] is None
        assert KeypairModel.get(account.id, static["id"]).due_shard is None


def test_a_filtered_page_costs_requests_by_data_read_not_by_account_size_over_limit(
    http: Http, account: Any
) -> None:
    """`?category=test&limit=1` over 120 keypairs: DynamoDB's Limit applies before the filter, so asking it
    for `limit + 1` rows would cost one request per row; a filtered page reads up to 1 MB per request."""
    from tests.support.requests import RequestCounter

    for i in range(120):
        http.ok("POST", "/keypairs", {"alias": f"many-{i}", "type": "static", "algorithm": "EdDSA",
                                      "category": "test" if i == 0 else "production"}, 201)
    http.ok("GET", "/me")  # the caller's key is cached: only the listing's own requests are counted
    with RequestCounter() as counter:
        page = http.ok("GET", "/keypairs?category=test&limit=1")
    assert [kp["alias"] for kp in page["items"]] == ["many-0"] and page["next"] is None
    assert counter.of("dynamodb") == ["Query"], counter.calls
