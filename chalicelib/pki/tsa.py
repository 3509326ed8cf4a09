"""An RFC 3161 time-stamping authority signing with an account's TSA key.

Tokens are CMS SignedData over a TSTInfo, with the signed attributes OpenSSL 3.0 insists on (content
type, message digest and ESS signing-certificate-v2), so `openssl ts -verify` accepts them with the
account's production CA as trust anchor. OpenSSL 3.0 cannot verify Ed25519 CMS, so an Ed25519 TSA's
tokens verify with rotasign's own verifier only; bootstrap gives the TSA an ECDSA P-256 or RSA key.

Every signature the service makes carries a token, so a token must cost little more than its
signature: asn1crypto encodes the parts that never change once per TSA, and each token only fills
in serial, genTime, message imprint and nonce with the DER helpers of `chalicelib.pki.der`.
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
from chalicelib.pki import der

# The TSA policy under which rotasign issues tokens (TSTInfo.policy). It is a UUID-derived OID under
# 2.25 (ITU-T X.667), an arc anyone may allocate from without registration, so it collides with no
# one's policy. Replace it with an OID under the operator's own enterprise arc if they have one.
ROTASIGN_TSA_POLICY = "2.25.268885318414942805909510176005677690690"

# Message-imprint hashes a TSA may time-stamp, by asn1crypto name, with their digest lengths.
# SHA-1 is deliberately absent: a SHA-1 imprint no longer binds the data.
IMPRINT_HASH_LENGTHS: dict[str, int] = {"sha256": 32, "sha384": 48, "sha512": 64}

_HASHES: dict[str, Callable[[bytes], Any]] = {
    "sha256": hashlib.sha256,
    "sha384": hashlib.sha384,
    "sha512": hashlib.sha512,
}

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)
_SERIAL_TIME_BITS = 48
_SERIAL_RANDOM_BITS = 80

# Fixed DER pieces, encoded by asn1crypto once at import.
_SIGNED_DATA_OID: bytes = cms.ContentType("signed_data").dump()
_TST_INFO_OID: bytes = cms.ContentType("tst_info").dump()
_MESSAGE_DIGEST_OID: bytes = cms.CMSAttributeType("message_digest").dump()
_VERSION_1: bytes = core.Integer(1).dump()
_VERSION_3: bytes = core.Integer(3).dump()
_GRANTED: bytes = tsp.PKIStatusInfo({"status": "granted"}).dump()
# The imprint's AlgorithmIdentifier: asn1crypto's (NULL parameters) for `stamp`; for a query, the
# same form the client used (RFC 3161 2.4.2: the imprint is the request's), keyed by "NULL present".
_IMPRINT_ALGORITHMS: dict[str, bytes] = {n: algos.DigestAlgorithm({"algorithm": n}).dump() for n in _HASHES}
_QUERY_IMPRINT_ALGORITHMS: dict[tuple[str, bool], bytes] = {
    (n, null): algos.DigestAlgorithm({"algorithm": n, "parameters": core.Null() if null else None}).dump()
    for n in _HASHES
    for null in (True, False)
}


def hash_name(name: str) -> str | None:
    """The asn1crypto name (`sha256`) for `sha256`, `SHA-256` or `SHA256`; None when not supported."""
    normalized = name.lower().replace("-", "")
    return normalized if normalized in IMPRINT_HASH_LENGTHS else None


class TimeStampResp(core.Sequence):  # type: ignore[misc]
    """RFC 3161 TimeStampResp: asn1crypto's own marks the token mandatory, so rejections fail to parse."""

    _fields = [
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]


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
    """Issues RFC 3161 time-stamp tokens with an account's TSA key; safe to share between threads."""

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
        self._sig_alg, digest_alg, signature_alg = _signature_scheme(key)
        self._hash = _HASHES[digest_alg]
        self._pure_eddsa = isinstance(key, ed25519.Ed25519PrivateKey)
        spki = serialization.PublicFormat.SubjectPublicKeyInfo
        encoding = serialization.Encoding.DER
        if key.public_key().public_bytes(encoding, spki) != certificate.public_key().public_bytes(encoding, spki):
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
        policy = core.ObjectIdentifier(policy_oid)  # raises ValueError if malformed
        self._policy: str = policy.dotted
        self._clock = clock
        seconds, millis = divmod(accuracy_ms, 1000)
        accuracy = {name: value for name, value in (("seconds", seconds), ("millis", millis)) if value}

        # Everything below is the same in every token: encode it once, as DER bytes (immutable, so
        # threads share them; asn1crypto objects would re-encode on dump and are not thread-safe).
        cert_der = certificate.public_bytes(encoding)
        asn1_cert = asn1_x509.Certificate.load(cert_der)
        tsa_name = asn1_x509.GeneralName(name="directory_name", value=asn1_cert.subject)
        # TSTInfo: version and policy open it; accuracy and the tsa name ([0] EXPLICIT) close it, with
        # `ordering` left out at its DEFAULT (FALSE), as DER requires, and the nonce between them.
        self._tst_head = _VERSION_1 + policy.dump()
        self._tst_accuracy = tsp.Accuracy(accuracy).dump()
        self._tst_tsa = der.tlv(der.context(0), tsa_name.dump())
        signing_certificate = tsp.SigningCertificateV2(
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
        )
        self._fixed_attrs: tuple[bytes, bytes] = (
            cms.CMSAttribute({"type": "content_type", "values": ["tst_info"]}).dump(),
            cms.CMSAttribute({"type": "signing_certificate_v2", "values": [signing_certificate]}).dump(),
        )
        digest_algorithm = algos.DigestAlgorithm({"algorithm": digest_alg}).dump()
        sid = cms.SignerIdentifier(
            name="issuer_and_serial_number",
            value={"issuer": asn1_cert.issuer, "serial_number": asn1_cert.serial_number},
        ).dump()
        self._signer_head = _VERSION_1 + sid + digest_algorithm
        # RFC 4055: PKCS#1 v1.5 identifiers carry NULL parameters; ECDSA and Ed25519 ones carry none.
        parameters = core.Null() if isinstance(key, rsa.RSAPrivateKey) else None
        self._signature_algorithm = algos.SignedDigestAlgorithm(
            {"algorithm": signature_alg, "parameters": parameters}
        ).dump()
        # RFC 5652: v3 because the content type is not id-data; CertificateSet is a SET OF, so sorted.
        self._signed_data_head = _VERSION_3 + der.set_of(digest_algorithm)
        certificates = [cert_der] + [c.public_bytes(encoding) for c in chain]
        self._certificates = der.tlv(der.context(0), b"".join(sorted(certificates)))

    def stamp(
        self,
        digest: bytes,
        hash_algorithm: str = "sha256",
        *,
        nonce: int | None = None,
        cert_req: bool = True,
        at: datetime | None = None,
    ) -> bytes:
        """A DER TimeStampToken over `digest`; raises UnsupportedAlgorithm, ValidationError or ValueError.

        genTime is `at` (default: the TSA's clock) cut to whole milliseconds; `at` must be
        timezone-aware. With `cert_req` the token carries the TSA certificate and chain.
        """
        name = hash_name(hash_algorithm)
        if name is None:
            raise UnsupportedAlgorithm(
                "hash_algorithm must be SHA-256, SHA-384 or SHA-512.", details={"field": "hash_algorithm"}
            )
        if len(digest) != IMPRINT_HASH_LENGTHS[name]:
            raise ValidationError(
                f"A {name} digest is {IMPRINT_HASH_LENGTHS[name]} bytes long.", details={"field": "digest"}
            )
        imprint = der.sequence(_IMPRINT_ALGORITHMS[name], der.octet_string(digest))
        return self._token(imprint, nonce, cert_req, at)

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
        imprint = query["message_imprint"]
        algorithm = imprint["hash_algorithm"]
        # Re-encoded rather than copied, so a query in BER still gets a token in DER.
        imprint_der = der.sequence(
            _QUERY_IMPRINT_ALGORITHMS[algorithm["algorithm"].native, isinstance(algorithm["parameters"], core.Null)],
            der.octet_string(imprint["hashed_message"].native),
        )
        token = self._token(imprint_der, query["nonce"].native, bool(query["cert_req"].native), None)
        return der.sequence(_GRANTED, token)

    def _token(self, imprint: bytes, nonce: int | None, cert_req: bool, at: datetime | None) -> bytes:
        """The DER TimeStampToken (a CMS ContentInfo) for one encoded MessageImprint."""
        gen_time = self._gen_time(at)
        tst_info = der.sequence(
            self._tst_head,
            imprint,
            der.integer(_new_serial(gen_time)),
            der.generalized_time(gen_time),
            self._tst_accuracy,
            b"" if nonce is None else der.integer(nonce),
            self._tst_tsa,
        )
        message_digest = der.sequence(_MESSAGE_DIGEST_OID, der.set_of(der.octet_string(self._hash(tst_info).digest())))
        # The signature covers the attributes as a DER SET OF; the SignerInfo carries the same
        # content under [0] IMPLICIT.
        attrs = der.set_of(message_digest, *self._fixed_attrs)
        to_sign = attrs if self._pure_eddsa else self._hash(attrs).digest()  # RFC 8419: PureEdDSA signs the message
        signature = sign(self._key, self._sig_alg, to_sign)
        signer_info = der.sequence(
            self._signer_head,
            bytes((der.context(0),)) + attrs[1:],
            self._signature_algorithm,
            der.octet_string(signature),
        )
        encap_content_info = der.sequence(_TST_INFO_OID, der.tlv(der.context(0), der.octet_string(tst_info)))
        signed_data = der.sequence(
            self._signed_data_head,
            encap_content_info,
            # RFC 3161 2.4.1: without certReq the certificates field MUST be absent.
            self._certificates if cert_req else b"",
            der.set_of(signer_info),
        )
        return der.sequence(_SIGNED_DATA_OID, der.tlv(der.context(0), signed_data))

    def _gen_time(self, at: datetime | None) -> datetime:
        """genTime: `at` or the clock, in UTC, cut to milliseconds (finer would claim more than `accuracy`)."""
        now = self._clock() if at is None else at
        if now.tzinfo is None:
            raise ValueError("The time of a time-stamp must be timezone-aware.")
        now = now.astimezone(UTC)
        return now.replace(microsecond=now.microsecond // 1000 * 1000)


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
    millis = (gen_time - _EPOCH) // _MILLISECOND
    serial = ((millis % (1 << _SERIAL_TIME_BITS)) << _SERIAL_RANDOM_BITS) | secrets.randbits(_SERIAL_RANDOM_BITS)
    return serial or 1
