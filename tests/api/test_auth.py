"""Authentication and authorisation: bad keys get 401, other accounts see nothing, permissions hold."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from chalicelib.clock import rfc3339
from chalicelib.errors import Unauthenticated
from chalicelib.ids import new_id, ulid
from chalicelib.storage.tables import AuditLogModel, KeypairModel, UserModel
from tests.support.api import add_user
from tests.support.clock import FakeClock, FakeMonotonic

ED = {"type": "static", "algorithm": "EdDSA"}


@pytest.fixture(scope="module")
def mod_client(aws: dict[str, str]) -> Iterator[Any]:
    """A Chalice test client shared by the module."""
    from chalice.test import Client

    from app import app

    with Client(app, stage_name="local") as c:
        yield c


def call(client: Any, method: str, path: str, key: str | None, body: Any = None) -> Any:
    """One request with an optional X-API-Key."""
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["X-API-Key"] = key
    fn = getattr(client.http, method.lower())
    if body is None:
        return fn(f"/api/v1{path}", headers=headers)
    return fn(f"/api/v1{path}", headers=headers, body=json.dumps(body))


def ok(client: Any, method: str, path: str, key: str, body: Any = None, status: int = 200) -> Any:
    """A request that must succeed with `status`; its JSON body."""
    response = call(client, method, path, key, body)
    assert response.status_code == status, (method, path, response.status_code, response.body[:300])
    return json.loads(response.body) if response.body else None


def refused(response: Any, status: int, code: str) -> dict[str, Any]:
    """The status and the docs/api.md error body."""
    assert response.status_code == status, (response.status_code, response.body[:300])
    body = json.loads(response.body)
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code and body["error"]["message"]
    return dict(body["error"])


def failed_auth_entries(account: str, key_id: str) -> list[AuditLogModel]:
    """The failed `api_key`/`authenticate` audit entries about one key."""
    return [
        e for e in AuditLogModel.query(account, filter_condition=AuditLogModel.resource_id == key_id)
        if e.type == "api_key" and e.action == "authenticate"
    ]


def all_audit_entries() -> int:
    """Every audit entry in the table (read in the test only)."""
    return sum(1 for _ in AuditLogModel.scan(attributes_to_get=["sk"]))


def key_id_of(api_key: str) -> str:
    """The key id part of `rsk_<key id>_<secret>`."""
    return api_key.split("_")[1]


def fake_secret() -> str:
    """A secret of the right shape: 256 random bits, base32."""
    return base64.b32encode(os.urandom(32)).decode().rstrip("=").lower()


@pytest.fixture
def fake_monotonic(monkeypatch: pytest.MonkeyPatch) -> FakeMonotonic:
    """The principal cache's clock, under the test's control (and no real waiting on refusals)."""
    from chalicelib.services.authentication import Authenticator
    from chalicelib.services.container import get_services

    fake = FakeMonotonic()
    services = get_services()
    monkeypatch.setattr(services, "auth", Authenticator(services.deps, monotonic=fake, sleep=fake.advance))
    return fake


@pytest.fixture
def fake_clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """The services' wall clock (`deps.clock`), under the test's control."""
    from chalicelib.services.container import get_deps

    clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
    monkeypatch.setattr(get_deps(), "clock", clock)
    return clock


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(None, id="no-key"),
        pytest.param("", id="empty"),
        pytest.param("hello", id="garbage"),
        pytest.param("Bearer rsk_x", id="bearer"),
        pytest.param("rsk_", id="prefix-only"),
        pytest.param(f"rsk_{ulid()}", id="no-secret"),
        pytest.param(f"rsk_{ulid()}_", id="empty-secret"),
        pytest.param(f"rsk_{ulid()}_{fake_secret()[:-1]}", id="short-secret"),
        pytest.param(f"rsk_{ulid()}_{fake_secret()}x", id="long-secret"),
        pytest.param(f"rsk_{ulid().lower()}_{fake_secret()}", id="lowercase-key-id"),
        pytest.param(f"rsk_{ulid()}_{fake_secret().upper()}", id="uppercase-secret"),
        pytest.param(f"rsk_{ulid()}_{fake_secret()}\n", id="trailing-newline"),
        pytest.param(f"RSK_{ulid()}_{fake_secret()}", id="uppercase-prefix"),
        pytest.param(f"rsk_{ulid()}_{fake_secret()}", id="unknown-key-id"),
    ],
)
def test_keys_that_name_no_key_get_401_and_write_nothing(mod_client: Any, header: str | None) -> None:
    before = all_audit_entries()
    for method, path, body in [("GET", "/keypairs", None), ("GET", "/me", None), ("POST", "/keypairs", ED),
                               ("GET", "/ca", None), ("DELETE", f"/keypairs/{new_id('kp')}", None)]:
        refused(call(mod_client, method, path, header, body), 401, "unauthenticated")
    # Anonymous callers cannot drive writes: no audit entry anywhere.
    assert all_audit_entries() == before


def test_health_needs_no_key(mod_client: Any) -> None:
    response = mod_client.http.get("/api/v1/health")
    assert response.status_code == 200 and json.loads(response.body)["status"] == "ok"


def test_wrong_secret_is_401_and_audited_once_per_window(
    mod_client: Any, account: Any, fake_clock: FakeClock
) -> None:
    kid = key_id_of(account.api_key)
    for _ in range(50):
        refused(call(mod_client, "GET", "/keypairs", f"rsk_{kid}_{fake_secret()}"), 401, "unauthenticated")
    # Anyone who knows a key id (the visible `rsk_<id>_` prefix) must not be able to flood the log.
    entries = failed_auth_entries(account.id, kid)
    assert len(entries) == 1
    assert {(e.outcome, e.error, e.actor) for e in entries} == {("failure", "wrong_secret", f"api_key:{kid}")}
    assert entries[0].details["user_id"] == account.user_id
    # Another process (no memory of this window) does not write a second entry either.
    from chalicelib.services.authentication import Authenticator
    from chalicelib.services.container import get_services

    services = get_services()
    fresh = Authenticator(services.deps, sleep=lambda _: None)
    with pytest.raises(Unauthenticated):
        fresh.authenticate(f"rsk_{kid}_{fake_secret()}", "192.0.2.7")
    assert len(failed_auth_entries(account.id, kid)) == 1
    # The next window gets its own entry.
    fake_clock.advance(300)
    refused(call(mod_client, "GET", "/keypairs", f"rsk_{kid}_{fake_secret()}"), 401, "unauthenticated")
    assert len(failed_auth_entries(account.id, kid)) == 2
    # The right secret still works.
    assert ok(mod_client, "GET", "/me", account.api_key)["user"]["id"] == account.user_id


def test_revoked_key_stops_working_within_the_cache_lifetime(
    mod_client: Any, account: Any, fake_monotonic: FakeMonotonic
) -> None:
    from chalicelib.services.container import get_deps
    from chalicelib.settings import get_settings

    # The cache lifetime is at most 5 s, whatever the environment asks for.
    ttl = get_deps().settings.principal_cache_seconds
    assert 0 < ttl <= 5
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ROTASIGN_PRINCIPAL_CACHE_SECONDS", "600")
        assert get_settings.__wrapped__().principal_cache_seconds == 5

    admin = account.api_key
    issued = ok(mod_client, "POST", f"/users/{account.user_id}/api-keys", admin, {"name": "ci"}, 201)
    assert issued["key"].startswith(f"rsk_{issued['id']}_")
    assert ok(mod_client, "GET", "/me", issued["key"])["api_key_id"] == issued["id"]  # now cached

    assert call(mod_client, "DELETE", f"/users/{account.user_id}/api-keys/{issued['id']}", admin).status_code == 204
    listed = ok(mod_client, "GET", f"/users/{account.user_id}/api-keys", admin)["items"]
    assert next(k for k in listed if k["id"] == issued["id"])["revoked_at"] is not None

    fake_monotonic.advance(ttl + 0.001)
    refused(call(mod_client, "GET", "/me", issued["key"]), 401, "unauthenticated")
    refused(call(mod_client, "GET", "/keypairs", issued["key"]), 401, "unauthenticated")
    assert [e.error for e in failed_auth_entries(account.id, issued["id"])] == ["revoked"]
    revocations = [e for e in AuditLogModel.query(account.id) if e.action == "revoke"]
    assert [(e.type, e.resource_id, e.actor) for e in revocations] == [("api_key", issued["id"], account.user_id)]
    # Revoking again is a no-op; the other keys of the user keep working.
    assert call(mod_client, "DELETE", f"/users/{account.user_id}/api-keys/{issued['id']}", admin).status_code == 204
    assert ok(mod_client, "GET", "/me", admin)["user"]["id"] == account.user_id


@pytest.mark.parametrize(
    "key_id", ["nope", ulid(), "A" * 3000, new_id("usr")], ids=["word", "unknown-ulid", "3000-chars", "user-id"]
)
def test_revoking_a_key_that_is_not_there_is_404(mod_client: Any, account: Any, key_id: str) -> None:
    path = f"/users/{account.user_id}/api-keys/{key_id}"
    refused(call(mod_client, "DELETE", path, account.api_key), 404, "not_found")


def test_revoking_another_users_or_accounts_key_is_404(mod_client: Any, account: Any) -> None:
    from chalicelib.services.accounts import bootstrap_account
    from chalicelib.services.container import get_deps

    other = bootstrap_account(get_deps(), f"elsewhere-{ulid().lower()}")
    for user_id in (account.user_id, other.user_id):
        path = f"/users/{user_id}/api-keys/{key_id_of(other.api_key)}"
        refused(call(mod_client, "DELETE", path, account.api_key), 404, "not_found")
    assert ok(mod_client, "GET", "/me", other.api_key)["user"]["id"] == other.user_id


def test_revocation_is_immediate_once_the_cache_is_cleared(mod_client: Any, account: Any) -> None:
    from chalicelib.services.container import get_services

    issued = ok(mod_client, "POST", f"/users/{account.user_id}/api-keys", account.api_key, {}, 201)
    ok(mod_client, "GET", "/keypairs", issued["key"])
    ok(mod_client, "DELETE", f"/users/{account.user_id}/api-keys/{issued['id']}", account.api_key, status=204)
    get_services().auth.forget()
    refused(call(mod_client, "GET", "/keypairs", issued["key"]), 401, "unauthenticated")


def test_expired_key_is_401_and_audited(
    mod_client: Any, account: Any, fake_clock: FakeClock, fake_monotonic: FakeMonotonic
) -> None:
    expires = fake_clock.now + timedelta(seconds=30)
    issued = ok(mod_client, "POST", f"/users/{account.user_id}/api-keys", account.api_key,
                {"name": "short", "expires_at": rfc3339(expires)}, 201)
    assert issued["expires_at"] == rfc3339(expires)
    ok(mod_client, "GET", "/keypairs", issued["key"])

    fake_clock.advance(29)
    fake_monotonic.advance(10)
    ok(mod_client, "GET", "/keypairs", issued["key"])

    fake_clock.advance(1)  # exactly at expires_at: no longer valid
    fake_monotonic.advance(10)
    refused(call(mod_client, "GET", "/keypairs", issued["key"]), 401, "unauthenticated")
    entries = failed_auth_entries(account.id, issued["id"])
    assert [(e.outcome, e.error) for e in entries] == [("failure", "expired")]
    assert entries[0].at == rfc3339(fake_clock.now)

    # A key cannot be issued already expired.
    for when in [rfc3339(fake_clock.now), rfc3339(fake_clock.now - timedelta(days=1)), "tomorrow", 5]:
        refused(call(mod_client, "POST", f"/users/{account.user_id}/api-keys", account.api_key,
                     {"expires_at": when}), 400, "validation_error")


def test_a_deleted_user_cannot_authenticate(mod_client: Any, account: Any) -> None:
    from chalicelib.services.container import get_services

    user = UserModel.get(account.id, account.user_id)
    user.update(actions=[UserModel.deleted_at.set(rfc3339(datetime.now(UTC)))])
    get_services().auth.forget()
    refused(call(mod_client, "GET", "/me", account.api_key), 401, "unauthenticated")
    assert [e.error for e in failed_auth_entries(account.id, key_id_of(account.api_key))] == ["user_deleted"]


@pytest.fixture(scope="module")
def two_accounts(mod_client: Any, aws: dict[str, str]) -> dict[str, Any]:
    """Accounts A and B, each with keypairs under the same aliases."""
    import uuid

    from chalicelib.services.accounts import bootstrap_account
    from chalicelib.services.container import get_deps

    accounts = {}
    for name in ("a", "b"):
        result = bootstrap_account(get_deps(), f"tenant-{name}-{uuid.uuid4().hex[:8]}")
        accounts[name] = SimpleNamespace(id=result.account_id, api_key=result.api_key, user_id=result.user_id)
    made: dict[str, list[dict[str, Any]]] = {}
    for name, acct in accounts.items():
        made[name] = [
            ok(mod_client, "POST", "/keypairs", acct.api_key, {"alias": alias, **ED}, 201)
            for alias in ("shared", f"only-{name}-1", f"only-{name}-2")
        ]
    return {"accounts": accounts, "keypairs": made}


def test_other_accounts_keypairs_are_invisible(mod_client: Any, two_accounts: dict[str, Any]) -> None:
    a, b = two_accounts["accounts"]["a"], two_accounts["accounts"]["b"]
    a_kps, b_kps = two_accounts["keypairs"]["a"], two_accounts["keypairs"]["b"]
    for kp in a_kps:
        for method in ("GET", "DELETE"):
            refused(call(mod_client, method, f"/keypairs/{kp['id']}", b.api_key), 404, "not_found")
        refused(call(mod_client, "PATCH", f"/keypairs/{kp['id']}", b.api_key, {"status": "offline"}), 404, "not_found")
    refused(call(mod_client, "GET", "/keypairs/only-a-1", b.api_key), 404, "not_found")
    refused(call(mod_client, "PATCH", "/keypairs/only-a-1", b.api_key, {"alias": "mine"}), 404, "not_found")
    # The same alias in B names B's keypair.
    assert ok(mod_client, "GET", "/keypairs/shared", b.api_key)["id"] == b_kps[0]["id"]
    listed = ok(mod_client, "GET", "/keypairs", b.api_key)["items"]
    assert {kp["id"] for kp in listed} == {kp["id"] for kp in b_kps}
    assert ok(mod_client, "GET", "/keypairs?alias=only-a-1", b.api_key)["items"] == []
    # A's keypairs are untouched by B's attempts.
    for kp in a_kps:
        assert ok(mod_client, "GET", f"/keypairs/{kp['id']}", a.api_key) == kp
        assert KeypairModel.get(a.id, kp["id"]).version == 1


def test_pagination_tokens_are_sealed(
    mod_client: Any, two_accounts: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = two_accounts["accounts"]["a"], two_accounts["accounts"]["b"]
    token_a = ok(mod_client, "GET", "/keypairs?limit=1", a.api_key)["next"]
    token_b = ok(mod_client, "GET", "/keypairs?limit=1", b.api_key)["next"]
    assert token_a and token_b

    def bad(key: str, query: str) -> None:
        refused(call(mod_client, "GET", f"/keypairs?{query}", key), 400, "invalid_pagination_token")

    # Another account's token, either way round.
    bad(a.api_key, f"limit=1&next={token_b}")
    bad(b.api_key, f"limit=1&next={token_a}")
    # Other filters than the ones it was issued for (a changed limit is fine).
    bad(a.api_key, f"limit=1&status=online&next={token_a}")
    bad(a.api_key, f"limit=1&type=static&next={token_a}")
    assert ok(mod_client, "GET", f"/keypairs?limit=2&next={token_a}", a.api_key)["items"]
    filtered = ok(mod_client, "GET", "/keypairs?limit=1&status=online", a.api_key)["next"]
    bad(a.api_key, f"limit=1&next={filtered}")
    bad(a.api_key, f"limit=1&status=offline&next={filtered}")
    # Altered by one byte anywhere: nonce, ciphertext or tag.
    raw = base64.urlsafe_b64decode(token_a + "=" * (-len(token_a) % 4))
    for index in (0, 11, 12, len(raw) // 2, len(raw) - 1):
        altered = bytearray(raw)
        altered[index] ^= 0x01
        bad(a.api_key, f"limit=1&next={base64.urlsafe_b64encode(bytes(altered)).decode().rstrip('=')}")
    for junk in ["abc", "%FF%FE", token_a[:-4], token_a + "AAAA", "A" * 200, "-_-_", "%C3%A9t%C3%A9"]:
        bad(a.api_key, f"limit=1&next={junk}")
    # Expired: an hour later the same token is refused.
    from chalicelib.services import pagination

    real, lifetime = pagination.time.time, pagination.TOKEN_LIFETIME_SECONDS
    monkeypatch.setattr(pagination, "time", SimpleNamespace(time=lambda: real() + lifetime + 1))
    bad(a.api_key, f"limit=1&next={token_a}")
    monkeypatch.undo()
    assert ok(mod_client, "GET", f"/keypairs?limit=1&next={token_a}", a.api_key)["items"]


def auditor(account: Any, role: str) -> str:
    """A user with one role, made through the data layer (the users API comes later); its API key."""
    return add_user(account, f"{role}-user", roles=(role,)).api_key


def test_permissions_are_checked(mod_client: Any, account: Any) -> None:
    kp = ok(mod_client, "POST", "/keypairs", account.api_key, {"alias": "guarded", **ED}, 201)
    key = auditor(account, "auditor")
    me = ok(mod_client, "GET", "/me", key)
    assert me["permissions"] == ["view_audit_log", "view_keypair"] and me["user"]["roles"] == ["auditor"]
    assert ok(mod_client, "GET", "/keypairs", key)["items"] == [kp]
    assert ok(mod_client, "GET", "/keypairs/guarded", key) == kp
    ok(mod_client, "GET", "/ca", key)

    audit_before = sum(1 for _ in AuditLogModel.query(account.id))
    for method, path, body, permission in [
        ("POST", "/keypairs", {"alias": "nope", **ED}, "generate_keypair"),
        ("PATCH", "/keypairs/guarded", {"status": "offline"}, "manage_keypair"),
        ("PATCH", f"/keypairs/{new_id('kp')}", {"status": "offline"}, "manage_keypair"),
        ("DELETE", "/keypairs/guarded", None, "manage_keypair"),
        ("GET", "/account", None, "manage_account"),
        ("POST", f"/users/{account.user_id}/api-keys", {}, "manage_users"),
        ("GET", f"/users/{account.user_id}/api-keys", None, "manage_users"),
        ("DELETE", f"/users/{account.user_id}/api-keys/{key_id_of(account.api_key)}", None, "manage_users"),
    ]:
        error = refused(call(mod_client, method, path, key, body), 403, "forbidden")
        assert error["details"] == {"permission": permission}
    assert ok(mod_client, "GET", "/keypairs/guarded", account.api_key) == kp
    assert sum(1 for _ in AuditLogModel.query(account.id)) == audit_before

    developer = auditor(account, "developer")
    ok(mod_client, "POST", "/keypairs", developer, {"alias": "dev-made", **ED}, 201)
    refused(call(mod_client, "DELETE", "/keypairs/dev-made", developer), 403, "forbidden")
    refused(call(mod_client, "PATCH", "/keypairs/dev-made", developer, {"alias": "x"}), 403, "forbidden")
