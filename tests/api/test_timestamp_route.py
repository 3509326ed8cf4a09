"""POST /api/v1/timestamp and the token on every signature, checked with `openssl ts` as the outside verifier."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import cms, tsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from chalicelib.errors import HsmUnavailable
from chalicelib.services.timestamping import StampCounter
from rotasign_cli.timestamps import parse_response, verify_signature_token, verify_token

QUERY = "application/timestamp-query"
REPLY = "application/timestamp-reply"
DATA = b"release-1.2.3.tar.gz contents\n"


def openssl(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run `openssl`; the caller asserts on the return code."""
    return subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True, timeout=30)


def make_query(tmp_path: Path, *options: str, data: bytes = DATA) -> Path:
    """`openssl ts -query -data FILE <options>`; returns the .tsq path (DATA is in tmp_path/data)."""
    (tmp_path / "data").write_bytes(data)
    out = tmp_path / "q.tsq"
    proc = openssl("ts", "-query", "-data", tmp_path / "data", *options, "-out", out)
    assert proc.returncode == 0, proc.stderr
    return out


def post(client: Any, body: bytes, api_key: str | None = None, query: str = "", accept: str | None = "*/*") -> Any:
    """POST a time-stamp query the way a TSA client does."""
    headers = {"Content-Type": QUERY}
    if accept is not None:
        headers["Accept"] = accept
    if api_key is not None:
        headers["X-API-Key"] = api_key
    return client.http.post(f"/api/v1/timestamp{query}", headers=headers, body=body)


def json_call(client: Any, api_key: str, method: str, path: str, body: Any = None) -> Any:
    headers = {"X-API-Key": api_key, "Content-Type": "application/json"}
    fn = getattr(client.http, method.lower())
    if body is None:
        return fn(f"/api/v1{path}", headers=headers)
    return fn(f"/api/v1{path}", headers=headers, body=json.dumps(body))


def production_ca(client: Any, api_key: str, tmp_path: Path) -> Path:
    """The production CA from GET /api/v1/ca, written for `-CAfile`."""
    response = json_call(client, api_key, "GET", "/ca")
    assert response.status_code == 200
    path = tmp_path / "ca.pem"
    path.write_text(json.loads(response.body)["production"])
    return path


def granted(response: Any) -> bytes:
    """The token of a granted reply (asserting the HTTP side on the way)."""
    assert response.status_code == 200, response.body[:300]
    assert response.headers["Content-Type"] == REPLY
    status, token = parse_response(response.body)
    assert status == "granted" and token is not None
    return token


def serial_of(token: bytes) -> int:
    info = cms.ContentInfo.load(token)["content"]["encap_content_info"]["content"].parsed
    serial: int = info["serial_number"].native
    return serial


# -- the route, with openssl on both ends ----------------------------------------------------------


def test_openssl_query_is_granted_and_verifies_against_the_production_ca(
    client: Any, shared_account: Any, tmp_path: Path
) -> None:
    tsq = make_query(tmp_path, "-sha256", "-cert")
    response = post(client, tsq.read_bytes(), shared_account.api_key)
    granted(response)
    reply = tmp_path / "r.tsr"
    reply.write_bytes(response.body)
    ca = production_ca(client, shared_account.api_key, tmp_path)

    text = openssl("ts", "-reply", "-in", reply, "-text")
    assert text.returncode == 0 and "Status: Granted." in text.stdout, text.stderr
    ok = openssl("ts", "-verify", "-data", tmp_path / "data", "-in", reply, "-CAfile", ca)
    assert ok.returncode == 0 and "Verification: OK" in ok.stdout, ok.stderr
    # -queryfile checks the imprint and the nonce of the query that was sent.
    ok = openssl("ts", "-verify", "-queryfile", tsq, "-in", reply, "-CAfile", ca)
    assert ok.returncode == 0, ok.stderr

    (tmp_path / "other").write_bytes(DATA + b"tampered")
    bad = openssl("ts", "-verify", "-data", tmp_path / "other", "-in", reply, "-CAfile", ca)
    assert bad.returncode != 0 and "Verification: OK" not in bad.stdout


def test_nonce_is_echoed_and_the_token_names_the_account_tsa(client: Any, shared_account: Any, tmp_path: Path) -> None:
    tsq = make_query(tmp_path, "-sha512", "-cert")
    nonce = tsp.TimeStampReq.load(tsq.read_bytes())["nonce"].native
    assert nonce is not None  # openssl adds a random 64-bit nonce by default
    token = granted(post(client, tsq.read_bytes(), shared_account.api_key))
    anchors = json.loads(json_call(client, shared_account.api_key, "GET", "/ca").body)
    stamped = verify_token(
        token,
        digest=hashlib.sha512(DATA).digest(),
        hash_algorithm="sha512",
        trust_anchor=x509.load_pem_x509_certificate(anchors["production"].encode()),
        nonce=nonce,
    )
    assert stamped.nonce == nonce
    assert stamped.tsa_certificate == x509.load_pem_x509_certificate(anchors["tsa"].encode())


@pytest.mark.parametrize("accept", ["*/*", REPLY, "application/timestamp-reply, */*;q=0.1"])
def test_accept_headers_that_tsa_clients_send(client: Any, shared_account: Any, tmp_path: Path, accept: str) -> None:
    tsq = make_query(tmp_path, "-sha256", "-cert")
    granted(post(client, tsq.read_bytes(), shared_account.api_key, accept=accept))


def _reject_cases(tmp_path: Path) -> dict[str, bytes]:
    digest = hashlib.sha256(DATA).digest()
    imprint = {"hash_algorithm": {"algorithm": "sha256"}, "hashed_message": digest[:20]}
    return {
        "garbage": b"this is not DER at all",
        "empty": b"",
        "truncated": make_query(tmp_path, "-sha256").read_bytes()[:-5],
        "wrong hash length": tsp.TimeStampReq({"version": "v1", "message_imprint": imprint}).dump(),
        "unknown hash": make_query(tmp_path, "-sha1").read_bytes(),
        "md5": tsp.TimeStampReq(
            {"version": "v1", "message_imprint": {"hash_algorithm": {"algorithm": "md5"}, "hashed_message": b"0" * 16}}
        ).dump(),
    }


def test_malformed_queries_get_an_rfc3161_rejection_not_an_error_page(
    client: Any, shared_account: Any, tmp_path: Path
) -> None:
    for name, body in _reject_cases(tmp_path).items():
        response = post(client, body, shared_account.api_key)
        assert response.status_code == 200, (name, response.body[:300])
        assert response.headers["Content-Type"] == REPLY, name
        assert parse_response(response.body) == ("rejection", None), name
        reply = tmp_path / "r.tsr"
        reply.write_bytes(response.body)
        text = openssl("ts", "-reply", "-in", reply, "-text")
        assert text.returncode == 0 and "Status: Rejected." in text.stdout, (name, text.stdout, text.stderr)


def test_serials_are_unique_over_200_stamps_through_the_route(client: Any, shared_account: Any, tmp_path: Path) -> None:
    from chalicelib.services.container import get_services

    before = get_services().timestamps.counter.totals().get(shared_account.id, 0)
    body = make_query(tmp_path, "-sha256").read_bytes()
    serials = {serial_of(granted(post(client, body, shared_account.api_key))) for _ in range(200)}
    assert len(serials) == 200
    # Counted (not logged one by one): the process counter saw every stamp.
    assert get_services().timestamps.counter.totals()[shared_account.id] - before == 200


# -- authentication and the public TSA ---------------------------------------------------------------


def test_without_a_key_the_route_answers_401_json(client: Any, shared_account: Any, tmp_path: Path) -> None:
    body = make_query(tmp_path, "-sha256").read_bytes()
    for query in ("", f"?account={shared_account.id}", "?account=acct_01ARZ3NDEKTSV4RRFFQ69G5FAV", "?account=x"):
        response = post(client, body, None, query)
        assert response.status_code == 401, query
        assert response.headers["Content-Type"] == "application/json"
        assert json.loads(response.body)["error"]["code"] == "unauthenticated"
    bad_key = post(client, body, "rsk_not-a-key")
    assert bad_key.status_code == 401


def test_public_tsa_answers_without_a_key_for_that_account_only(
    client: Any, account: Any, shared_account: Any, tmp_path: Path
) -> None:
    tsq = make_query(tmp_path, "-sha256", "-cert")
    assert post(client, tsq.read_bytes(), None, f"?account={account.id}").status_code == 401

    response = json_call(client, account.api_key, "PATCH", "/account", {"public_tsa": True})
    assert response.status_code == 200, response.body
    assert json.loads(response.body)["public_tsa"] is True

    public = post(client, tsq.read_bytes(), None, f"?account={account.id}")
    granted(public)
    reply = tmp_path / "r.tsr"
    reply.write_bytes(public.body)
    ca = production_ca(client, account.api_key, tmp_path)
    ok = openssl("ts", "-verify", "-data", tmp_path / "data", "-in", reply, "-CAfile", ca)
    assert ok.returncode == 0, ok.stderr

    # Another account's id, whose TSA is not public: still 401.
    assert post(client, tsq.read_bytes(), None, f"?account={shared_account.id}").status_code == 401
    # A key of one account cannot be pointed at another account's TSA.
    assert post(client, tsq.read_bytes(), shared_account.api_key, f"?account={account.id}").status_code == 401
    # A key with its own account in the query is fine.
    granted(post(client, tsq.read_bytes(), account.api_key, f"?account={account.id}"))

    json_call(client, account.api_key, "PATCH", "/account", {"public_tsa": False})
    assert post(client, tsq.read_bytes(), None, f"?account={account.id}").status_code == 401


# -- PATCH /account ----------------------------------------------------------------------------------


def test_patch_account_writes_one_audit_entry_and_refuses_unknown_fields(client: Any, account: Any) -> None:
    changed = json_call(client, account.api_key, "PATCH", "/account", {"teams_enabled": True, "public_tsa": True})
    assert changed.status_code == 200
    body = json.loads(changed.body)
    assert body["teams_enabled"] is True and body["public_tsa"] is True and body["require_keypair_profile"] is False
    assert json.loads(json_call(client, account.api_key, "GET", "/account").body) == body
    # Nothing changes: no second entry.
    assert json_call(client, account.api_key, "PATCH", "/account", {"public_tsa": True}).status_code == 200

    for bad in ({"name": "renamed"}, {"public_tsa": "yes"}, {"teams_enabled": 1}, ["public_tsa"]):
        response = json_call(client, account.api_key, "PATCH", "/account", bad)
        assert response.status_code == 400, bad
        assert json.loads(response.body)["error"]["code"] == "validation_error"

    logs = json.loads(json_call(client, account.api_key, "GET", "/audit-logs?type=account&action=update").body)
    assert len(logs["items"]) == 1
    entry = logs["items"][0]
    assert entry["resource_id"] == account.id and entry["actor"] == account.user_id
    assert entry["details"]["changes"] == {
        "teams_enabled": {"from": False, "to": True},
        "public_tsa": {"from": False, "to": True},
    }


def test_patch_account_needs_manage_account(client: Any, account: Any) -> None:
    from tests.support.api import add_user

    developer = add_user(account, "dev", roles=("developer",))
    response = json_call(client, developer.api_key, "PATCH", "/account", {"public_tsa": True})
    assert response.status_code == 403


# -- the token on every signature --------------------------------------------------------------------


@pytest.fixture(scope="module")
def dynamic_keypair(shared_account: Any) -> dict[str, Any]:
    from chalice.test import Client

    from app import app

    with Client(app, stage_name="local") as c:
        response = json_call(c, shared_account.api_key, "POST", "/keypairs", {
            "alias": "ts-dynamic", "type": "dynamic", "algorithm": "ECDSA", "curve": "P-256", "storage": "disk",
        })
    assert response.status_code == 201, response.body
    created: dict[str, Any] = json.loads(response.body)
    return created


def test_sign_response_carries_a_token_openssl_verifies_inside_the_cert_validity(
    client: Any, shared_account: Any, dynamic_keypair: dict[str, Any], tmp_path: Path
) -> None:
    digest = hashlib.sha256(DATA).digest()
    response = json_call(client, shared_account.api_key, "POST", "/keypairs/ts-dynamic/sign",
                         {"hash": base64.b64encode(digest).decode()})
    assert response.status_code == 200, response.body
    signed = json.loads(response.body)
    signature = base64.b64decode(signed["signature"])
    token = base64.b64decode(signed["timestamp_token"])
    cert = x509.load_pem_x509_certificate(signed["certificate"]["pem"].encode())
    public_key = cert.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    public_key.verify(signature, DATA, ec.ECDSA(hashes.SHA256()))

    ca = production_ca(client, shared_account.api_key, tmp_path)
    (tmp_path / "tok.der").write_bytes(token)
    ok = openssl("ts", "-verify", "-digest", hashlib.sha256(signature).hexdigest(), "-in", tmp_path / "tok.der",
                 "-token_in", "-CAfile", ca)
    assert ok.returncode == 0 and "Verification: OK" in ok.stdout, ok.stderr
    # A token is bound to its signature: another signature value does not verify.
    bad = openssl("ts", "-verify", "-digest", hashlib.sha256(signature + b"x").hexdigest(), "-in",
                  tmp_path / "tok.der", "-token_in", "-CAfile", ca)
    assert bad.returncode != 0

    stamped = verify_signature_token(token, signature, x509.load_pem_x509_certificate(ca.read_bytes()))
    assert cert.not_valid_before_utc <= stamped.gen_time <= cert.not_valid_after_utc
    signed_at = datetime.fromisoformat(signed["signed_at"].replace("Z", "+00:00")).astimezone(UTC)
    assert abs((stamped.gen_time - signed_at).total_seconds()) <= 1


class _TsaKeyDown:
    """Authorities whose TSA key cannot be reached (the HSM or storage is down)."""

    def get(self, account: Any, role: str) -> Any:
        raise HsmUnavailable()


def test_sign_fails_closed_with_503_when_the_tsa_key_is_unavailable(
    client: Any, shared_account: Any, dynamic_keypair: dict[str, Any], tmp_path: Path, monkeypatch: Any
) -> None:
    from chalicelib.services.container import get_services

    monkeypatch.setattr(get_services().timestamps, "authorities", _TsaKeyDown())
    digest = hashlib.sha256(b"unstamped").digest()
    response = json_call(client, shared_account.api_key, "POST", "/keypairs/ts-dynamic/sign",
                         {"hash": base64.b64encode(digest).decode(), "file_name": "unstamped.bin"})
    assert response.status_code == 503
    assert json.loads(response.body)["error"]["code"] == "hsm_unavailable"
    assert "signature" not in json.loads(response.body)

    route = post(client, make_query(tmp_path, "-sha256").read_bytes(), shared_account.api_key)
    assert route.status_code == 503 and route.headers["Content-Type"] == "application/json"
    monkeypatch.undo()

    logs = json.loads(json_call(client, shared_account.api_key, "GET",
                                f"/signature-logs?keypair_id={dynamic_keypair['id']}").body)
    entry = next(e for e in logs["items"] if e["file_name"] == "unstamped.bin")
    assert entry["status"] == "failed" and entry["signature"] is None and entry["error"] == "hsm_unavailable"


# -- the counter ---------------------------------------------------------------------------------------


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_stamps_are_reported_every_n_or_once_a_period_not_one_by_one() -> None:
    now = [0.0]
    counter = StampCounter(every=3, seconds=60.0, monotonic=lambda: now[0])
    lines = _Lines()
    logger = logging.getLogger("rotasign.timestamps")
    logger.addHandler(lines)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        counter.add("acct_a", "query")
        counter.add("acct_a", "signature")
        counter.add("acct_b", "signature")
        assert lines.records == []
        counter.add("acct_a", "signature")  # the third for acct_a
        assert [(r.account, r.count, r.query, r.signature) for r in lines.records] == [  # type: ignore[attr-defined]
            ("acct_a", 3, 1, 2)
        ]
        now[0] = 61.0
        counter.add("acct_b", "query")  # acct_b's first stamp was a period ago
        assert [(r.account, r.count) for r in lines.records[1:]] == [("acct_b", 2)]  # type: ignore[attr-defined]
        counter.add("acct_a", "query")
        counter.flush()
        assert [(r.account, r.count) for r in lines.records[2:]] == [("acct_a", 1)]  # type: ignore[attr-defined]
        assert counter.totals() == {"acct_a": 4, "acct_b": 2}
        assert all(r.event == "timestamps_issued" for r in lines.records)  # type: ignore[attr-defined]
    finally:
        logger.removeHandler(lines)
        logger.setLevel(level)
