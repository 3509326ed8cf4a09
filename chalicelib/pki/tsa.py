"""An RFC 3161 time-stamping authority signing with an account's TSA key.

Tokens are CMS SignedData over a TSTInfo, with the signed attributes OpenSSL 3.0 insists on (content
type, message digest and ESS signing-certificate-v2), so `openssl ts -verify` accepts them with the
account's production CA as trust anchor. OpenSSL 3.0 cannot verify Ed25519 CMS, so an Ed25519 TSA
works with `verify_token` only; bootstrap gives the TSA an ECDSA P-256 or RSA key.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from chalicelib.errors import UnsupportedAlgorithm, ValidationError
from chalicelib.keys.algorithms import SIG_ALGS, PrivateKey, SigAlg, sign
from chalicelib.pki.timestamps import IMPRINT_HASH_LENGTHS, TimeStampResp, hash_name

# The TSA policy under which rotasign issues tokens (TSTInfo.policy). It is a UUID-derived OID under
# 2.25 (ITU-T X.667), an arc anyone may allocate from without registration, so it collides with no
# one's policy. Replace it with an OID under the operator's own enterprise arc if they have one.
ROTASIGN_TSA_POLICY = "2.25.268885318414942805909510176005677690690"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SERIAL_TIME_BITS = 48
_SERIAL_RANDOM_BITS = 80


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class _Rejection(Exception):
    """A query the TSA refuses; carries the PKIFailureInfo bit and a human-readable reason."""

    def __init__(self, fail_info: str, text: str) -> None:
        self.fail_info = fail_info
        self.text = text
        super().__init__(text)


class TimeStampAuthority:
    """Issues RFC 3161 time-stamp tokens with an account's TSA key."""

    def __init__(
        self,
        key: PrivateKey,
        certificate: x509.Certificate,
        *,
        chain: Sequence[x509.Certificate] = (),
        clock: Callable[[], datetime] = utc_now,
        policy_oid: str = ROTASIGN_TSA_POLICY,
        accuracy_ms: int = 1000,
    ) -> None:
        """Check the key, certificate and settings fit together; raises ValueError/UnsupportedAlgorithm."""
        self._key = key
        self._sig_alg, self._digest_alg, self._signature_alg = _signature_scheme(key)
        spki = serialization.PublicFormat.SubjectPublicKeyInfo
        der = serialization.Encoding.DER
        if key.public_key().public_bytes(der, spki) != certificate.public_key().public_bytes(der, spki):
            raise ValueError("The TSA certificate does not belong to the TSA key.")
        try:
            eku = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
        except x509.ExtensionNotFound:
            eku = None
        # Verifiers (openssl included) reject tokens from any other kind of certificate; fail early.
        if eku is None or not eku.critical or list(eku.value) != [ExtendedKeyUsageOID.TIME_STAMPING]:
            raise ValueError("The TSA certificate needs a critical extended key usage of timeStamping only.")
        if accuracy_ms < 1:
            raise ValueError("accuracy_ms must be at least 1.")
        self._policy: str = core.ObjectIdentifier(policy_oid).dotted  # raises ValueError if malformed
        self._clock = clock
        seconds, millis = divmod(accuracy_ms, 1000)
        self._accuracy: dict[str, int] = {}
        if seconds:
            self._accuracy["seconds"] = seconds
        if millis:
            self._accuracy["millis"] = millis

        # The fixed parts are kept as DER and loaded afresh per token: asn1crypto objects shared
        # between structures get re-encoded on every dump (slow) and are not safe across threads.
        cert_der = certificate.public_bytes(der)
        asn1_cert = asn1_x509.Certificate.load(cert_der)
        self._certificate_ders = [cert_der] + [c.public_bytes(der) for c in chain]
        self._tsa_name_der: bytes = asn1_x509.GeneralName(name="directory_name", value=asn1_cert.subject).dump()
        self._sid_der: bytes = cms.SignerIdentifier(
            name="issuer_and_serial_number",
            value={"issuer": asn1_cert.issuer, "serial_number": asn1_cert.serial_number},
        ).dump()
        self._signing_certificate_der: bytes = tsp.SigningCertificateV2(
            {
                "certs": [
                    {
                        # hash_algorithm is left at its DEFAULT, SHA-256.
                        "cert_hash": hashlib.sha256(cert_der).digest(),
                        "issuer_serial": {
                            "issuer": [asn1_x509.GeneralName(name="directory_name", value=asn1_cert.issuer)],
                            "serial_number": asn1_cert.serial_number,
                        },
                    }
                ]
            }
        ).dump()
        self._content_type_attr_der: bytes = cms.CMSAttribute({"type": "content_type", "values": ["tst_info"]}).dump()
        self._signing_certificate_attr_der: bytes = cms.CMSAttribute(
            {
                "type": "signing_certificate_v2",
                "values": [tsp.SigningCertificateV2.load(self._signing_certificate_der)],
            }
        ).dump()

    def stamp(
        self,
        digest: bytes,
        hash_algorithm: str = "sha256",
        *,
        nonce: int | None = None,
        cert_req: bool = True,
        at: datetime | None = None,
    ) -> bytes:
        """A DER TimeStampToken over `digest`; raises UnsupportedAlgorithm or ValidationError."""
        name = hash_name(hash_algorithm)
        if name is None:
            raise UnsupportedAlgorithm(
                "hash_algorithm must be SHA-256, SHA-384 or SHA-512.", details={"field": "hash_algorithm"}
            )
        if len(digest) != IMPRINT_HASH_LENGTHS[name]:
            raise ValidationError(
                f"A {name} digest is {IMPRINT_HASH_LENGTHS[name]} bytes long.", details={"field": "digest"}
            )
        imprint = tsp.MessageImprint({"hash_algorithm": {"algorithm": name}, "hashed_message": digest})
        token: bytes = self._token(imprint, nonce, cert_req, at).dump()
        return token

    def respond(self, query_der: bytes) -> bytes:
        """A DER TimeStampResp to a DER TimeStampReq; bad queries get a `rejection` reply, not an error.

        Only failures of the key itself (for example HsmUnavailable from an HSM-backed key) raise, so
        the route can answer 503 and the client can retry.
        """
        try:
            query = _parse_query(query_der, self._policy)
        except _Rejection as rejection:
            reply: bytes = TimeStampResp(
                {
                    "status": {
                        "status": "rejection",
                        "status_string": [rejection.text],
                        "fail_info": {rejection.fail_info},
                    }
                }
            ).dump()
            return reply
        token = self._token(query["message_imprint"], query["nonce"].native, bool(query["cert_req"].native))
        granted: bytes = TimeStampResp({"status": {"status": "granted"}, "time_stamp_token": token}).dump()
        return granted

    def _token(self, imprint: Any, nonce: int | None, cert_req: bool, at: datetime | None = None) -> Any:
        """The TimeStampToken (a cms.ContentInfo) for one message imprint, made at `at` (default: now)."""
        now = self._clock() if at is None else at
        if now.tzinfo is None:
            raise ValueError("The TSA clock must return timezone-aware datetimes.")
        # genTime carries milliseconds: finer digits would claim more precision than `accuracy`.
        gen_time = now.astimezone(UTC)
        gen_time = gen_time.replace(microsecond=gen_time.microsecond // 1000 * 1000)
        tst_fields: dict[str, Any] = {
            "version": "v1",
            "policy": self._policy,
            "message_imprint": imprint,
            "serial_number": _new_serial(gen_time),
            "gen_time": gen_time,
            "accuracy": self._accuracy,
            "ordering": False,
            "tsa": asn1_x509.GeneralName.load(self._tsa_name_der),
        }
        if nonce is not None:
            tst_fields["nonce"] = nonce
        tst_der: bytes = tsp.TSTInfo(tst_fields).dump()

        # The two fixed attributes go in as loaded DER: built from dicts, asn1crypto re-encodes them on
        # every dump, and for a signing-certificate attribute of 128+ bytes that took ~15 ms a stamp.
        signed_attrs = cms.CMSAttributes(
            [
                cms.CMSAttribute.load(self._content_type_attr_der),
                {"type": "message_digest", "values": [hashlib.new(self._digest_alg, tst_der).digest()]},
                cms.CMSAttribute.load(self._signing_certificate_attr_der),
            ]
        )
        # The signature covers the DER SET OF (CMSAttributes dumps sorted, as DER requires).
        attrs_der: bytes = signed_attrs.dump()
        if isinstance(self._key, ed25519.Ed25519PrivateKey):
            to_sign = attrs_der  # PureEdDSA signs the message itself (RFC 8419)
        else:
            to_sign = hashlib.new(self._digest_alg, attrs_der).digest()
        signature = sign(self._key, self._sig_alg, to_sign)

        signature_algorithm: dict[str, Any] = {"algorithm": self._signature_alg}
        if isinstance(self._key, rsa.RSAPrivateKey):
            signature_algorithm["parameters"] = core.Null()  # RFC 4055: NULL for PKCS#1 v1.5
        signer_info = cms.SignerInfo(
            {
                "version": "v1",
                "sid": cms.SignerIdentifier.load(self._sid_der),
                "digest_algorithm": {"algorithm": self._digest_alg},
                # Embed exactly the bytes that were signed.
                "signed_attrs": cms.CMSAttributes.load(attrs_der),
                "signature_algorithm": algos.SignedDigestAlgorithm(signature_algorithm),
                "signature": signature,
            }
        )
        signed_data: dict[str, Any] = {
            "version": "v3",  # RFC 5652: v3 because the content type is not id-data
            "digest_algorithms": [{"algorithm": self._digest_alg}],
            "encap_content_info": {"content_type": "tst_info", "content": core.ParsableOctetString(tst_der)},
            "signer_infos": [signer_info],
        }
        # RFC 3161 2.4.1: without certReq the certificates field MUST be absent.
        if cert_req:
            signed_data["certificates"] = [asn1_x509.Certificate.load(c) for c in self._certificate_ders]
        return cms.ContentInfo({"content_type": "signed_data", "content": cms.SignedData(signed_data)})


def _parse_query(query_der: bytes, policy: str) -> Any:
    """The parsed tsp.TimeStampReq, or _Rejection with the PKIFailureInfo bit OpenSSL's TSA would use."""
    try:
        query = tsp.TimeStampReq.load(query_der, strict=True)
        query.native  # noqa: B018 -- parse every field now, so bad DER is rejected here
    except Exception as exc:  # asn1crypto raises ValueError, TypeError, KeyError... on bad input
        raise _Rejection("bad_data_format", "The request is not a DER TimeStampReq.") from exc
    if query["version"].native != "v1":
        raise _Rejection("bad_request", "Only version 1 requests are supported.")
    algorithm = query["message_imprint"]["hash_algorithm"]
    name = algorithm["algorithm"].native
    if name not in IMPRINT_HASH_LENGTHS:
        raise _Rejection("bad_alg", "The message digest algorithm must be SHA-256, SHA-384 or SHA-512.")
    parameters = algorithm["parameters"]
    if not isinstance(parameters, core.Void | core.Null):
        raise _Rejection("bad_alg", "The message digest algorithm takes no parameters.")
    if len(query["message_imprint"]["hashed_message"].native) != IMPRINT_HASH_LENGTHS[name]:
        raise _Rejection("bad_data_format", f"A {name} message imprint is {IMPRINT_HASH_LENGTHS[name]} bytes.")
    requested_policy = query["req_policy"]
    if not isinstance(requested_policy, core.Void) and requested_policy.dotted != policy:
        raise _Rejection("unaccepted_policy", "The requested policy is not supported.")
    if query["extensions"].native:
        raise _Rejection("unaccepted_extensions", "Request extensions are not supported.")
    return query


def _signature_scheme(key: PrivateKey) -> tuple[SigAlg, str, str]:
    """(SigAlg, CMS digest algorithm, CMS signature algorithm) for a TSA key."""
    if isinstance(key, rsa.RSAPrivateKey):
        return SIG_ALGS["SHA256withRSA"], "sha256", "sha256_rsa"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        # Match the hash to the curve's strength, as RFC 5753 recommends.
        bits = {"secp384r1": "384", "secp521r1": "512"}.get(key.curve.name, "256")
        return SIG_ALGS[f"SHA{bits}withECDSA"], f"sha{bits}", f"sha{bits}_ecdsa"
    if isinstance(key, ed25519.Ed25519PrivateKey):
        # RFC 8419: with signed attributes, the message digest for Ed25519 is SHA-512.
        return SIG_ALGS["Ed25519"], "sha512", "ed25519"
    raise UnsupportedAlgorithm("A TSA key must be RSA, ECDSA or Ed25519.")


def _new_serial(gen_time: datetime) -> int:
    """A 128-bit serial: 48-bit milliseconds since 1970, then 80 random bits.

    Lambda instances and threads share no counter, so uniqueness rests on the random bits: two
    serials collide only if issued in the same millisecond with the same 80 bits (odds about 2^-41
    even at a million stamps in one millisecond).
    """
    millis = (gen_time - _EPOCH) // timedelta(milliseconds=1)
    serial = ((millis % (1 << _SERIAL_TIME_BITS)) << _SERIAL_RANDOM_BITS) | secrets.randbits(_SERIAL_RANDOM_BITS)
    return serial or 1
