"""Offline verification, check by check, on signatures made with an in-memory account PKI.

The time that counts is the time-stamp token's; these cases pin that down, along with the chain,
the usage and the key.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from rotasign_cli.algorithms import key_id
from rotasign_cli.bundle import Bundle
from rotasign_cli.trust import Trust, from_certificates
from rotasign_cli.verify import Check, evidence_from_bundle, verify
from tests.cli.localpki import NOW, Account

CONTENT = b"release 1.0\n"


def _pem(certificate: object) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()  # type: ignore[attr-defined]


def _bundle(account: Account, *, stamped_at: object = NOW + timedelta(minutes=1), certificate: object = None,
            key: ec.EllipticCurvePrivateKey | None = None) -> Bundle:
    key = key or ec.generate_private_key(ec.SECP256R1())
    certificate = certificate or account.issue(key)
    digest = hashlib.sha256(CONTENT).digest()
    signature = key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
    return Bundle(
        file_name="app", hash_algorithm="SHA-256", digest=digest, sig_alg="SHA256withECDSA", signature=signature,
        certificate=_pem(certificate), chain=(_pem(account.ca),), keypair_id="kp_01", keypair_alias="release",
        key_id=key_id(key.public_key()), generation=1,
        timestamp_token=account.stamp(signature, stamped_at) if stamped_at else None,  # type: ignore[arg-type]
        signature_log_id="log_01", account_id="acct_01", signed_at=None,
    )


def _run(tmp_path: Path, bundle: Bundle, trust: Trust, content: bytes = CONTENT) -> dict[str, Check]:
    target = tmp_path / "app"
    target.write_bytes(content)
    return {check.name: check for check in verify(target, evidence_from_bundle(bundle), trust)}


def _failed(checks: dict[str, Check]) -> set[str]:
    return {name for name, check in checks.items() if not check.ok}


@pytest.fixture
def account() -> Account:
    return Account.make()


@pytest.fixture
def trust(account: Account) -> Trust:
    return from_certificates([account.ca, account.tsa], "ca.pem")


def test_a_good_signature_passes_every_check(tmp_path: Path, account: Account, trust: Trust) -> None:
    checks = _run(tmp_path, _bundle(account), trust)
    assert _failed(checks) == set()
    assert list(checks) == ["digest", "signature", "timestamp", "chain", "usage", "time"]
    assert "2026-11-29T12:01:00Z" in checks["timestamp"].detail


def test_anchors_alone_suffice_when_the_token_carries_its_tsa_certificate(tmp_path: Path, account: Account) -> None:
    assert _failed(_run(tmp_path, _bundle(account), from_certificates([account.ca], "ca.pem"))) == set()


def test_a_token_after_the_certificate_expired_fails_on_time(tmp_path: Path, account: Account, trust: Trust) -> None:
    checks = _run(tmp_path, _bundle(account, stamped_at=NOW + timedelta(minutes=31)), trust)
    assert _failed(checks) == {"time"}
    assert "outside CN=release's validity" in checks["time"].detail


def test_a_token_before_the_certificate_was_valid_fails_on_time(tmp_path: Path, account: Account, trust: Trust) -> None:
    assert _failed(_run(tmp_path, _bundle(account, stamped_at=NOW - timedelta(minutes=1)), trust)) == {"time"}


def test_without_a_token_there_is_no_trusted_time(tmp_path: Path, account: Account, trust: Trust) -> None:
    # signed_at inside the validity changes nothing: it is the signer's claim, not evidence.
    bundle = replace(_bundle(account, stamped_at=None), signed_at=(NOW + timedelta(minutes=1)).isoformat())
    assert _failed(_run(tmp_path, bundle, trust)) == {"timestamp", "time"}


def test_a_token_over_another_signature_fails(tmp_path: Path, account: Account, trust: Trust) -> None:
    bundle = _bundle(account)
    other = _bundle(account)
    checks = _run(tmp_path, replace(bundle, timestamp_token=other.timestamp_token), trust)
    assert _failed(checks) == {"timestamp", "time"}


def test_a_token_from_another_accounts_tsa_fails(tmp_path: Path, account: Account, trust: Trust) -> None:
    bundle = _bundle(account)
    stranger = Account.make("stranger")
    foreign = stranger.stamp(bundle.signature, NOW + timedelta(minutes=1))
    checks = _run(tmp_path, replace(bundle, timestamp_token=foreign), trust)
    assert _failed(checks) == {"timestamp", "time"}


def test_a_certificate_from_another_ca_fails_the_chain(tmp_path: Path, account: Account, trust: Trust) -> None:
    stranger = Account.make("stranger")
    key = ec.generate_private_key(ec.SECP256R1())
    bundle = replace(_bundle(account, key=key, certificate=stranger.issue(key)), chain=(_pem(stranger.ca),))
    checks = _run(tmp_path, bundle, trust)
    assert _failed(checks) == {"chain"}
    assert "is not issued by a CA in ca.pem" in checks["chain"].detail


def test_a_certificate_without_code_signing_fails_the_usage(tmp_path: Path, account: Account, trust: Trust) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    bundle = _bundle(account, key=key, certificate=account.issue_without_code_signing(key))
    assert _failed(_run(tmp_path, bundle, trust)) == {"usage"}


def test_a_key_id_or_signature_that_does_not_match_fails_the_signature(
    tmp_path: Path, account: Account, trust: Trust
) -> None:
    bundle = _bundle(account)
    assert _failed(_run(tmp_path, replace(bundle, key_id="00" * 32), trust)) == {"signature"}
    assert _failed(_run(tmp_path, replace(bundle, sig_alg="SHA256withRSA"), trust)) == {"signature"}
    damaged = bytes([bundle.signature[0]]) + bytes([bundle.signature[1] ^ 1]) + bundle.signature[2:]
    assert "signature" in _failed(_run(tmp_path, replace(bundle, signature=damaged), trust))


def test_a_changed_file_fails_the_digest_only(tmp_path: Path, account: Account, trust: Trust) -> None:
    assert _failed(_run(tmp_path, _bundle(account), trust, content=CONTENT + b" ")) == {"digest"}
    forged = replace(_bundle(account), digest=hashlib.sha256(b"other").digest())
    assert _failed(_run(tmp_path, forged, trust, content=b"other")) == {"signature"}
