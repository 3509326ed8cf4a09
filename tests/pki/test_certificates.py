"""Keypair and TSA certificates from the account CAs, checked with `cryptography` and the `openssl` CLI."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from chalicelib.clock import parse_rfc3339
from tests.support.api import KEY_SPECS

SPECS = KEY_SPECS


class Http:
    """JSON calls through the Chalice test client as one account's admin."""

    def __init__(self, client: Any, api_key: str) -> None:
        self.client = client
        self.headers = {"X-API-Key": api_key, "Content-Type": "application/json"}

    def ok(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        fn = getattr(self.client.http, method.lower())
        kwargs = {"headers": self.headers} | ({} if body is None else {"body": json.dumps(body)})
        response = fn(f"/api/v1{path}", **kwargs)
        assert response.status_code == status, (response.status_code, response.body[:300])
        return json.loads(response.body) if response.body else None


@pytest.fixture(scope="module")
def pki(shared_account: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The account's trust anchors as files, and a static keypair of every algorithm in both categories."""
    from chalice.test import Client

    from app import app

    folder = tmp_path_factory.mktemp("certificates")
    with Client(app, stage_name="local") as client:
        http = Http(client, shared_account.api_key)
        anchors = http.ok("GET", "/ca")
        files = {}
        for role, pem in anchors.items():
            files[role] = folder / f"{role}.pem"
            files[role].write_text(pem)
        keypairs: dict[tuple[str, str], dict[str, Any]] = {}
        for category in ("production", "test"):
            for name, spec in SPECS.items():
                if category == "test" and name in ("rsa-3072", "rsa-4096"):
                    continue  # the slow RSA sizes once is enough
                body = {"alias": f"{category}-{name}", "type": "static", "category": category, **spec}
                kp = http.ok("POST", "/keypairs", body, 201)
                (folder / f"{kp['alias']}.pem").write_text(kp["certificate"]["pem"])
                keypairs[(category, name)] = kp
        yield {"http": http, "anchors": anchors, "files": files, "folder": folder, "keypairs": keypairs,
               "account": shared_account}


def openssl_verify(ca: Path, cert: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """`openssl verify -CAfile ca cert`."""
    return subprocess.run(
        ["openssl", "verify", "-CAfile", str(ca), *extra, str(cert)], capture_output=True, text=True, timeout=30
    )


def account_name(pki: dict[str, Any]) -> str:
    """The account's name as the API shows it."""
    return str(pki["http"].ok("GET", "/me")["account"]["name"])


def subject(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> list[str]:
    """The values of one subject attribute."""
    return [str(a.value) for a in cert.subject.get_attributes_for_oid(oid)]


PARAMS = [pytest.param(c, n, id=f"{c}-{n}") for c in ("production", "test") for n in SPECS
          if not (c == "test" and n in ("rsa-3072", "rsa-4096"))]


@pytest.mark.parametrize(("category", "name"), PARAMS)
def test_openssl_accepts_only_the_own_category_ca(pki: dict[str, Any], category: str, name: str) -> None:
    kp = pki["keypairs"][(category, name)]
    cert_file = pki["folder"] / f"{kp['alias']}.pem"
    other = "test" if category == "production" else "production"
    accepted = openssl_verify(pki["files"][category], cert_file)
    assert accepted.returncode == 0 and f"{cert_file}: OK" in accepted.stdout, accepted.stderr
    rejected = openssl_verify(pki["files"][other], cert_file)
    assert rejected.returncode != 0 and "OK" not in rejected.stdout


@pytest.mark.parametrize(("category", "name"), PARAMS)
def test_certificate_names_key_and_usage(pki: dict[str, Any], category: str, name: str) -> None:
    kp = pki["keypairs"][(category, name)]
    cert = x509.load_pem_x509_certificate(kp["certificate"]["pem"].encode())
    ca = x509.load_pem_x509_certificate(pki["anchors"][category].encode())

    assert subject(cert, NameOID.COMMON_NAME) == [kp["alias"]]
    assert subject(cert, NameOID.ORGANIZATION_NAME) == [account_name(pki)]
    assert subject(cert, NameOID.ORGANIZATIONAL_UNIT_NAME) == (["Test"] if category == "test" else [])
    assert cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.CODE_SIGNING]
    )
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    cert.verify_directly_issued_by(ca)
    assert cert.issuer == ca.subject and kp["certificate"]["issuer"] == ca.subject.rfc4514_string()

    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert hashlib.sha256(spki).hexdigest() == kp["key_id"]
    assert cert.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode() == kp["public_key"]
    assert format(cert.serial_number, "x") == kp["certificate"]["serial"]
    assert kp["certificate"]["not_before"] == cert.not_valid_before_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert kp["certificate"]["not_after"] == cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    # A static key's certificate covers its life from 5 minutes before creation (clock skew), to the second.
    created = parse_rfc3339(kp["created_at"])
    assert cert.not_valid_before_utc == (created - timedelta(minutes=5)).replace(microsecond=0)
    assert cert.not_valid_after_utc > created + timedelta(days=300)


def test_serials_differ(pki: dict[str, Any]) -> None:
    serials = [kp["certificate"]["serial"] for kp in pki["keypairs"].values()]
    assert len(set(serials)) == len(serials)


def test_trust_anchors(pki: dict[str, Any]) -> None:
    name = account_name(pki)
    production = x509.load_pem_x509_certificate(pki["anchors"]["production"].encode())
    test = x509.load_pem_x509_certificate(pki["anchors"]["test"].encode())
    assert set(pki["anchors"]) == {"production", "test", "tsa"}
    assert production.subject != test.subject and production.public_key() != test.public_key()
    for ca, ou in ((production, []), (test, ["Test"])):
        assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
        assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
        assert subject(ca, NameOID.ORGANIZATION_NAME) == [name]
        assert subject(ca, NameOID.ORGANIZATIONAL_UNIT_NAME) == ou
        ca.verify_directly_issued_by(ca)

def test_another_accounts_ca_does_not_vouch_for_these_keys(pki: dict[str, Any]) -> None:
    import uuid

    from chalicelib.services.accounts import bootstrap_account
    from chalicelib.services.container import get_deps

    other = bootstrap_account(get_deps(), f"other-{uuid.uuid4().hex[:8]}")
    anchors = Http(pki["http"].client, other.api_key).ok("GET", "/ca")
    assert anchors["production"] != pki["anchors"]["production"] and anchors["test"] != pki["anchors"]["test"]
    foreign = pki["folder"] / "foreign-production.pem"
    foreign.write_text(anchors["production"])
    cert_file = pki["folder"] / "production-p-256.pem"
    assert openssl_verify(pki["files"]["production"], cert_file).returncode == 0
    assert openssl_verify(foreign, cert_file).returncode != 0


def test_tsa_certificate(pki: dict[str, Any]) -> None:
    tsa = x509.load_pem_x509_certificate(pki["anchors"]["tsa"].encode())
    production = x509.load_pem_x509_certificate(pki["anchors"]["production"].encode())
    eku = tsa.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert eku.critical and list(eku.value) == [ExtendedKeyUsageOID.TIME_STAMPING]
    assert tsa.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    tsa.verify_directly_issued_by(production)
    assert subject(tsa, NameOID.ORGANIZATION_NAME) == [account_name(pki)]
    accepted = openssl_verify(pki["files"]["production"], pki["files"]["tsa"], "-purpose", "timestampsign")
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert openssl_verify(pki["files"]["test"], pki["files"]["tsa"]).returncode != 0


def test_no_certificate_when_not_asked(pki: dict[str, Any]) -> None:
    kp = pki["http"].ok("POST", "/keypairs", {"alias": "bare", "type": "dynamic", "algorithm": "EdDSA",
                                             "generate_certificate": False}, 201)
    assert kp["certificate"] is None and kp["generate_certificate"] is False
    assert pki["http"].ok("GET", "/keypairs/bare")["certificate"] is None


@pytest.mark.parametrize(
    ("created", "due", "not_after"),
    [
        (datetime(2031, 3, 4, 12, 10, 0, tzinfo=UTC), "2031-03-04T12:15:00Z", datetime(2031, 3, 4, 12, 30, tzinfo=UTC)),
        (datetime(2031, 3, 4, 12, 0, 0, tzinfo=UTC), "2031-03-04T12:15:00Z", datetime(2031, 3, 4, 12, 30, tzinfo=UTC)),
        # Inside the minute before a tick, that tick would already see the key as due: the next one refreshes it.
        (datetime(2031, 3, 4, 12, 14, 30, tzinfo=UTC), "2031-03-04T12:30:00Z",
         datetime(2031, 3, 4, 12, 45, tzinfo=UTC)),
        (datetime(2031, 3, 4, 23, 50, 1, tzinfo=UTC), "2031-03-05T00:00:00Z", datetime(2031, 3, 5, 0, 15, tzinfo=UTC)),
    ],
)
@pytest.mark.parametrize("category", ["production", "test"])
def test_dynamic_certificate_lives_until_the_tick_after_next(
    pki: dict[str, Any], monkeypatch: pytest.MonkeyPatch, created: datetime, due: str, not_after: datetime,
    category: str,
) -> None:
    from chalicelib.services.container import get_deps

    monkeypatch.setattr(get_deps(), "clock", lambda: created)
    alias = f"dyn-{category}-{created:%d%H%M%S}"
    kp = pki["http"].ok("POST", "/keypairs", {"alias": alias, "type": "dynamic", "algorithm": "ECDSA",
                                             "curve": "P-256", "category": category}, 201)
    cert = x509.load_pem_x509_certificate(kp["certificate"]["pem"].encode())
    assert kp["next_refresh_at"] == due
    assert cert.not_valid_before_utc == created - timedelta(minutes=5)
    assert cert.not_valid_after_utc == not_after == parse_rfc3339(due) + timedelta(minutes=15)
    assert subject(cert, NameOID.COMMON_NAME) == [alias]
    # openssl agrees, at a time inside the validity, and refuses after it.
    path = pki["folder"] / f"{alias}.pem"
    path.write_text(kp["certificate"]["pem"])
    inside = str(int((created + timedelta(minutes=1)).timestamp()))
    after = str(int((not_after + timedelta(seconds=1)).timestamp()))
    assert openssl_verify(pki["files"][category], path, "-attime", inside).returncode == 0
    assert openssl_verify(pki["files"][category], path, "-attime", after).returncode != 0


def test_rename_keeps_the_issued_certificate(pki: dict[str, Any]) -> None:
    http = pki["http"]
    kp = http.ok("POST", "/keypairs", {"alias": "before-rename", "type": "static", "algorithm": "EdDSA"}, 201)
    renamed = http.ok("PATCH", f"/keypairs/{kp['id']}", {"alias": "after-rename"})
    assert renamed["certificate"] == kp["certificate"]
    cert = x509.load_pem_x509_certificate(renamed["certificate"]["pem"].encode())
    assert subject(cert, NameOID.COMMON_NAME) == ["before-rename"]
