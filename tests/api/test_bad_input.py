"""A table of bad keypair requests: each gets its 4xx in the docs/api.md error shape and writes nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.ids import new_id
from chalicelib.storage.tables import AliasClaim, AuditLogModel, GenerationModel, KeyMaterialModel, KeypairModel

ED = {"type": "static", "algorithm": "EdDSA"}
RSA = {"type": "static", "algorithm": "RSA", "key_size": 2048}
EC = {"type": "static", "algorithm": "ECDSA", "curve": "P-256"}
VALID = {"alias": "fine", **ED}
KP_ID = new_id("kp")
USR_ID = new_id("usr")
GRP_ID = new_id("grp")
JSON = "application/json"
OVERSIZED = json.dumps({**VALID, "pad": "x" * (64 * 1024)})
VAL, UNSUP = "validation_error", "unsupported_algorithm"


def case(body: Any, status: int, code: str, id: str, content_type: str = JSON, method: str = "") -> Any:
    """One bad request: a JSON-able body (or raw str/bytes), the status and error code it must get."""
    return pytest.param(body, status, code, content_type, method, id=id)


CREATE_CASES = [
    # The body as a whole.
    case(b"", 400, VAL, "empty-body"),
    case([VALID], 400, VAL, "body-is-a-list"),
    case(b'"just a string"', 400, VAL, "body-is-a-string"),
    case(None, 400, VAL, "body-is-null"),
    case(b"{", 400, "invalid_json", "invalid-json-truncated"),
    case(b'{"alias": }', 400, "invalid_json", "invalid-json-no-value"),
    case(b'{"alias": "a"} trailing', 400, "invalid_json", "invalid-json-trailing"),
    case(b"{'alias': 'a'}", 400, "invalid_json", "invalid-json-single-quotes"),
    case(b'\xff\xfe{"alias": "a"}', 400, "invalid_json", "invalid-json-not-utf8"),
    case(b"[" * 30000 + b"]" * 30000, 400, "invalid_json", "json-nested-too-deep"),
    case(OVERSIZED, 413, "payload_too_large", "oversized-body"),
    # Only UTF-8 JSON sent as application/json (optionally charset=utf-8).
    case(json.dumps(VALID).encode("utf-16"), 400, "invalid_json", "utf-16-with-bom"),
    case(json.dumps(VALID).encode("utf-16-le"), 400, "invalid_json", "utf-16-without-bom"),
    case(b"\xef\xbb\xbf" + json.dumps(VALID).encode(), 400, "invalid_json", "utf-8-bom"),
    case(json.dumps(VALID), 415, "unsupported_media_type", "content-type-missing", content_type=""),
    case(json.dumps(VALID), 415, "unsupported_media_type", "content-type-any", content_type="*/*"),
    case(json.dumps(VALID), 415, "unsupported_media_type", "charset-latin-1",
         content_type="application/json; charset=iso-8859-1"),
    case(json.dumps(VALID), 415, "unsupported_media_type", "json-suffix-type",
         content_type="application/problem+json"),
    case(json.dumps(VALID), 415, "unsupported_media_type", "content-type-text", content_type="text/plain"),
    case(json.dumps(VALID), 415, "unsupported_media_type", "content-type-form",
         content_type="application/x-www-form-urlencoded"),
    case(VALID, 405, "method_not_allowed", "method-put", method="PUT"),
    case(VALID, 405, "method_not_allowed", "method-delete-collection", method="DELETE"),
    case({**VALID, "colour": "red"}, 400, VAL, "extra-field"),
    case({**VALID, "key_id": "00" * 32}, 400, VAL, "extra-field-key-id"),
    case({**VALID, "id": KP_ID}, 400, VAL, "extra-field-id"),
    # alias
    case(ED, 400, VAL, "alias-missing"),
    case({**ED, "alias": None}, 400, VAL, "alias-null"),
    case({**ED, "alias": 42}, 400, VAL, "alias-number"),
    case({**ED, "alias": ["a"]}, 400, VAL, "alias-list"),
    case({**ED, "alias": ""}, 400, VAL, "alias-empty"),
    case({**ED, "alias": "a" * 65}, 400, VAL, "alias-too-long"),
    case({**ED, "alias": "two words"}, 400, VAL, "alias-space"),
    case({**ED, "alias": "a/b"}, 400, VAL, "alias-slash"),
    case({**ED, "alias": "a:b"}, 400, VAL, "alias-colon"),
    case({**ED, "alias": "rélease"}, 400, VAL, "alias-non-ascii"),
    case({**ED, "alias": "release\n"}, 400, VAL, "alias-trailing-newline"),
    case({**ED, "alias": KP_ID}, 400, VAL, "alias-is-keypair-id"),
    case({**ED, "alias": KP_ID.upper()}, 400, VAL, "alias-is-keypair-id-upper"),
    case({**ED, "alias": USR_ID}, 400, VAL, "alias-is-user-id"),
    # type
    case({"alias": "a", "algorithm": "EdDSA"}, 400, VAL, "type-missing"),
    case({**VALID, "type": None}, 400, VAL, "type-null"),
    case({**VALID, "type": 1}, 400, VAL, "type-number"),
    case({**VALID, "type": "ephemeral"}, 400, VAL, "type-unknown"),
    case({**VALID, "type": "Static"}, 400, VAL, "type-wrong-case"),
    # algorithm, key_size, curve
    case({"alias": "a", "type": "static"}, 400, VAL, "algorithm-missing"),
    case({**VALID, "algorithm": None}, 400, VAL, "algorithm-null"),
    case({**VALID, "algorithm": 3}, 400, VAL, "algorithm-number"),
    case({**VALID, "algorithm": "DSA"}, 400, UNSUP, "algorithm-unknown"),
    case({**VALID, "algorithm": "rsa", "key_size": 2048}, 400, UNSUP, "algorithm-wrong-case"),
    case({"alias": "a", "type": "static", "algorithm": "RSA"}, 400, VAL, "rsa-key-size-missing"),
    case({"alias": "a", **RSA, "key_size": 1024}, 400, UNSUP, "rsa-key-size-1024"),
    case({"alias": "a", **RSA, "key_size": 8192}, 400, UNSUP, "rsa-key-size-8192"),
    case({"alias": "a", **RSA, "key_size": -2048}, 400, UNSUP, "rsa-key-size-negative"),
    case({"alias": "a", **RSA, "key_size": "2048"}, 400, VAL, "rsa-key-size-string"),
    case({"alias": "a", **RSA, "key_size": 2048.5}, 400, VAL, "rsa-key-size-float"),
    case({"alias": "a", **RSA, "key_size": True}, 400, VAL, "rsa-key-size-bool"),
    case({"alias": "a", **RSA, "curve": "P-256"}, 400, VAL, "rsa-with-curve"),
    case({"alias": "a", "type": "static", "algorithm": "ECDSA"}, 400, VAL, "ecdsa-curve-missing"),
    case({"alias": "a", **EC, "curve": "P-192"}, 400, UNSUP, "ecdsa-curve-unknown"),
    case({"alias": "a", **EC, "curve": "p-256"}, 400, UNSUP, "ecdsa-curve-wrong-case"),
    case({"alias": "a", **EC, "curve": 256}, 400, VAL, "ecdsa-curve-number"),
    case({"alias": "a", **EC, "key_size": 256}, 400, VAL, "ecdsa-with-key-size"),
    case({**VALID, "key_size": 256}, 400, VAL, "eddsa-with-key-size"),
    case({**VALID, "curve": "P-256"}, 400, UNSUP, "eddsa-curve-p256"),
    case({**VALID, "curve": "Ed448"}, 400, UNSUP, "eddsa-curve-ed448"),
    # category, storage, status, access
    case({**VALID, "category": "prod"}, 400, VAL, "category-unknown"),
    case({**VALID, "category": 1}, 400, VAL, "category-number"),
    case({**VALID, "category": None}, 400, VAL, "category-null"),
    case({**VALID, "storage": "cloud"}, 400, VAL, "storage-unknown"),
    case({**VALID, "storage": ["disk"]}, 400, VAL, "storage-list"),
    case({**VALID, "status": "paused"}, 400, VAL, "status-unknown"),
    case({**VALID, "status": True}, 400, VAL, "status-bool"),
    case({**VALID, "access": "public"}, 400, VAL, "access-unknown"),
    case({**VALID, "access": 0}, 400, VAL, "access-number"),
    # allowed_users, allowed_groups
    case({**VALID, "access": "restricted", "allowed_users": USR_ID}, 400, VAL, "users-not-a-list"),
    case({**VALID, "access": "restricted", "allowed_users": [1]}, 400, VAL, "users-number"),
    case({**VALID, "access": "restricted", "allowed_users": ["bob"]}, 400, VAL, "users-not-an-id"),
    case({**VALID, "access": "restricted", "allowed_users": [GRP_ID]}, 400, VAL, "users-group-id"),
    case({**VALID, "access": "restricted", "allowed_users": [USR_ID]}, 400, VAL, "users-unknown-user"),
    case({**VALID, "access": "restricted", "allowed_users": [new_id("usr") for _ in range(101)]}, 400, VAL,
         "users-too-many"),
    case({**VALID, "allowed_users": ["{user}"]}, 400, VAL, "users-with-open"),
    case({**VALID, "access": "open", "allowed_groups": [GRP_ID]}, 400, VAL, "groups-with-open"),
    case({**VALID, "access": "restricted", "allowed_groups": "grp"}, 400, VAL, "groups-not-a-list"),
    case({**VALID, "access": "restricted", "allowed_groups": [USR_ID]}, 400, VAL, "groups-user-id"),
    # team_id, profile_id
    case({**VALID, "team_id": new_id("team")}, 400, VAL, "team-id-while-teams-off"),
    case({**VALID, "team_id": 5}, 400, VAL, "team-id-number"),
    case({**VALID, "profile_id": new_id("prof")}, 400, VAL, "profile-id-unknown"),
    case({**VALID, "profile_id": "standard"}, 400, VAL, "profile-id-not-an-id"),
    case({**VALID, "profile_id": 7}, 400, VAL, "profile-id-number"),
    # booleans
    case({**VALID, "generate_certificate": "yes"}, 400, VAL, "generate-certificate-string"),
    case({**VALID, "generate_certificate": 1}, 400, VAL, "generate-certificate-number"),
    case({**VALID, "generate_certificate": None}, 400, VAL, "generate-certificate-null"),
    case({**VALID, "refresh_after_sign": True}, 400, VAL, "refresh-after-sign-with-static"),
    case({**VALID, "type": "dynamic", "refresh_after_sign": "true"}, 400, VAL, "refresh-after-sign-string"),
    # An alias already in use (in any case) is a conflict, and still writes nothing.
    case({**ED, "alias": "TARGET"}, 409, "alias_taken", "alias-taken"),
]

PATCH_CASES = [
    case(b"", 400, VAL, "empty-body"),
    case([{"status": "offline"}], 400, VAL, "body-is-a-list"),
    case(b'{"status": ', 400, "invalid_json", "invalid-json"),
    case(b'{"status": ' * 20000 + b'"x"' + b"}" * 20000, 413, "payload_too_large", "json-nested-oversized"),
    case(b'{"a":' * 6000 + b"1" + b"}" * 6000, 400, "invalid_json", "json-nested-too-deep"),
    case(json.dumps({"alias": "x" * (64 * 1024)}), 413, "payload_too_large", "oversized-body"),
    case(json.dumps({"status": "offline"}), 415, "unsupported_media_type", "content-type-text",
         content_type="text/plain"),
    case({"status": "offline"}, 405, "method_not_allowed", "method-put", method="PUT"),
    case({"status": "offline"}, 405, "method_not_allowed", "method-post", method="POST"),
    case({"type": "dynamic"}, 400, VAL, "field-type-not-patchable"),
    case({"algorithm": "RSA"}, 400, VAL, "field-algorithm-not-patchable"),
    case({"status": "offline", "colour": "red"}, 400, VAL, "extra-field"),
    case({"alias": None}, 400, VAL, "alias-null"),
    case({"alias": 7}, 400, VAL, "alias-number"),
    case({"alias": ""}, 400, VAL, "alias-empty"),
    case({"alias": "a" * 65}, 400, VAL, "alias-too-long"),
    case({"alias": "new name"}, 400, VAL, "alias-space"),
    case({"alias": "target\n"}, 400, VAL, "alias-trailing-newline"),
    case({"alias": KP_ID}, 400, VAL, "alias-is-keypair-id"),
    case({"alias": "other"}, 409, "alias_taken", "alias-taken"),
    case({"alias": "OTHER"}, 409, "alias_taken", "alias-taken-other-case"),
    case({"status": "paused"}, 400, VAL, "status-unknown"),
    case({"status": None}, 400, VAL, "status-null"),
    case({"status": 1}, 400, VAL, "status-number"),
    case({"access": "public"}, 400, VAL, "access-unknown"),
    case({"access": True}, 400, VAL, "access-bool"),
    case({"allowed_users": ["{user}"]}, 400, VAL, "users-with-open"),
    case({"allowed_groups": [GRP_ID]}, 400, VAL, "groups-with-open"),
    case({"access": "restricted", "allowed_users": "usr"}, 400, VAL, "users-not-a-list"),
    case({"access": "restricted", "allowed_users": ["bob"]}, 400, VAL, "users-not-an-id"),
    case({"access": "restricted", "allowed_users": [USR_ID]}, 400, VAL, "users-unknown-user"),
    case({"access": "restricted", "allowed_groups": [{"id": GRP_ID}]}, 400, VAL, "groups-objects"),
    case({"access": "open", "allowed_users": ["{user}"]}, 400, VAL, "open-with-users"),
]


@pytest.fixture(scope="module")
def target(shared_account: Any) -> Iterator[dict[str, Any]]:
    """A module client, plus the keypairs `target` (patched) and `other` (holding an alias)."""
    from chalice.test import Client

    from app import app

    with Client(app, stage_name="local") as client:
        made = {}
        for alias in ("target", "other"):
            response = client.http.post(
                "/api/v1/keypairs", headers=headers(shared_account.api_key), body=json.dumps({"alias": alias, **ED})
            )
            assert response.status_code == 201, response.body
            made[alias] = json.loads(response.body)
        yield {"client": client, "account": shared_account, **made}


def headers(api_key: str, content_type: str = JSON) -> dict[str, str]:
    """Request headers with a key and a content type (none when `content_type` is empty)."""
    return {"X-API-Key": api_key} | ({"Content-Type": content_type} if content_type else {})


def snapshot(account: str) -> dict[str, Any]:
    """The account's items in every table a keypair request can write (read in the test only).

    Keys and the keypairs' versions (a VersionAttribute: every update bumps it) are enough to see any
    write, and keep moto's response serialisation cheap.
    """
    return {
        "keypairs": sorted(
            (kp.id, int(kp.version)) for kp in KeypairModel.query(
                account, consistent_read=True, attributes_to_get=["id", "version"]
            )
        ),
        "aliases": sorted((c.alias_key, c.keypair_id) for c in AliasClaim.query(account, consistent_read=True)),
        "key_material": sorted(
            m.id for m in KeyMaterialModel.scan(
                KeyMaterialModel.account == account, consistent_read=True, attributes_to_get=["id"]
            )
        ),
        "generations": sorted(
            (g.keypair_id, int(g.generation), g.retired_at) for g in GenerationModel.scan(
                GenerationModel.account == account, consistent_read=True,
                attributes_to_get=["keypair_id", "generation", "retired_at"],
            )
        ),
        "audit_log": sorted(
            e.sk for e in AuditLogModel.query(account, consistent_read=True, attributes_to_get=["sk"])
        ),
    }


def encode(body: Any, user_id: str) -> bytes:
    """The raw request body: bytes and str as given, anything else as JSON (with `{user}` filled in)."""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body).replace('"{user}"', json.dumps(user_id)).encode()


def send(target: dict[str, Any], method: str, path: str, body: Any, content_type: str) -> Any:
    """Send one request as the account's admin; check status shape later."""
    account = target["account"]
    fn = getattr(target["client"].http, method.lower())
    return fn(path, headers=headers(account.api_key, content_type), body=encode(body, account.user_id))


def check_refused(response: Any, status: int, code: str) -> None:
    """The status, and exactly the docs/api.md error shape with no trace of a stack or exception."""
    assert response.status_code == status, (response.status_code, response.body[:300])
    body = json.loads(response.body)
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["details"], dict)
    assert b"Traceback" not in response.body and b"File \"" not in response.body


@pytest.mark.parametrize(("body", "status", "code", "content_type", "method"), CREATE_CASES)
def test_bad_create_is_refused_and_writes_nothing(
    target: dict[str, Any], body: Any, status: int, code: str, content_type: str, method: str
) -> None:
    account = target["account"].id
    before = snapshot(account)
    response = send(target, method or "POST", "/api/v1/keypairs", body, content_type)
    check_refused(response, status, code)
    assert snapshot(account) == before
    if status == 405:
        assert "POST" in response.headers.get("Allow", "")


@pytest.mark.parametrize(("body", "status", "code", "content_type", "method"), PATCH_CASES)
def test_bad_patch_is_refused_and_writes_nothing(
    target: dict[str, Any], body: Any, status: int, code: str, content_type: str, method: str
) -> None:
    account = target["account"].id
    before = snapshot(account)
    for ref in (target["target"]["id"], "target"):
        response = send(target, method or "PATCH", f"/api/v1/keypairs/{ref}", body, content_type)
        check_refused(response, status, code)
    assert snapshot(account) == before


def test_error_details_name_the_field(target: dict[str, Any]) -> None:
    for field, body in [
        ("alias", {**ED, "alias": "a b"}),
        ("key_size", {"alias": "a", **RSA, "key_size": 1000}),
        ("curve", {"alias": "a", **EC, "curve": "P-1"}),
        ("colour", {**VALID, "colour": "red"}),
        ("team_id", {**VALID, "team_id": new_id("team")}),
        ("refresh_after_sign", {**VALID, "refresh_after_sign": True}),
    ]:
        response = send(target, "POST", "/api/v1/keypairs", body, JSON)
        assert json.loads(response.body)["error"]["details"]["field"] == field


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "Application/JSON;Charset=UTF-8"])
def test_json_with_a_utf8_charset_is_accepted(target: dict[str, Any], content_type: str) -> None:
    response = send(target, "POST", "/api/v1/keypairs", {"alias": f"utf8-{len(content_type)}", **ED}, content_type)
    assert response.status_code == 201, response.body[:300]


def test_a_body_of_exactly_64_kib_is_read(target: dict[str, Any]) -> None:
    raw = json.dumps({**VALID, "pad": ""})
    raw = raw[:-2] + "x" * (64 * 1024 - len(raw)) + raw[-2:]
    assert len(raw.encode()) == 64 * 1024
    # Not too large: it is parsed, and refused for its unknown field instead.
    check_refused(send(target, "POST", "/api/v1/keypairs", raw, JSON), 400, VAL)


def test_bad_requests_without_a_key_are_401_first(target: dict[str, Any]) -> None:
    client = target["client"]
    for method, body in [("POST", b"{"), ("PUT", b"{}"), ("POST", b'{"alias": "a"}')]:
        response = getattr(client.http, method.lower())(
            "/api/v1/keypairs", headers={"Content-Type": JSON}, body=body
        )
        check_refused(response, 401, "unauthenticated")
