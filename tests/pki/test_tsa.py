"""The RFC 3161 TSA, checked against real `openssl ts` as the outside verifier and against verify_token."""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from asn1crypto import cms, tsp
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from chalicelib.errors import UnsupportedAlgorithm, ValidationError
from chalicelib.pki.tsa import ROTASIGN_TSA_POLICY, TimeStampAuthority, TimeStampResp
from rotasign_cli.timestamps import (
    TimestampVerificationError,
    parse_response,
    verify_signature_token,
    verify_token,
)

if TYPE_CHECKING:  # fixtures come from conftest.py; importing it at run time would be fragile
    from conftest import Pki

DATA = b"the artifact that was signed\n"
# Inside the validity of the fixtures' certificates (from an hour before collection, for 30 days).
NOW = datetime.now(UTC).replace(microsecond=0)


def openssl(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run `openssl` and return the finished process; the caller asserts on its return code."""
    return subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True, timeout=30)


def query_file(tmp_path: Path, *extra: str, data: bytes = DATA) -> Path:
    """Write DATA and an `openssl ts -query` for it; returns the .tsq path."""
    (tmp_path / "data").write_bytes(data)
    out = tmp_path / "q.tsq"
    proc = openssl("ts", "-query", "-data", tmp_path / "data", *extra, "-out", out)
    assert proc.returncode == 0, proc.stderr
    return out


def tst_info(token_der: bytes) -> Any:
    """The TSTInfo inside a DER TimeStampToken."""
    return cms.ContentInfo.load(token_der)["content"]["encap_content_info"]["content"].parsed


def query_der(*, algorithm: str = "sha256", digest: bytes | None = None, **fields: Any) -> bytes:
    """A DER TimeStampReq built with asn1crypto, for queries openssl refuses to make."""
    imprint = {"hash_algorithm": {"algorithm": algorithm}, "hashed_message": digest or hashlib.sha256(DATA).digest()}
    der: bytes = tsp.TimeStampReq({"version": "v1", "message_imprint": imprint, **fields}).dump()
    return der


@pytest.mark.parametrize("kind", ["ec", "rsa", "ec384", "ec521"])
def test_openssl_query_is_granted_and_verifies(kind: str, make_pki: Callable[..., Pki], tmp_path: Path) -> None:
    pki = make_pki(kind)
    query = query_file(tmp_path, "-sha256", "-cert")
    reply = tmp_path / "r.tsr"
    reply.write_bytes(TimeStampAuthority(pki.tsa_key, pki.tsa).respond(query.read_bytes()))

    text = openssl("ts", "-reply", "-in", reply, "-text")
    assert text.returncode == 0 and "Status: Granted." in text.stdout
    assert f"Policy OID: {ROTASIGN_TSA_POLICY}" in text.stdout
    ok = openssl("ts", "-verify", "-data", tmp_path / "data", "-in", reply, "-CAfile", pki.ca_pem)
    assert ok.returncode == 0 and "Verification: OK" in ok.stdout, ok.stderr

    (tmp_path / "other").write_bytes(DATA + b"tampered")
    bad = openssl("ts", "-verify", "-data", tmp_path / "other", "-in", reply, "-CAfile", pki.ca_pem)
    assert bad.returncode != 0


HASH_OPTIONS = {"sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha512": hashlib.sha512}


@pytest.mark.parametrize("hash_name", list(HASH_OPTIONS))
@pytest.mark.parametrize("kind", ["ec", "ec384", "ec521", "rsa"])  # openssl 3.0 cannot verify Ed25519 CMS
def test_openssl_verifies_replies_with_and_without_nonce_and_cert(
    kind: str, hash_name: str, make_pki: Callable[..., Pki], tmp_path: Path
) -> None:
    pki = make_pki(kind)
    tsa = TimeStampAuthority(pki.tsa_key, pki.tsa)
    for nonce in ([], ["-no_nonce"]):
        for cert in (["-cert"], []):
            query = query_file(tmp_path, f"-{hash_name}", *nonce, *cert)
            reply = tmp_path / "r.tsr"
            reply.write_bytes(tsa.respond(query.read_bytes()))
            # Without certReq the token carries no certificate: the verifier is handed the TSA's.
            untrusted: list[str | Path] = [] if cert else ["-untrusted", pki.tsa_pem]
            checks: list[list[str | Path]] = [["-data", tmp_path / "data"], ["-queryfile", query]]
            for against in checks:  # -queryfile checks the nonce
                ok = openssl("ts", "-verify", *against, "-in", reply, "-CAfile", pki.ca_pem, *untrusted)
                assert ok.returncode == 0 and "Verification: OK" in ok.stdout, (nonce, cert, against, ok.stderr)


@pytest.mark.parametrize("hash_name", list(HASH_OPTIONS))
@pytest.mark.parametrize("kind", ["ec", "ec384", "ec521", "rsa"])
def test_openssl_verifies_stamped_tokens(
    kind: str, hash_name: str, make_pki: Callable[..., Pki], tmp_path: Path
) -> None:
    pki = make_pki(kind)
    tsa = TimeStampAuthority(pki.tsa_key, pki.tsa, chain=[pki.ca])
    digest = HASH_OPTIONS[hash_name](DATA).digest()
    token = tmp_path / "token.der"
    for nonce in (None, 2**64 - 1):
        for cert_req in (True, False):
            token.write_bytes(tsa.stamp(digest, hash_name, nonce=nonce, cert_req=cert_req))
            untrusted: list[str | Path] = [] if cert_req else ["-untrusted", pki.tsa_pem]
            ok = openssl("ts", "-verify", "-digest", digest.hex(), "-in", token, "-token_in", "-CAfile", pki.ca_pem,
                         *untrusted)
            assert ok.returncode == 0 and "Verification: OK" in ok.stdout, (nonce, cert_req, ok.stderr)
            other = bytes([digest[0] ^ 1]) + digest[1:]
            bad = openssl("ts", "-verify", "-digest", other.hex(), "-in", token, "-token_in", "-CAfile", pki.ca_pem,
                          *untrusted)
            assert bad.returncode != 0


def test_openssl_reads_at_as_the_time_stamp(pki: Pki, tmp_path: Path) -> None:
    at = datetime(2026, 5, 1, 14, 30, 15, 123999, tzinfo=timezone(timedelta(hours=2)))
    (tmp_path / "token.der").write_bytes(TimeStampAuthority(pki.tsa_key, pki.tsa).stamp(bytes(32), at=at))
    text = openssl("ts", "-reply", "-in", tmp_path / "token.der", "-token_in", "-text")
    assert text.returncode == 0, text.stderr
    assert "Time stamp: May  1 12:30:15.123 2026 GMT" in text.stdout


def test_without_cert_req_the_token_carries_no_certificate(pki: Pki, tmp_path: Path) -> None:
    query = query_file(tmp_path, "-sha256")  # no -cert: certReq is absent
    reply_der = TimeStampAuthority(pki.tsa_key, pki.tsa, chain=[pki.ca]).respond(query.read_bytes())
    reply = tmp_path / "r.tsr"
    reply.write_bytes(reply_der)

    verify = ("ts", "-verify", "-data", tmp_path / "data", "-in", reply, "-CAfile", pki.ca_pem)
    assert openssl(*verify).returncode != 0
    ok = openssl(*verify, "-untrusted", pki.tsa_pem)
    assert ok.returncode == 0 and "Verification: OK" in ok.stdout, ok.stderr

    status, token = parse_response(reply_der)
    assert status == "granted" and token is not None
    digest = hashlib.sha256(DATA).digest()
    with pytest.raises(TimestampVerificationError, match="does not carry"):
        verify_token(token, digest=digest, trust_anchor=pki.ca)
    assert verify_token(token, digest=digest, trust_anchor=pki.ca, tsa_certificate=pki.tsa).tsa_certificate == pki.tsa


def test_cert_req_includes_tsa_certificate_then_chain(pki: Pki) -> None:
    tsa = TimeStampAuthority(pki.tsa_key, pki.tsa, chain=[pki.ca])
    certificates = cms.ContentInfo.load(tsa.stamp(bytes(32)))["content"]["certificates"]
    # CertificateSet is a SET OF, so DER sorts it: compare without order.
    names = {c.chosen["tbs_certificate"]["subject"].native["common_name"] for c in certificates}
    assert names == {"Test TSA", "Test Production CA"}
    assert cms.ContentInfo.load(tsa.stamp(bytes(32), cert_req=False))["content"]["certificates"].native is None


@pytest.mark.parametrize("kind", ["ec", "rsa"])
def test_signature_token_verifies_with_openssl_and_python(
    kind: str, make_pki: Callable[..., Pki], tmp_path: Path
) -> None:
    pki = make_pki(kind)
    signer = ec.generate_private_key(ec.SECP256R1())
    signature = signer.sign(DATA, ec.ECDSA(hashes.SHA256()))
    token = TimeStampAuthority(pki.tsa_key, pki.tsa).stamp(hashlib.sha256(signature).digest())
    (tmp_path / "token.der").write_bytes(token)

    def openssl_verify(sig: bytes) -> subprocess.CompletedProcess[str]:
        return openssl(
            "ts",
            "-verify",
            "-digest",
            hashlib.sha256(sig).hexdigest(),
            "-in",
            tmp_path / "token.der",
            "-token_in",
            "-CAfile",
            pki.ca_pem,
        )

    ok = openssl_verify(signature)
    assert ok.returncode == 0 and "Verification: OK" in ok.stdout, ok.stderr
    verified = verify_signature_token(token, signature, pki.ca)
    assert verified.tsa_certificate == pki.tsa
    assert verified.policy == ROTASIGN_TSA_POLICY
    assert verified.hash_algorithm == "sha256"

    changed = bytes([signature[0] ^ 1]) + signature[1:]
    assert openssl_verify(changed).returncode != 0
    with pytest.raises(TimestampVerificationError, match="imprint"):
        verify_signature_token(token, changed, pki.ca)


def test_nonce_is_echoed(pki: Pki, tmp_path: Path) -> None:
    query = query_file(tmp_path, "-sha256", "-cert")  # openssl adds a random 64-bit nonce
    nonce = tsp.TimeStampReq.load(query.read_bytes())["nonce"].native
    status, token = parse_response(TimeStampAuthority(pki.tsa_key, pki.tsa).respond(query.read_bytes()))
    assert status == "granted" and token is not None
    digest = hashlib.sha256(DATA).digest()
    assert verify_token(token, digest=digest, trust_anchor=pki.ca, nonce=nonce).nonce == nonce
    with pytest.raises(TimestampVerificationError, match="nonce"):
        verify_token(token, digest=digest, trust_anchor=pki.ca, nonce=nonce + 1)

    stamped = TimeStampAuthority(pki.tsa_key, pki.tsa).stamp(digest, nonce=42)
    assert verify_token(stamped, digest=digest, trust_anchor=pki.ca).nonce == 42


def test_serials_are_unique_across_threads(pki: Pki) -> None:
    tsa = TimeStampAuthority(pki.tsa_key, pki.tsa, clock=lambda: NOW)  # one frozen millisecond: worst case
    digest = hashlib.sha256(DATA).digest()
    with ThreadPoolExecutor(max_workers=8) as pool:
        tokens = list(pool.map(lambda _: tsa.stamp(digest, cert_req=False), range(1000)))
    serials = {tst_info(t)["serial_number"].native for t in tokens}
    assert len(serials) == 1000
    assert all(0 < s < 2**128 for s in serials)


def test_gen_time_comes_from_the_clock_with_accuracy(pki: Pki, tmp_path: Path) -> None:
    at = NOW.replace(microsecond=123456)
    token = TimeStampAuthority(pki.tsa_key, pki.tsa, clock=lambda: at, accuracy_ms=1500).stamp(bytes(32))
    verified = verify_token(token, digest=bytes(32), trust_anchor=pki.ca)
    assert verified.gen_time == at.replace(microsecond=123000)
    info = tst_info(token)
    assert info["accuracy"].native == {"seconds": 1, "millis": 500, "micros": None}
    assert info["ordering"].native is False
    assert verified.serial >> 80 == (at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


OTHER_DIGEST_OID = "1.2.840.113549.2.5"  # md5
BAD_ALG = "unrecognized or unsupported algorithm identifier"


@pytest.mark.parametrize(
    ("query", "fail_info", "openssl_text"),
    [
        (b"\x30\x03garbage", "bad_data_format", "the data submitted has the wrong format"),
        (b"", "bad_data_format", "the data submitted has the wrong format"),
        (query_der(digest=bytes(20)), "bad_data_format", "the data submitted has the wrong format"),
        (query_der(algorithm=OTHER_DIGEST_OID, digest=bytes(16)), "bad_alg", BAD_ALG),
        (query_der(algorithm="1.2.3.4.5", digest=bytes(32)), "bad_alg", BAD_ALG),
        (query_der(algorithm="sha1", digest=bytes(20)), "bad_alg", BAD_ALG),
        (query_der(req_policy="1.2.3.4"), "unaccepted_policy", "the requested TSA policy is not supported"),
        (
            query_der(extensions=[{"extn_id": "1.2.3.4", "extn_value": b"x"}]),
            "unaccepted_extensions",
            "the requested extension is not supported",
        ),
        (query_der(version="v2"), "bad_request", "transaction not permitted or supported"),
    ],
    ids=["garbage", "empty", "short-digest", "md5", "unknown-oid", "sha1", "policy", "extension", "version"],
)
def test_malformed_queries_get_a_rejection(
    pki: Pki, tmp_path: Path, query: bytes, fail_info: str, openssl_text: str
) -> None:
    reply_der = TimeStampAuthority(pki.tsa_key, pki.tsa).respond(query)
    assert parse_response(reply_der) == ("rejection", None)
    status = TimeStampResp.load(reply_der)["status"]
    assert status["status"].dump() == b"\x02\x01\x02"  # PKIStatus INTEGER 2, rejection
    assert status["fail_info"].native == {fail_info}

    (tmp_path / "r.tsr").write_bytes(reply_der)
    text = openssl("ts", "-reply", "-in", tmp_path / "r.tsr", "-text")
    assert text.returncode == 0, text.stderr
    assert "Status: Rejected." in text.stdout
    assert openssl_text in text.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("-sha1",), "rejection"),
        (("-sha256", "-tspolicy", "1.2.3.4"), "rejection"),
        (("-sha256", "-tspolicy", ROTASIGN_TSA_POLICY), "granted"),
        (("-sha512", "-no_nonce"), "granted"),
    ],
)
def test_openssl_query_options(pki: Pki, tmp_path: Path, args: tuple[str, ...], expected: str) -> None:
    query = query_file(tmp_path, *args)
    status, _ = parse_response(TimeStampAuthority(pki.tsa_key, pki.tsa).respond(query.read_bytes()))
    assert status == expected


def test_stamp_refuses_bad_digests(pki: Pki) -> None:
    tsa = TimeStampAuthority(pki.tsa_key, pki.tsa)
    with pytest.raises(ValidationError):
        tsa.stamp(bytes(31))
    with pytest.raises(UnsupportedAlgorithm):
        tsa.stamp(bytes(20), "sha1")


def test_constructor_refuses_unfit_certificates(pki: Pki, make_pki: Callable[..., Pki]) -> None:
    with pytest.raises(ValueError, match="does not belong"):
        TimeStampAuthority(make_pki("rsa").tsa_key, pki.tsa)
    loose = pki.reissue_tsa(eku_critical=False)
    with pytest.raises(ValueError, match="critical"):
        TimeStampAuthority(pki.tsa_key, loose)


def test_clock_must_be_timezone_aware(pki: Pki) -> None:
    naive = TimeStampAuthority(pki.tsa_key, pki.tsa, clock=lambda: datetime(2030, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        naive.stamp(bytes(32))
    assert TimeStampAuthority(pki.tsa_key, pki.tsa, clock=lambda: NOW.astimezone(UTC)).stamp(bytes(32))


def test_respond_never_raises_on_mutated_queries(pki: Pki) -> None:
    tsa = TimeStampAuthority(pki.tsa_key, pki.tsa)
    query = query_der(nonce=7, cert_req=True)
    for i in range(len(query)):
        for bit in (0x01, 0x80):
            mutated = query[:i] + bytes([query[i] ^ bit]) + query[i + 1 :]
            status, _ = parse_response(tsa.respond(mutated))
            assert status in ("granted", "rejection")
