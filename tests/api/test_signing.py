"""POST /keypairs/{keypair}/sign: every algorithm verified by cryptography and openssl, refusals, the log."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from chalicelib.clock import rfc3339, utc_now
from chalicelib.keys.algorithms import SIG_ALGS, key_id_of, verify_signature
from chalicelib.services.container import get_services
from chalicelib.storage.tables import AuditLogModel, SignatureLogModel
from tests.support.api import KEY_SPECS, add_user
from tests.support.clock import FakeMonotonic
from tests.support.requests import RequestCounter

SPECS = KEY_SPECS
BITS = ("256", "384", "512")


def _cases() -> list[tuple[str, str, str]]:
    cases = []
    for name, spec in SPECS.items():
        for bits in BITS:
            if spec["algorithm"] == "RSA":
                cases += [(name, f"SHA{bits}withRSA", f"SHA-{bits}"), (name, f"SHA{bits}withRSA/PSS", f"SHA-{bits}")]
            elif spec["algorithm"] == "ECDSA":
                cases.append((name, f"SHA{bits}withECDSA", f"SHA-{bits}"))
            else:
                cases.append((name, "Ed25519", f"SHA-{bits}"))
    return cases


class Caller:
    """JSON calls as one user, on a module-wide test client."""

    def __init__(self, client: Any, api_key: str) -> None:
        self.client = client
        self.headers = {"X-API-Key": api_key, "Content-Type": "application/json"}

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        raw = body if isinstance(body, str) else (None if body is None else json.dumps(body))
        fn = getattr(self.client.http, method.lower())
        kwargs = {"headers": self.headers} | ({"body": raw} if raw is not None else {})
        response = fn(f"/api/v1{path}", **kwargs)
        return response.status_code, json.loads(response.body) if response.body else None

    def ok(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        code, data = self.call(method, path, body)
        assert code == status, (code, data)
        return data

    def keypair(self, alias: str, **spec: Any) -> dict[str, Any]:
        body = {"alias": alias, "type": "static", "storage": "disk"} | spec
        return self.ok("POST", "/keypairs", body, 201)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def api(shared_account: Any) -> Iterator[Caller]:
    from chalice.test import Client

    from app import app

    with Client(app, stage_name="local") as client:
        yield Caller(client, shared_account.api_key)


@pytest.fixture(scope="module")
def keypairs(api: Caller) -> dict[str, dict[str, Any]]:
    """One disk keypair per algorithm and size, made once for the module."""
    return {name: api.keypair(f"sign-{name}", **spec) for name, spec in SPECS.items()}


@pytest.fixture(scope="module")
def cheap(api: Caller) -> dict[str, Any]:
    """An ECDSA P-256 keypair for the refusal tests."""
    return api.keypair("sign-cheap", algorithm="ECDSA", curve="P-256")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def digest_of(hash_algorithm: str, data: bytes) -> bytes:
    return hashlib.new(hash_algorithm.replace("-", "").lower(), data).digest()


def openssl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)


def openssl_verify_digest(tmp: Path, cert_pem: str, sig_alg: str, data: bytes, signature: bytes) -> None:
    """`openssl pkeyutl -verify` with the certificate's public key over the digest (or raw Ed25519 input)."""
    cert, data_file, sig = tmp / "cert.pem", tmp / "data.bin", tmp / "sig.bin"
    cert.write_text(cert_pem)
    data_file.write_bytes(data)
    sig.write_bytes(signature)
    args = ["pkeyutl", "-verify", "-certin", "-inkey", str(cert), "-in", str(data_file), "-sigfile", str(sig)]
    alg = SIG_ALGS[sig_alg]
    if alg.algorithm == "EdDSA":
        args.append("-rawin")
    else:
        args += ["-pkeyopt", f"digest:{alg.hash_algorithm.replace('-', '').lower()}"]  # type: ignore[union-attr]
    if alg.pss:
        args += ["-pkeyopt", "rsa_padding_mode:pss", "-pkeyopt", "rsa_pss_saltlen:digest"]
    result = openssl(*args)
    assert result.returncode == 0 and "Signature Verified Successfully" in result.stdout, result.stderr


def openssl_verify_message(tmp: Path, cert_pem: str, sig_alg: str, message: bytes, signature: bytes) -> None:
    """`openssl dgst -verify` (RSA, ECDSA) or `pkeyutl -rawin` (Ed25519) over the message itself."""
    alg = SIG_ALGS[sig_alg]
    if alg.algorithm == "EdDSA":
        openssl_verify_digest(tmp, cert_pem, sig_alg, message, signature)
        return
    cert, pub, msg, sig = tmp / "cert.pem", tmp / "pub.pem", tmp / "msg.bin", tmp / "sig.bin"
    cert.write_text(cert_pem)
    pub.write_text(openssl("x509", "-in", str(cert), "-pubkey", "-noout").stdout)
    msg.write_bytes(message)
    sig.write_bytes(signature)
    args = ["dgst", f"-{alg.hash_algorithm.replace('-', '').lower()}", "-verify", str(pub), "-signature", str(sig)]  # type: ignore[union-attr]
    if alg.pss:
        args += ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:digest"]
    result = openssl(*args, str(msg))
    assert result.returncode == 0 and "Verified OK" in result.stdout, result.stderr


def certificate_key(response: dict[str, Any]) -> Any:
    cert = x509.load_pem_x509_certificate(response["certificate"]["pem"].encode())
    assert key_id_of(cert.public_key()) == response["key_id"]  # type: ignore[arg-type]
    return cert.public_key()


def log_entries(account: str, since: str = "") -> dict[str, SignatureLogModel]:
    """Signature-log entries of an account (from `since`, an RFC 3339 prefix of the sort key)."""
    return {e.id: e for e in SignatureLogModel.query(account, SignatureLogModel.sk >= since, consistent_read=True)}


def denied_entries(account: str, since: str) -> dict[str, AuditLogModel]:
    entries = AuditLogModel.query(account, AuditLogModel.sk >= since, consistent_read=True)
    return {e.id: e for e in entries if e.action == "sign_denied"}


def a_moment_ago() -> str:
    return rfc3339(utc_now() - timedelta(seconds=2))


# -- every algorithm, size and sig_alg ------------------------------------------------------------------


@pytest.mark.parametrize(("name", "sig_alg", "hash_algorithm"), _cases())
def test_digest_signature_verifies_with_cryptography_and_openssl(
    api: Caller, keypairs: dict[str, dict[str, Any]], tmp_path: Path, name: str, sig_alg: str, hash_algorithm: str
) -> None:
    kp = keypairs[name]
    digest = digest_of(hash_algorithm, os.urandom(100))
    body = {"hash": b64(digest), "hash_algorithm": hash_algorithm, "sig_alg": sig_alg}
    response = api.ok("POST", f"/keypairs/{kp['id']}/sign", body)
    assert response["sig_alg"] == sig_alg
    assert (response["keypair_id"], response["key_id"], response["generation"]) == (kp["id"], kp["key_id"], 1)
    signature = base64.b64decode(response["signature"])
    verify_signature(certificate_key(response), SIG_ALGS[sig_alg], signature, digest)
    openssl_verify_digest(tmp_path, response["certificate"]["pem"], sig_alg, digest, signature)


@pytest.mark.parametrize(
    ("name", "hash_algorithm", "expected"),
    [("rsa-2048", "SHA-384", "SHA384withRSA"), ("p-384", "SHA-512", "SHA512withECDSA"),
     ("ed25519", "SHA-256", "Ed25519")],
)
def test_sig_alg_defaults_by_algorithm(
    api: Caller, keypairs: dict[str, dict[str, Any]], name: str, hash_algorithm: str, expected: str
) -> None:
    digest = digest_of(hash_algorithm, b"release")
    response = api.ok("POST", f"/keypairs/sign-{name}/sign", {"hash": b64(digest), "hash_algorithm": hash_algorithm})
    assert response["sig_alg"] == expected
    verify_signature(certificate_key(response), SIG_ALGS[expected], base64.b64decode(response["signature"]), digest)


@pytest.mark.parametrize(
    ("name", "sig_alg", "hash_algorithm"),
    [("rsa-2048", "SHA384withRSA", "SHA-384"), ("rsa-3072", "SHA256withRSA/PSS", "SHA-256"),
     ("p-256", "SHA256withECDSA", "SHA-256"), ("ed25519", "Ed25519", "SHA-512")],
)
def test_message_signature_verifies(
    api: Caller, keypairs: dict[str, dict[str, Any]], tmp_path: Path, name: str, sig_alg: str, hash_algorithm: str
) -> None:
    # Ed25519 signs the message itself (RFC 8419 CMS); RSA and ECDSA sign its hash_algorithm digest.
    message = b"\x31\x18" + os.urandom(200)
    body = {"message": b64(message), "hash_algorithm": hash_algorithm, "sig_alg": sig_alg}
    response = api.ok("POST", f"/keypairs/{keypairs[name]['id']}/sign", body)
    signature = base64.b64decode(response["signature"])
    signed = message if sig_alg == "Ed25519" else digest_of(hash_algorithm, message)
    verify_signature(certificate_key(response), SIG_ALGS[sig_alg], signature, signed)
    openssl_verify_message(tmp_path, response["certificate"]["pem"], sig_alg, message, signature)
    entry = log_entries(api_account(api), a_moment_ago())[response["signature_log_id"]]
    assert entry.hash == b64(digest_of(hash_algorithm, message)) and entry.hash_algorithm == hash_algorithm


def api_account(api: Caller) -> str:
    return str(api.ok("GET", "/me")["account"]["id"])


# -- the response and the log entry ---------------------------------------------------------------------


def test_log_entry_has_every_field_and_keeps_the_alias_in_force(api: Caller, shared_account: Any) -> None:
    since = a_moment_ago()
    kp = api.keypair("sign-log-before", algorithm="ECDSA", curve="P-256")
    digest = hashlib.sha256(b"app.exe contents").digest()
    body = {"hash": b64(digest), "file_name": "app.exe", "tool": "rotasign-cli/1.0"}
    first = api.ok("POST", "/keypairs/sign-log-before/sign", body)
    assert first["alias"] == "sign-log-before" and "timestamp_token" in first
    assert first["certificate"]["pem"] == kp["certificate"]["pem"]
    assert first["chain"] == [api.ok("GET", "/ca")["production"]]
    entry = log_entries(shared_account.id, since)[first["signature_log_id"]]
    assert {
        "signed_at": entry.signed_at, "status": entry.status, "signer": entry.signer,
        "keypair_id": entry.keypair_id, "keypair_alias": entry.keypair_alias, "keypair_type": entry.keypair_type,
        "key_id": entry.key_id, "generation": entry.generation, "algorithm": entry.algorithm,
        "sig_alg": entry.sig_alg, "signature_type": entry.signature_type, "hash_algorithm": entry.hash_algorithm,
        "hash": entry.hash, "signature": entry.signature, "file_name": entry.file_name, "tool": entry.tool,
        "client_ip": entry.client_ip, "error": entry.error,
    } == {
        "signed_at": first["signed_at"], "status": "success", "signer": shared_account.user_id,
        "keypair_id": kp["id"], "keypair_alias": "sign-log-before", "keypair_type": "static",
        "key_id": kp["key_id"], "generation": 1, "algorithm": "ECDSA", "sig_alg": "SHA256withECDSA",
        "signature_type": "production", "hash_algorithm": "SHA-256", "hash": b64(digest),
        "signature": first["signature"], "file_name": "app.exe", "tool": "rotasign-cli/1.0",
        "client_ip": "127.0.0.1", "error": None,
    }
    api.ok("PATCH", f"/keypairs/{kp['id']}", {"alias": "sign-log-after"})
    second = api.ok("POST", "/keypairs/sign-log-after/sign", {"hash": b64(digest)})
    entries = log_entries(shared_account.id, since)
    assert entries[second["signature_log_id"]].keypair_alias == "sign-log-after"
    assert entries[first["signature_log_id"]].keypair_alias == "sign-log-before"
    assert api.call("POST", "/keypairs/sign-log-before/sign", {"hash": b64(digest)})[0] == 404
    # The freed alias now names another keypair: a warm process must not sign with the old one.
    successor = api.keypair("sign-log-before", algorithm="EdDSA")
    assert api.ok("POST", "/keypairs/sign-log-before/sign", {"hash": b64(digest)})["keypair_id"] == successor["id"]


def test_test_keypair_chains_to_the_test_ca_only(api: Caller, tmp_path: Path) -> None:
    kp = api.keypair("sign-test-category", algorithm="ECDSA", curve="P-256", category="test")
    digest = hashlib.sha256(b"nightly build").digest()
    response = api.ok("POST", f"/keypairs/{kp['id']}/sign", {"hash": b64(digest)})
    cas = api.ok("GET", "/ca")
    assert response["chain"] == [cas["test"]]
    (tmp_path / "leaf.pem").write_text(response["certificate"]["pem"])
    (tmp_path / "test-ca.pem").write_text(cas["test"])
    (tmp_path / "prod-ca.pem").write_text(cas["production"])
    ok = openssl("verify", "-CAfile", str(tmp_path / "test-ca.pem"), str(tmp_path / "leaf.pem"))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    wrong = openssl("verify", "-CAfile", str(tmp_path / "prod-ca.pem"), str(tmp_path / "leaf.pem"))
    assert wrong.returncode != 0
    verify_signature(certificate_key(response), SIG_ALGS["SHA256withECDSA"], base64.b64decode(response["signature"]),
                     digest)
    entry = log_entries(api_account(api), a_moment_ago())[response["signature_log_id"]]
    assert entry.signature_type == "test"


def test_restricted_keypair_signs_for_allowed_users(api: Caller, shared_account: Any) -> None:
    api.keypair("sign-restricted-ok", algorithm="EdDSA", access="restricted", allowed_users=[shared_account.user_id])
    response = api.ok("POST", "/keypairs/sign-restricted-ok/sign", {"hash": b64(hashlib.sha256(b"x").digest())})
    assert response["sig_alg"] == "Ed25519"


def test_keypair_without_certificate_signs_with_empty_chain(api: Caller) -> None:
    kp = api.keypair("sign-no-cert", algorithm="EdDSA", generate_certificate=False)
    response = api.ok("POST", f"/keypairs/{kp['id']}/sign", {"hash": b64(hashlib.sha256(b"x").digest())})
    assert response["certificate"] is None and response["chain"] == []


# -- refusals: the right 4xx, one failed log entry with a sign_denied audit entry, no signature ------------


def _assert_refused(api: Caller, account: str, path: str, body: Any, status: int, code: str) -> SignatureLogModel:
    since = a_moment_ago()
    before, denied_before = log_entries(account, since), denied_entries(account, since)
    got_status, got = api.call("POST", path, body)
    assert (got_status, got["error"]["code"]) == (status, code), got
    assert "signature" not in got
    new = [e for i, e in log_entries(account, since).items() if i not in before]
    assert len(new) == 1, new
    entry = new[0]
    assert (entry.status, entry.error, entry.signature) == ("failed", code, None)
    denied = [e for i, e in denied_entries(account, since).items() if i not in denied_before]
    assert len(denied) == 1 and denied[0].error == code and denied[0].outcome == "failure"
    assert denied[0].details["signature_log_id"] == entry.id
    return entry


SHA256 = b64(hashlib.sha256(b"artifact").digest())


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"hash": b64(os.urandom(31))}, 400, "validation_error"),
        ({"hash": b64(os.urandom(32)), "hash_algorithm": "SHA-384"}, 400, "validation_error"),
        ({"hash": "not base64!"}, 400, "validation_error"),
        ({"hash": SHA256, "hash_algorithm": "MD5"}, 400, "unsupported_algorithm"),
        ({"hash": SHA256, "sig_alg": "SHA256withRSA"}, 400, "unsupported_algorithm"),
        ({"hash": SHA256, "sig_alg": "SHA384withECDSA"}, 400, "unsupported_algorithm"),
        ({"hash": SHA256, "sig_alg": "Ed448"}, 400, "unsupported_algorithm"),
        ({"hash": SHA256, "colour": "blue"}, 400, "validation_error"),
        ({"hash": SHA256, "message": SHA256}, 400, "validation_error"),
        ({"message": b64(os.urandom(4097))}, 400, "validation_error"),
        ({}, 400, "validation_error"),
        ("{not json", 400, "invalid_json"),
    ],
)
def test_bad_requests_are_refused_and_logged(
    api: Caller, shared_account: Any, cheap: dict[str, Any], body: Any, status: int, code: str
) -> None:
    entry = _assert_refused(api, shared_account.id, f"/keypairs/{cheap['id']}/sign", body, status, code)
    assert entry.keypair_id == cheap["id"] and entry.keypair_alias == "sign-cheap"


def test_unknown_keypair_is_refused_and_logged(api: Caller, shared_account: Any) -> None:
    entry = _assert_refused(api, shared_account.id, "/keypairs/no-such-alias/sign", {"hash": SHA256}, 404, "not_found")
    assert (entry.keypair_id, entry.keypair_alias) == (None, "no-such-alias")
    unknown_id = "kp_01JZZZZZZZZZZZZZZZZZZZZZZZ"
    entry = _assert_refused(api, shared_account.id, f"/keypairs/{unknown_id}/sign", {"hash": SHA256}, 404, "not_found")
    assert entry.keypair_id is None


def test_deleted_keypair_is_refused_and_logged(api: Caller, shared_account: Any) -> None:
    kp = api.keypair("sign-deleted", algorithm="ECDSA", curve="P-256")
    api.ok("POST", f"/keypairs/{kp['id']}/sign", {"hash": SHA256})
    api.ok("DELETE", f"/keypairs/{kp['id']}", status=204)
    entry = _assert_refused(api, shared_account.id, f"/keypairs/{kp['id']}/sign", {"hash": SHA256}, 404, "not_found")
    assert entry.keypair_id == kp["id"]
    _assert_refused(api, shared_account.id, "/keypairs/sign-deleted/sign", {"hash": SHA256}, 404, "not_found")


def test_offline_keypair_is_refused(api: Caller, shared_account: Any) -> None:
    kp = api.keypair("sign-offline", algorithm="ECDSA", curve="P-256", status="offline")
    _assert_refused(api, shared_account.id, f"/keypairs/{kp['id']}/sign", {"hash": SHA256}, 403, "keypair_offline")
    api.ok("PATCH", f"/keypairs/{kp['id']}", {"status": "online"})
    api.ok("POST", f"/keypairs/{kp['id']}/sign", {"hash": SHA256})


@pytest.mark.parametrize("kind", ["static", "dynamic"])
def test_a_refusal_is_audited_with_the_keypairs_own_type(api: Caller, shared_account: Any, kind: str) -> None:
    kp = api.keypair(f"sign-denied-{kind}", type=kind, algorithm="ECDSA", curve="P-256", status="offline")
    since = a_moment_ago()
    before = denied_entries(shared_account.id, since)
    _assert_refused(api, shared_account.id, f"/keypairs/{kp['id']}/sign", {"hash": SHA256}, 403, "keypair_offline")
    [denied] = [e for i, e in denied_entries(shared_account.id, since).items() if i not in before]
    assert (denied.type, denied.resource_id, denied.resource_alias) == (kind, kp["id"], kp["alias"])


def test_restricted_keypair_refuses_other_users(api: Caller, shared_account: Any) -> None:
    kp = api.keypair("sign-restricted-none", algorithm="ECDSA", curve="P-256", access="restricted")
    _assert_refused(api, shared_account.id, f"/keypairs/{kp['id']}/sign", {"hash": SHA256}, 403, "not_allowed")


def test_caller_without_sign_permission_is_refused_and_logged(
    api: Caller, shared_account: Any, cheap: dict[str, Any]
) -> None:
    # No user route exists yet, so the auditor is written through the data layer.
    user = add_user(shared_account, "auditor", roles=("auditor",))
    auditor = Caller(api.client, user.api_key)
    entry = _assert_refused(auditor, shared_account.id, f"/keypairs/{cheap['id']}/sign", {"hash": SHA256}, 403,
                            "forbidden")
    assert entry.signer == user.user_id


# -- cost: DynamoDB requests per signature, counted from botocore events ----------------------------------


@pytest.fixture
def states(monkeypatch: pytest.MonkeyPatch) -> FakeMonotonic:
    """The sign-state cache on a clock the test moves (fresh, so the test starts cold)."""
    from chalicelib.services.sign_state import SignStates

    services = get_services()
    clock = FakeMonotonic()
    fresh = SignStates(services.deps, monotonic=clock)
    monkeypatch.setattr(services.signing, "states", fresh)
    monkeypatch.setattr(services.keypairs, "states", fresh)
    return clock


@pytest.mark.parametrize("by", ["id", "alias"])
def test_a_warm_signature_costs_one_dynamodb_write(
    api: Caller, keypairs: dict[str, dict[str, Any]], by: str, states: FakeMonotonic
) -> None:
    kp = keypairs["rsa-3072"]
    path = f"/keypairs/{kp['id'] if by == 'id' else kp['alias']}/sign"
    services = get_services()
    # The principal and account caches last 5 s from when they were filled: fill them afresh here, so the
    # measured requests run with a warm principal.
    services.auth.forget()
    services.accounts.forget()
    api.ok("GET", "/me")
    with RequestCounter() as cold:
        api.ok("POST", path, {"hash": SHA256})
    read = ["BatchGetItem"] if by == "id" else ["GetItem", "BatchGetItem"]
    # Cold: the keypair row and its key material in one read (an alias is resolved first), KMS once.
    assert cold.of("dynamodb") == [*read, "PutItem"], cold.calls
    assert cold.of("kms") == ["Decrypt"], cold.calls
    with RequestCounter() as warm:
        api.ok("POST", path, {"hash": SHA256})
    assert warm.of("dynamodb") == ["PutItem"], warm.calls
    assert warm.of("kms") == [], warm.calls
    # Past the 5-second bound the state is read again (one request), the key object is kept: no KMS.
    states.advance(5.001)
    with RequestCounter() as stale:
        api.ok("POST", path, {"hash": SHA256})
    assert stale.of("dynamodb") == ["BatchGetItem", "PutItem"], stale.calls
    assert stale.of("kms") == [], stale.calls


def test_a_warm_batch_of_100_is_one_write(api: Caller, keypairs: dict[str, dict[str, Any]],
                                          states: FakeMonotonic) -> None:
    kp = keypairs["ed25519"]
    items = [{"hash": b64(hashlib.sha256(str(i).encode()).digest()), "file_name": f"f{i}"} for i in range(100)]
    api.ok("POST", f"/keypairs/{kp['id']}/sign", {"hash": SHA256})
    with RequestCounter() as counter:
        signed = api.ok("POST", f"/keypairs/{kp['id']}/sign", {"items": items})["items"]
    assert len(signed) == 100
    assert counter.of("dynamodb") == ["TransactWriteItems"], counter.calls
