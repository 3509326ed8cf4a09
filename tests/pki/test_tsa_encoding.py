"""Byte for byte, a token from the TSA's pre-encoded template is what a plain asn1crypto build gives.

`reference_token` builds the token the straightforward way (every field through asn1crypto, as the TSA
did before it kept its fixed parts as DER); the tests read serial, genTime and signature back from a
TSA token, rebuild it with the reference and compare the bytes. RSA PKCS#1 v1.5 and Ed25519 are
deterministic, so there the reference signs for itself; ECDSA is randomised, so there the reference
checks that the token's signature covers exactly the attributes it encoded and reuses it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import pytest
from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from chalicelib.keys.algorithms import PrivateKey
from chalicelib.pki.tsa import ROTASIGN_TSA_POLICY, TimeStampAuthority, TimeStampResp

if TYPE_CHECKING:  # fixtures come from conftest.py; importing it at run time would be fragile
    from conftest import Pki

AT = datetime.now(UTC).replace(microsecond=456789)
NONCES = [None, 0, 128, 2**63, -129]  # every INTEGER edge case is in test_der.py
HASHES = {"sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha512": hashlib.sha512}
CURVE_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "secp256r1": hashes.SHA256,
    "secp384r1": hashes.SHA384,
    "secp521r1": hashes.SHA512,
}


def _digest_alg(key: PrivateKey) -> str:
    """RFC 5753 / RFC 8419: the CMS digest algorithm for the TSA key."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return CURVE_HASHES[key.curve.name]().name
    return "sha512" if isinstance(key, ed25519.Ed25519PrivateKey) else "sha256"


def reference_token(
    key: PrivateKey,
    certificate: x509.Certificate,
    chain: list[x509.Certificate],
    *,
    imprint: dict[str, Any],
    serial: int,
    gen_time: datetime,
    nonce: int | None,
    cert_req: bool,
    sign: Callable[[bytes], bytes],
    accuracy: dict[str, int],
    policy: str = ROTASIGN_TSA_POLICY,
) -> bytes:
    """The TimeStampToken for these fields, every part built and encoded by asn1crypto."""
    cert = asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))
    digest_alg = _digest_alg(key)
    tst_fields: dict[str, Any] = {
        "version": "v1",
        "policy": policy,
        "message_imprint": tsp.MessageImprint(imprint),
        "serial_number": serial,
        "gen_time": gen_time,
        "accuracy": accuracy,
        "ordering": False,
        "tsa": asn1_x509.GeneralName(name="directory_name", value=cert.subject),
    }
    if nonce is not None:
        tst_fields["nonce"] = nonce
    tst_der = tsp.TSTInfo(tst_fields).dump()
    signing_certificate = {
        "certs": [
            {
                "cert_hash": hashlib.sha256(cert.dump()).digest(),
                "issuer_serial": {
                    "issuer": [asn1_x509.GeneralName(name="directory_name", value=cert.issuer)],
                    "serial_number": cert.serial_number,
                },
            }
        ]
    }
    attrs = cms.CMSAttributes(
        [
            {"type": "content_type", "values": ["tst_info"]},
            {"type": "message_digest", "values": [hashlib.new(digest_alg, tst_der).digest()]},
            {"type": "signing_certificate_v2", "values": [signing_certificate]},
        ]
    )
    attrs_der = attrs.dump()
    if isinstance(key, rsa.RSAPrivateKey):
        signature_algorithm = {"algorithm": "sha256_rsa", "parameters": core.Null()}
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        signature_algorithm = {"algorithm": f"{digest_alg}_ecdsa"}
    else:
        signature_algorithm = {"algorithm": "ed25519"}
    signer_info = {
        "version": "v1",
        "sid": cms.SignerIdentifier(
            name="issuer_and_serial_number",
            value={"issuer": cert.issuer, "serial_number": cert.serial_number},
        ),
        "digest_algorithm": {"algorithm": digest_alg},
        "signed_attrs": attrs,
        "signature_algorithm": algos.SignedDigestAlgorithm(signature_algorithm),
        "signature": sign(attrs_der),
    }
    signed_data: dict[str, Any] = {
        "version": "v3",
        "digest_algorithms": [{"algorithm": digest_alg}],
        "encap_content_info": {"content_type": "tst_info", "content": core.ParsableOctetString(tst_der)},
        "signer_infos": [signer_info],
    }
    if cert_req:
        signed_data["certificates"] = [
            asn1_x509.Certificate.load(c.public_bytes(serialization.Encoding.DER)) for c in [certificate, *chain]
        ]
    der: bytes = cms.ContentInfo({"content_type": "signed_data", "content": signed_data}).dump()
    return der


def reference_signer(key: PrivateKey, token_signature: bytes) -> Callable[[bytes], bytes]:
    """Sign the DER signed attributes as the TSA must (ECDSA: check the TSA's signature covers them)."""

    def sign(attrs_der: bytes) -> bytes:
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return key.sign(attrs_der)
        if isinstance(key, rsa.RSAPrivateKey):
            return key.sign(attrs_der, padding.PKCS1v15(), hashes.SHA256())
        key.public_key().verify(token_signature, attrs_der, ec.ECDSA(CURVE_HASHES[key.curve.name]()))
        return token_signature

    return sign


def read_back(token: bytes) -> tuple[int, datetime, bytes]:
    """(serial, genTime, signature) of a token, loaded strictly; its TSTInfo parsed down to every field."""
    signed_data = cms.ContentInfo.load(token, strict=True)["content"]
    tst = tsp.TSTInfo.load(signed_data["encap_content_info"]["content"].contents, strict=True)
    tst.native  # noqa: B018 -- parse every field: any bad encoding raises here
    return tst["serial_number"].native, tst["gen_time"].native, signed_data["signer_infos"][0]["signature"].native


def check_against_reference(
    pki: Pki, tsa: TimeStampAuthority, token: bytes, *, imprint: dict[str, Any], nonce: int | None,
    cert_req: bool, chain: list[x509.Certificate], accuracy: dict[str, int],
) -> None:
    serial, gen_time, signature = read_back(token)
    expected = reference_token(
        pki.tsa_key, pki.tsa, chain, imprint=imprint, serial=serial, gen_time=gen_time, nonce=nonce,
        cert_req=cert_req, sign=reference_signer(pki.tsa_key, signature), accuracy=accuracy,
    )
    assert token == expected


@pytest.mark.parametrize("hash_name", list(HASHES))
@pytest.mark.parametrize("kind", ["ec", "ec384", "ec521", "rsa", "ed25519"])
def test_stamp_equals_the_asn1crypto_build(kind: str, hash_name: str, make_pki: Callable[..., Pki]) -> None:
    pki = make_pki(kind)
    tsa = TimeStampAuthority(pki.tsa_key, pki.tsa, chain=[pki.ca])
    digest = HASHES[hash_name](b"artifact").digest()
    for nonce in NONCES:
        for cert_req in (True, False):
            token = tsa.stamp(digest, hash_name, nonce=nonce, cert_req=cert_req, at=AT)
            imprint = {"hash_algorithm": {"algorithm": hash_name}, "hashed_message": digest}
            check_against_reference(
                pki, tsa, token, imprint=imprint, nonce=nonce, cert_req=cert_req, chain=[pki.ca],
                accuracy={"seconds": 1},
            )


@pytest.mark.parametrize(
    ("accuracy_ms", "accuracy"),
    [
        (1000, {"seconds": 1}),
        (1500, {"seconds": 1, "millis": 500}),
        (250, {"millis": 250}),
        (120_000, {"seconds": 120}),
    ],
)
def test_accuracy_equals_the_asn1crypto_build(accuracy_ms: int, accuracy: dict[str, int], pki: Pki) -> None:
    tsa = TimeStampAuthority(pki.tsa_key, pki.tsa, accuracy_ms=accuracy_ms)
    token = tsa.stamp(bytes(32))
    imprint = {"hash_algorithm": {"algorithm": "sha256"}, "hashed_message": bytes(32)}
    check_against_reference(
        pki, tsa, token, imprint=imprint, nonce=None, cert_req=True, chain=[], accuracy=accuracy
    )


@pytest.mark.parametrize("with_null", [True, False])
@pytest.mark.parametrize("kind", ["ec", "rsa", "ed25519"])
def test_respond_equals_the_asn1crypto_build(kind: str, with_null: bool, make_pki: Callable[..., Pki]) -> None:
    pki = make_pki(kind)
    tsa = TimeStampAuthority(pki.tsa_key, pki.tsa)
    digest = hashlib.sha384(b"artifact").digest()
    algorithm: dict[str, Any] = {"algorithm": "sha384"}
    if with_null:
        algorithm["parameters"] = core.Null()
    # RFC 3161 2.4.2: the token's imprint is the request's, NULL parameters or not.
    imprint = {"hash_algorithm": algos.DigestAlgorithm(algorithm), "hashed_message": digest}
    for nonce in (None, 2**63 + 5):
        for cert_req in (True, False):
            query: dict[str, Any] = {"version": "v1", "message_imprint": tsp.MessageImprint(imprint),
                                     "cert_req": cert_req}
            if nonce is not None:
                query["nonce"] = nonce
            reply = tsa.respond(tsp.TimeStampReq(query).dump())
            parsed = TimeStampResp.load(reply, strict=True)
            assert parsed["status"]["status"].native == "granted"
            token = parsed["time_stamp_token"].dump()
            assert reply == TimeStampResp({"status": {"status": "granted"}, "time_stamp_token": cms.ContentInfo.load(
                token)}).dump()
            check_against_reference(
                pki, tsa, token, imprint=imprint, nonce=nonce, cert_req=cert_req, chain=[], accuracy={"seconds": 1}
            )


def test_a_query_in_ber_still_gets_a_token_in_der(pki: Pki) -> None:
    digest = hashlib.sha256(b"artifact").digest()
    imprint = {"hash_algorithm": {"algorithm": "sha256"}, "hashed_message": digest}
    # The imprint's OCTET STRING length in the long form (81 20): legal BER, not DER.
    imprint_body = algos.DigestAlgorithm({"algorithm": "sha256"}).dump() + b"\x04\x81\x20" + digest
    body = b"\x02\x01\x01" + b"\x30" + bytes([len(imprint_body)]) + imprint_body
    ber = b"\x30" + bytes([len(body)]) + body
    assert tsp.TimeStampReq.load(ber)["message_imprint"]["hashed_message"].native == digest
    tsa = TimeStampAuthority(pki.tsa_key, pki.tsa)
    token = TimeStampResp.load(tsa.respond(ber))["time_stamp_token"].dump()
    check_against_reference(
        pki, tsa, token, imprint=imprint, nonce=None, cert_req=False, chain=[], accuracy={"seconds": 1}
    )


@pytest.mark.parametrize("kind", ["ec", "rsa", "ed25519"])
def test_tokens_reparse_strictly_and_survive_a_forced_re_encode(kind: str, make_pki: Callable[..., Pki]) -> None:
    pki = make_pki(kind)
    token = TimeStampAuthority(pki.tsa_key, pki.tsa, chain=[pki.ca]).stamp(bytes(32), nonce=2**63, at=AT)
    content_info = cms.ContentInfo.load(token, strict=True)
    content_info.native  # noqa: B018 -- parse every field of the whole token
    # A forced re-encode rewrites every length, sorts every SET OF and drops DEFAULTs: DER stays put.
    # (Slow in asn1crypto, hence once per key type rather than on every token above.)
    assert cms.ContentInfo.load(token).dump(force=True) == token


def _never() -> datetime:
    raise AssertionError("the clock must not be read when `at` is given")


@pytest.mark.parametrize(
    ("at", "gen_time"),
    [
        (AT, AT.replace(microsecond=456000)),
        (datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC), datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)),
        (datetime(2030, 1, 2, 5, 4, 5, 999999, tzinfo=timezone(timedelta(hours=2))),
         datetime(2030, 1, 2, 3, 4, 5, 999000, tzinfo=UTC)),
    ],
)
def test_at_is_the_gen_time(at: datetime, gen_time: datetime, pki: Pki) -> None:
    tsa = TimeStampAuthority(pki.tsa_key, pki.tsa, clock=_never)
    serial, read, _ = read_back(tsa.stamp(bytes(32), at=at))
    assert read == gen_time
    assert serial >> 80 == (gen_time - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def test_at_must_be_timezone_aware(pki: Pki) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        TimeStampAuthority(pki.tsa_key, pki.tsa).stamp(bytes(32), at=datetime(2030, 1, 1))


def test_serials_are_unique_for_one_at(pki: Pki) -> None:
    tsa = TimeStampAuthority(pki.tsa_key, pki.tsa)
    serials = {read_back(tsa.stamp(bytes(32), cert_req=False, at=AT))[0] for _ in range(2000)}
    assert len(serials) == 2000
