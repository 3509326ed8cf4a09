"""The offline time-stamp verifier of the CLI (`rotasign_cli.timestamps`) on tokens from the TSA."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from asn1crypto import cms

from chalicelib.pki.tsa import TimeStampAuthority
from rotasign_cli.timestamps import TimestampVerificationError, parse_response, verify_token

if TYPE_CHECKING:  # fixtures come from conftest.py; importing it at run time would be fragile
    from conftest import Pki

DATA = b"the artifact that was signed\n"
# Inside the validity of the fixtures' certificates (from an hour before collection, for 30 days).
NOW = datetime.now(UTC).replace(microsecond=0)
HASHES = {"sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha512": hashlib.sha512}
ROOT = Path(__file__).resolve().parents[2]


def tst_info(token_der: bytes) -> Any:
    """The TSTInfo inside a DER TimeStampToken."""
    return cms.ContentInfo.load(token_der)["content"]["encap_content_info"]["content"].parsed


def test_the_verifier_runs_without_the_service() -> None:
    # The CLI is installed on users' machines without rotasign's server code.
    probe = (
        "import sys, rotasign_cli.timestamps; "
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('chalicelib', 'app', 'boto3', 'pynamodb')); "
        "print(','.join(loaded))"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


@pytest.mark.parametrize("hash_name", list(HASHES))
@pytest.mark.parametrize("kind", ["ec", "ec384", "ec521", "rsa", "ed25519"])
def test_tokens_of_every_key_and_hash_verify(kind: str, hash_name: str, make_pki: Callable[..., Pki]) -> None:
    pki = make_pki(kind)
    digest = HASHES[hash_name](DATA).digest()
    at = NOW.replace(microsecond=250_000)
    token = TimeStampAuthority(pki.tsa_key, pki.tsa).stamp(digest, hash_name, nonce=9, at=at)
    verified = verify_token(token, digest=digest, trust_anchor=pki.ca, hash_algorithm=hash_name, nonce=9)
    assert (verified.hash_algorithm, verified.gen_time, verified.nonce) == (hash_name, at, 9)
    assert verified.tsa_certificate == pki.tsa
    with pytest.raises(TimestampVerificationError, match="imprint"):
        verify_token(token, digest=bytes(len(digest)), trust_anchor=pki.ca, hash_algorithm=hash_name)


def test_ed25519_tsa_verifies_in_python(make_pki: Callable[..., Pki]) -> None:
    # openssl 3.0 cannot verify Ed25519 CMS, so only verify_token checks this one.
    pki = make_pki("ed25519")
    token = TimeStampAuthority(pki.tsa_key, pki.tsa).stamp(hashlib.sha512(DATA).digest(), "SHA-512")
    verified = verify_token(token, digest=hashlib.sha512(DATA).digest(), trust_anchor=pki.ca, hash_algorithm="sha512")
    assert verified.hash_algorithm == "sha512"


def test_verify_token_refuses_untrusted_tokens(pki: Pki, make_pki: Callable[..., Pki]) -> None:
    digest = hashlib.sha256(DATA).digest()
    token = TimeStampAuthority(pki.tsa_key, pki.tsa).stamp(digest)
    verify_token(token, digest=digest, trust_anchor=pki.ca)

    def refused(match: str, token_der: bytes = token, **kwargs: Any) -> None:
        with pytest.raises(TimestampVerificationError, match=match):
            verify_token(token_der, **{"digest": digest, "trust_anchor": pki.ca, **kwargs})

    refused("not issued by the trust anchor", trust_anchor=make_pki("ec", "stranger").ca)
    refused("not issued by the trust anchor", trust_anchor=make_pki("rsa").ca)
    refused("imprint", digest=bytes(32))
    refused("sha384", hash_algorithm="sha384")
    refused("Unsupported hash", hash_algorithm="md5")
    refused("not a DER TimeStampToken", token_der=b"junk")
    # Same key and serial, but the certificate's EKU is not critical: not a TSA certificate.
    loose = pki.reissue_tsa(eku_critical=False, serial=pki.tsa.serial_number)
    refused("timeStamping only", tsa_certificate=loose)
    # Any byte changed in the signed content breaks the message digest or the signature.
    tst = tst_info(token).dump()
    at = token.index(tst) + len(tst) - 1
    refused("message-digest", token_der=token[:at] + bytes([token[at] ^ 1]) + token[at + 1 :])
    refused("signature", token_der=token[:-1] + bytes([token[-1] ^ 1]))


def test_verify_token_refuses_gen_time_outside_the_certificate(pki: Pki) -> None:
    short = pki.reissue_tsa(not_after=NOW + timedelta(minutes=30))
    late = TimeStampAuthority(pki.tsa_key, short, clock=lambda: NOW + timedelta(hours=1))
    with pytest.raises(TimestampVerificationError, match="not valid at the token's genTime"):
        verify_token(late.stamp(bytes(32)), digest=bytes(32), trust_anchor=pki.ca)


def test_parse_response_refuses_garbage() -> None:
    with pytest.raises(TimestampVerificationError):
        parse_response(b"\x01\x02")


def test_every_byte_of_a_token_is_protected(pki: Pki) -> None:
    token = TimeStampAuthority(pki.tsa_key, pki.tsa).stamp(bytes(32))
    for i in range(len(token)):
        mutated = token[:i] + bytes([token[i] ^ 0x01]) + token[i + 1 :]
        with pytest.raises(TimestampVerificationError):
            verify_token(mutated, digest=bytes(32), trust_anchor=pki.ca)
