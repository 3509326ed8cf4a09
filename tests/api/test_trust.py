"""Public trust material (`GET /api/v1/trust/{account_id}`, no API key) and what a third party does with it.

The outside verifier is plain `openssl`: a signature made two refreshes ago, whose certificate has
expired, verifies through its time-stamp token with the trust route's CA as the only anchor.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import re
import subprocess
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtensionOID

from tests.support.api import Account, Api
from tests.support.clock import installed
from tests.support.openssl import openssl, verify_chain, verify_digest

BASE_URL = "https://trust.example.com"


def public_get(client: Any, path: str, **headers: str) -> Any:
    """A request with no API key, as a third party makes it."""
    return client.http.get(path, headers=headers)


def test_the_trust_route_answers_without_a_key_with_every_anchor_and_the_log_key(client: Any, account: Account) -> None:
    response = public_get(client, f"/api/v1/trust/{account.id}")
    assert response.status_code == 200
    assert response.headers["Cache-Control"].startswith("public")
    trust = json.loads(response.body)
    assert set(trust) == {"account_id", "name", "production", "test", "tsa", "log_public_key", "log_origins",
                          "log_verifier_keys"}
    assert (trust["account_id"], trust["name"]) == (account.id, account.name)
    for role in ("production", "test", "tsa"):
        x509.load_pem_x509_certificate(trust[role].encode())
    key = serialization.load_pem_public_key(trust["log_public_key"].encode())
    assert isinstance(key, Ed25519PublicKey)
    assert trust["log_origins"] == {"signatures": f"rotasign/{account.id}/signatures",
                                    "audit": f"rotasign/{account.id}/audit"}
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    for log, origin in trust["log_origins"].items():
        # C2SP signed-note verifier key: name + hex(SHA-256(name || 0x0A || 0x01 || key)[:4]) + base64(0x01 || key)
        key_id = hashlib.sha256(origin.encode() + b"\n\x01" + raw).digest()[:4].hex()
        encoded = base64.b64encode(b"\x01" + raw).decode()
        assert trust["log_verifier_keys"][log] == f"{origin}+{key_id}+{encoded}"
    # The same anchors the authenticated route gives.
    mine = json.loads(client.http.get("/api/v1/ca", headers={"X-API-Key": account.api_key}).body)
    assert {role: trust[role] for role in mine} == mine


def test_an_unknown_account_is_a_404_that_says_nothing_else(client: Any, account: Account) -> None:
    unknown = "acct_01ARZ3NDEKTSV4RRFFQ69G5FAV"
    bodies = set()
    for path in (f"/api/v1/trust/{unknown}", "/api/v1/trust/not-an-id", f"/api/v1/trust/{account.id.lower()}",
                 f"/api/v1/trust/{unknown}/production.cer", f"/api/v1/trust/{account.id}/ca.key"):
        response = public_get(client, path, Accept="application/pkix-cert")
        assert response.status_code == 404, path
        body = json.loads(response.body)
        assert body["error"]["code"] == "not_found" and body["error"]["details"] == {}
        bodies.add(body["error"]["message"])
    assert bodies <= {"No such account.", "No such certificate."}
    # Everything else still needs a key.
    assert public_get(client, "/api/v1/ca").status_code == 401


def test_the_certificates_are_served_in_der_for_aia_fetchers(client: Any, account: Account, tmp_path: Path) -> None:
    trust = json.loads(public_get(client, f"/api/v1/trust/{account.id}").body)
    for name, role in (("production.cer", "production"), ("test.cer", "test"), ("tsa.cer", "tsa")):
        response = public_get(client, f"/api/v1/trust/{account.id}/{name}", Accept="application/pkix-cert")
        assert response.status_code == 200 and response.headers["Content-Type"] == "application/pkix-cert"
        assert x509.load_der_x509_certificate(response.body) == x509.load_pem_x509_certificate(trust[role].encode())
    # The TSA certificate chains to the production CA: what `openssl ts -verify` needs.
    result = verify_chain(tmp_path, trust["production"], trust["tsa"])
    assert result.returncode == 0, result.stderr


@pytest.fixture
def published(services: Any) -> Iterator[None]:
    """The deployment publishes its trust route under BASE_URL (ROTASIGN_PUBLIC_BASE_URL)."""
    real = services.deps.settings
    services.deps.settings = dataclasses.replace(real, public_base_url=BASE_URL)
    yield
    services.deps.settings = real


def ca_issuers(pem: str) -> list[str]:
    cert = x509.load_pem_x509_certificate(pem.encode())
    try:
        aia = cert.extensions.get_extension_for_oid(ExtensionOID.AUTHORITY_INFORMATION_ACCESS).value
    except x509.ExtensionNotFound:
        return []
    return [d.access_location.value for d in aia if d.access_method == AuthorityInformationAccessOID.CA_ISSUERS]


def test_issued_certificates_name_their_issuer_under_the_trust_route(
    client: Any, services: Any, published: None, tmp_path: Path
) -> None:
    from tests.support.api import make_account

    account = make_account()  # its TSA certificate is issued while the base URL is published
    api = Api(client, account)
    trust = json.loads(public_get(client, f"/api/v1/trust/{account.id}").body)
    assert ca_issuers(trust["tsa"]) == [f"{BASE_URL}/api/v1/trust/{account.id}/production.cer"]
    for category in ("production", "test"):
        kp = api.ok("POST", "/keypairs", {"alias": f"aia-{category}", "type": "dynamic", "algorithm": "EdDSA",
                                          "category": category}, 201)
        refreshed = api.ok("POST", f"/keypairs/{kp['id']}/refresh")
        for cert in (kp["certificate"], refreshed["certificate"]):
            [url] = ca_issuers(cert["pem"])
            assert url == f"{BASE_URL}/api/v1/trust/{account.id}/{category}.cer"
            # The URL's path, fetched with no key, is the issuer that verifies the certificate.
            issuer = public_get(client, url.removeprefix(BASE_URL), Accept="application/pkix-cert")
            assert issuer.status_code == 200
            issuer_pem = x509.load_der_x509_certificate(issuer.body).public_bytes(serialization.Encoding.PEM)
            assert verify_chain(tmp_path, issuer_pem.decode(), cert["pem"]).returncode == 0


def test_without_a_published_base_url_certificates_carry_no_aia(api: Api) -> None:
    kp = api.ok("POST", "/keypairs", {"alias": "no-aia", "type": "static", "algorithm": "EdDSA"}, 201)
    assert ca_issuers(kp["certificate"]["pem"]) == []


# -- a signature made two refreshes ago, verified years later with openssl --------------------------


def gen_time(token: Path) -> int:
    """The token's genTime as Unix seconds, read the way the README does (`openssl ts -reply -text`, then `date`)."""
    text = openssl("ts", "-reply", "-token_in", "-in", token, "-text").stdout
    stamp = re.search(r"^Time stamp: (.+)$", text, re.MULTILINE)
    assert stamp, text
    return int(subprocess.run(["date", "-d", stamp.group(1), "+%s"], capture_output=True, text=True,
                              check=True).stdout)


@pytest.mark.parametrize(("spec", "sig_alg"), [({"algorithm": "ECDSA", "curve": "P-256"}, "SHA256withECDSA"),
                                               ({"algorithm": "RSA", "key_size": 2048}, "SHA256withRSA/PSS"),
                                               ({"algorithm": "EdDSA"}, "Ed25519")])
def test_a_signature_made_two_refreshes_ago_verifies_with_openssl_from_public_material(
    client: Any, services: Any, tmp_path: Path, spec: dict[str, Any], sig_alg: str
) -> None:
    from chalicelib.services.accounts import bootstrap_account

    # Two days ago: every certificate of the first generation has long expired by the real clock.
    with installed(services.deps, timedelta(days=-2)) as clock:
        made = bootstrap_account(services.deps, f"years-{uuid.uuid4().hex[:8]}")
        api = Api(client, Account(made.account_id, made.account_name, made.user_id, made.api_key))
        api.ok("POST", "/keypairs", {"alias": "release", "type": "dynamic", **spec}, 201)
        clock.advance(30)
        digest = hashlib.sha256(b"app.tar.gz contents").digest()
        signed = api.ok("POST", "/keypairs/release/sign", {"hash": base64.b64encode(digest).decode(),
                                                            "hash_algorithm": "SHA-256", "sig_alg": sig_alg})
        for _ in range(2):
            clock.advance(900)
            api.ok("POST", "/keypairs/release/refresh")
    assert api.ok("GET", "/keypairs/release")["generation"] == 3 and signed["generation"] == 1

    # What the third party holds: the signature, its certificate and token, and the public trust route.
    sig, cert, token = tmp_path / "app.sig", tmp_path / "app.sig.pem", tmp_path / "app.sig.tsr"
    sig.write_bytes(base64.b64decode(signed["signature"]))
    cert.write_text(signed["certificate"]["pem"])
    token.write_bytes(base64.b64decode(signed["timestamp_token"]))
    trust = json.loads(public_get(client, f"/api/v1/trust/{made.account_id}").body)
    ca = tmp_path / "production.pem"
    ca.write_text(trust["production"])

    now = openssl("verify", "-CAfile", ca, cert)
    assert now.returncode != 0 and "certificate has expired" in now.stdout + now.stderr
    imprint = hashlib.sha256(sig.read_bytes()).hexdigest()
    stamped = openssl("ts", "-verify", "-digest", imprint, "-token_in", "-in", token, "-CAfile", ca)
    assert stamped.returncode == 0 and "Verification: OK" in stamped.stdout, stamped.stdout + stamped.stderr
    at = gen_time(token)
    assert at == int(datetime.fromisoformat(signed["signed_at"].replace("Z", "+00:00")).timestamp())
    then = openssl("verify", "-attime", str(at), "-CAfile", ca, cert)
    assert then.returncode == 0 and "OK" in then.stdout, then.stdout + then.stderr
    verify_digest(tmp_path, signed["certificate"]["pem"], sig_alg, digest, sig.read_bytes())
    # A token over another signature value does not vouch for this one.
    other = openssl("ts", "-verify", "-digest", "00" * 32, "-token_in", "-in", token, "-CAfile", ca)
    assert other.returncode != 0
