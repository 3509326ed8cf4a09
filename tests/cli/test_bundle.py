"""The bundle file: written from a sign answer, read back strictly."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest

from rotasign_cli.bundle import MEDIA_TYPE, Bundle, BundleError

DIGEST = hashlib.sha256(b"artifact").digest()


def answer(**changes: Any) -> dict[str, Any]:
    """A sign answer as docs/api.md shows it."""
    base = {
        "signature": base64.b64encode(b"sig").decode(), "sig_alg": "SHA256withECDSA", "keypair_id": "kp_01",
        "alias": "release", "key_id": "ab" * 32, "generation": 7,
        "certificate": {"serial": "1f", "pem": "-----BEGIN CERTIFICATE-----\n", "not_before": "x", "not_after": "y",
                        "issuer": "CN=CA"},
        "chain": ["-----BEGIN CERTIFICATE-----\nCA\n"], "timestamp_token": base64.b64encode(b"token").decode(),
        "signature_log_id": "log_01", "signed_at": "2026-11-29T12:00:00Z",
    }
    return {**base, **changes}


def made(**changes: Any) -> Bundle:
    return Bundle.from_sign_response(answer(**changes), file_name="app.tar.gz", hash_algorithm="SHA-256",
                                     digest=DIGEST, account_id="acct_01", tool="rotasign-cli/test")


def test_a_bundle_holds_what_a_verifier_needs_and_reads_back() -> None:
    bundle = made()
    data = json.loads(bundle.to_json())
    assert data["media_type"] == MEDIA_TYPE
    assert data["digest"] == base64.b64encode(DIGEST).decode() and data["hash_algorithm"] == "SHA-256"
    assert {k: data[k] for k in ("sig_alg", "keypair_id", "keypair_alias", "key_id", "generation", "signature_log_id",
                                 "account_id", "file_name")} == {
        "sig_alg": "SHA256withECDSA", "keypair_id": "kp_01", "keypair_alias": "release", "key_id": "ab" * 32,
        "generation": 7, "signature_log_id": "log_01", "account_id": "acct_01", "file_name": "app.tar.gz",
    }
    assert data["timestamp_token"] == base64.b64encode(b"token").decode()
    assert Bundle.from_json(bundle.to_json()) == bundle


def test_a_keypair_without_certificate_or_token() -> None:
    bundle = made(certificate=None, chain=[], timestamp_token=None)
    assert Bundle.from_json(bundle.to_json()) == bundle
    assert bundle.certificate is None and bundle.timestamp_token is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"media_type": "application/json"}, "media_type"),
        ({"digest": "not base64!"}, "digest is not base64"),
        ({"digest": base64.b64encode(b"short").decode()}, "not a SHA-256 digest"),
        ({"hash_algorithm": "MD5"}, "hash_algorithm must be one of"),
        ({"sig_alg": "SHA1withRSA"}, "unknown sig_alg"),
        ({"generation": "7"}, "generation must be an integer"),
        ({"chain": "pem"}, "chain must be a list"),
        ({"key_id": ""}, "key_id must be a non-empty string"),
    ],
)
def test_a_bad_bundle_says_what_is_wrong(change: dict[str, Any], message: str) -> None:
    data = {**json.loads(made().to_json()), **change}
    with pytest.raises(BundleError, match=message):
        Bundle.from_json(json.dumps(data))


def test_missing_fields_and_non_json() -> None:
    data = json.loads(made().to_json())
    del data["signature"]
    with pytest.raises(BundleError, match="signature is missing"):
        Bundle.from_json(json.dumps(data))
    with pytest.raises(BundleError, match="not JSON"):
        Bundle.from_json(b"\xff")
    with pytest.raises(BundleError, match="not a JSON object"):
        Bundle.from_json("[]")
