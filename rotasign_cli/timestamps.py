"""Verify RFC 3161 time-stamp tokens and read time-stamp replies, offline.

Pure functions over `cryptography` and `asn1crypto`, with nothing of the service: the CLI runs on
users' machines, where a token must verify without rotasign's server code. A token is trusted when
its TSA certificate is issued directly by the caller's trust anchor (the account's production CA),
carries the critical `timeStamping` EKU and nothing else, and was valid at the token's genTime.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from asn1crypto import cms, core, tsp
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils
from cryptography.x509.oid import ExtendedKeyUsageOID

from rotasign_cli.algorithms import PublicKey, key_algorithm_of, supported_key

# Message-imprint hashes a TSA may time-stamp, by asn1crypto name, with their digest lengths.
# SHA-1 is deliberately absent: a SHA-1 imprint no longer binds the data.
IMPRINT_HASH_LENGTHS: dict[str, int] = {"sha256": 32, "sha384": 48, "sha512": 64}
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}



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


class TimestampVerificationError(Exception):
    """A token or reply that is malformed or not trusted; `reason` says which check failed."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class VerifiedTimestamp:
    """The trusted content of a verified time-stamp token."""

    gen_time: datetime
    serial: int
    policy: str
    tsa_certificate: x509.Certificate
    nonce: int | None
    hash_algorithm: str


def parse_response(resp_der: bytes) -> tuple[str, bytes | None]:
    """(PKIStatus name such as `granted` or `rejection`, token DER when granted); raises on bad DER."""
    try:
        resp = TimeStampResp.load(resp_der, strict=True)
        status: str = resp["status"]["status"].native
        token = resp["time_stamp_token"]
        token_der: bytes | None = None if isinstance(token, core.Void) else token.dump()
    except Exception as exc:  # asn1crypto raises ValueError, TypeError, KeyError... on bad input
        raise TimestampVerificationError("The reply is not a DER TimeStampResp.") from exc
    if status not in ("granted", "granted_with_mods"):
        return status, None
    if token_der is None:
        raise TimestampVerificationError("The reply grants a time stamp but carries no token.")
    return status, token_der


def verify_signature_token(
    token_der: bytes,
    signature: bytes,
    trust_anchor: x509.Certificate,
    tsa_certificate: x509.Certificate | None = None,
) -> VerifiedTimestamp:
    """Verify a token over SHA-256(signature), as the sign path issues them; raises on failure."""
    return verify_token(
        token_der,
        digest=hashlib.sha256(signature).digest(),
        trust_anchor=trust_anchor,
        hash_algorithm="sha256",
        tsa_certificate=tsa_certificate,
    )


def verify_token(
    token_der: bytes,
    *,
    digest: bytes,
    trust_anchor: x509.Certificate,
    hash_algorithm: str = "sha256",
    tsa_certificate: x509.Certificate | None = None,
    nonce: int | None = None,
) -> VerifiedTimestamp:
    """Verify a DER TimeStampToken over `digest`; raises TimestampVerificationError with the reason."""
    name = hash_name(hash_algorithm)
    if name is None:
        raise TimestampVerificationError(f"Unsupported hash algorithm {hash_algorithm!r}.")
    try:
        return _verify(token_der, digest, trust_anchor, name, tsa_certificate, nonce)
    except TimestampVerificationError:
        raise
    except Exception as exc:
        # Hostile DER can make asn1crypto or cryptography fail deep inside a check (a broken embedded
        # certificate, a lazily parsed field); to a caller that is just an untrusted token.
        raise TimestampVerificationError("The token is malformed.") from exc


def _verify(
    token_der: bytes,
    digest: bytes,
    trust_anchor: x509.Certificate,
    name: str,
    tsa_certificate: x509.Certificate | None,
    nonce: int | None,
) -> VerifiedTimestamp:
    token = _ParsedToken.load(token_der)
    cert = token.find_signer(tsa_certificate)
    gen_time = token.gen_time
    _check_tsa_certificate(cert, trust_anchor, gen_time)
    token.check_signed_attributes(cert)
    token.check_signature(cert)

    imprint = token.tst_info["message_imprint"]
    imprint_alg = _digest_name(imprint["hash_algorithm"])
    if imprint_alg != name:
        raise TimestampVerificationError(f"The token stamps a {imprint_alg} digest, not {name}.")
    if imprint["hashed_message"].native != digest:
        raise TimestampVerificationError("The token's message imprint does not match the digest.")
    token_nonce: int | None = token.tst_info["nonce"].native
    if nonce is not None and token_nonce != nonce:
        raise TimestampVerificationError("The token's nonce does not match the request.")
    return VerifiedTimestamp(
        gen_time=gen_time,
        serial=token.tst_info["serial_number"].native,
        policy=token.tst_info["policy"].dotted,
        tsa_certificate=cert,
        nonce=token_nonce,
        hash_algorithm=name,
    )


def _check_tsa_certificate(cert: x509.Certificate, anchor: x509.Certificate, gen_time: datetime) -> None:
    """The TSA certificate is fit to time-stamp, issued by `anchor`, and both were valid at genTime."""
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound as exc:
        raise TimestampVerificationError("The TSA certificate has no extended key usage.") from exc
    # RFC 3161 2.3: timeStamping must be the only EKU and the extension must be critical.
    if not eku.critical or list(eku.value) != [ExtendedKeyUsageOID.TIME_STAMPING]:
        raise TimestampVerificationError(
            "The TSA certificate's extended key usage must be timeStamping only, marked critical."
        )
    if cert != anchor:
        try:
            constraints = anchor.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            constraints = None
        if constraints is None or not constraints.ca:
            raise TimestampVerificationError("The trust anchor is not a CA certificate.")
    try:
        cert.verify_directly_issued_by(anchor)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise TimestampVerificationError("The TSA certificate is not issued by the trust anchor.") from exc
    for which, c in (("TSA certificate", cert), ("trust anchor", anchor)):
        if not c.not_valid_before_utc <= gen_time <= c.not_valid_after_utc:
            raise TimestampVerificationError(f"The {which} was not valid at the token's genTime.")


@dataclass(frozen=True)
class _ParsedToken:
    """A structurally checked TimeStampToken: SignedData over a TSTInfo with one signer."""

    signed_data: Any
    signer_info: Any
    tst_info: Any
    econtent: bytes
    signed_attrs_der: bytes
    gen_time: datetime

    @classmethod
    def load(cls, token_der: bytes) -> _ParsedToken:
        try:
            content_info = cms.ContentInfo.load(token_der, strict=True)
            if content_info["content_type"].native != "signed_data":
                raise TimestampVerificationError("The token is not CMS SignedData.")
            signed_data = content_info["content"]
            eci = signed_data["encap_content_info"]
            if eci["content_type"].native != "tst_info":
                raise TimestampVerificationError("The token does not encapsulate a TSTInfo.")
            econtent: bytes = eci["content"].contents
            tst_info = tsp.TSTInfo.load(econtent, strict=True)
            tst_info.native  # noqa: B018 -- parse the small TSTInfo now, so its errors are named as such
        except TimestampVerificationError:
            raise
        except Exception as exc:  # asn1crypto raises ValueError, TypeError, KeyError... on bad input
            raise TimestampVerificationError("The token is not a DER TimeStampToken.") from exc
        if len(signed_data["signer_infos"]) != 1:
            raise TimestampVerificationError("The token must have exactly one signer.")
        signer_info = signed_data["signer_infos"][0]
        # Keep the attributes exactly as received, before anything reads them: asn1crypto may treat
        # read children as changed and re-encode them on dump, and the signature covers these bytes.
        signed_attrs = signer_info["signed_attrs"]
        if isinstance(signed_attrs, core.Void):
            raise TimestampVerificationError("The token has no signed attributes.")
        signed_attrs_der: bytes = signed_attrs.dump()
        # RFC 5652 5.1/5.3: v3 SignedData for a non-data content; SignerInfo v1 goes with an issuer and
        # serial, v3 with a key identifier; the signer's digest algorithm is listed up front.
        if signed_data["version"].native != "v3":
            raise TimestampVerificationError("The SignedData version is not 3.")
        expected_version = "v1" if signer_info["sid"].name == "issuer_and_serial_number" else "v3"
        if signer_info["version"].native != expected_version:
            raise TimestampVerificationError("The SignerInfo version does not fit its signer identifier.")
        listed = {_digest_name(alg) for alg in signed_data["digest_algorithms"]}
        if _digest_name(signer_info["digest_algorithm"]) not in listed:
            raise TimestampVerificationError("The signer's digest algorithm is not listed in the SignedData.")
        if tst_info["version"].native != "v1":
            raise TimestampVerificationError("The TSTInfo version is not 1.")
        gen_time: datetime = tst_info["gen_time"].native
        return cls(signed_data, signer_info, tst_info, econtent, signed_attrs_der, gen_time)

    def find_signer(self, given: x509.Certificate | None) -> x509.Certificate:
        """The certificate named by the signer identifier: `given`, else one carried in the token."""
        if given is not None:
            candidates = [given]
        else:
            candidates = [
                x509.load_der_x509_certificate(choice.chosen.dump())
                for choice in self.signed_data["certificates"]
                if choice.name == "certificate"
            ]
        sid = self.signer_info["sid"]
        for cert in candidates:
            if sid.name == "issuer_and_serial_number":
                ias = sid.chosen
                if (
                    ias["serial_number"].native == cert.serial_number
                    and ias["issuer"].dump() == cert.issuer.public_bytes()
                ):
                    return cert
            else:
                try:
                    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
                except x509.ExtensionNotFound:
                    continue
                if ski.digest == sid.chosen.native:
                    return cert
        if given is not None:
            raise TimestampVerificationError("The given TSA certificate did not sign the token.")
        raise TimestampVerificationError("The token does not carry its TSA certificate; pass it in.")

    def check_signed_attributes(self, cert: x509.Certificate) -> None:
        """Content type, message digest and the ESS signing-certificate-v2 bind content and cert."""
        attrs = self.signer_info["signed_attrs"]
        values: dict[str, Any] = {}
        for attr in attrs:
            kind = attr["type"].native
            if kind in values or len(attr["values"]) != 1:
                raise TimestampVerificationError(f"The signed attribute {kind} must occur once, with one value.")
            values[kind] = attr["values"][0]
        if "content_type" not in values or values["content_type"].native != "tst_info":
            raise TimestampVerificationError("The content-type attribute is not id-ct-TSTInfo.")
        digest_alg = _digest_name(self.signer_info["digest_algorithm"])
        if digest_alg not in IMPRINT_HASH_LENGTHS:
            raise TimestampVerificationError(f"Unsupported signer digest algorithm {digest_alg}.")
        if (
            "message_digest" not in values
            or values["message_digest"].native != hashlib.new(digest_alg, self.econtent).digest()
        ):
            raise TimestampVerificationError("The message-digest attribute does not match the TSTInfo.")
        if "signing_certificate_v2" not in values:
            raise TimestampVerificationError("The token has no signing-certificate-v2 attribute.")
        ess_ids = values["signing_certificate_v2"]["certs"]
        if len(ess_ids) == 0:
            raise TimestampVerificationError("The signing-certificate-v2 attribute names no certificate.")
        # RFC 5035: the first ESSCertIDv2 identifies the signer's certificate.
        ess = ess_ids[0]
        ess_alg = _digest_name(ess["hash_algorithm"])
        if ess_alg not in IMPRINT_HASH_LENGTHS:
            raise TimestampVerificationError(f"Unsupported signing-certificate hash {ess_alg}.")
        cert_der = cert.public_bytes(serialization.Encoding.DER)
        if ess["cert_hash"].native != hashlib.new(ess_alg, cert_der).digest():
            raise TimestampVerificationError("The signing-certificate-v2 hash does not match the TSA cert.")
        issuer_serial = ess["issuer_serial"]
        if not isinstance(issuer_serial, core.Void) and (
            issuer_serial["serial_number"].native != cert.serial_number
            or all(
                gn.name != "directory_name" or _name_der(gn.chosen) != cert.issuer.public_bytes()
                for gn in issuer_serial["issuer"]
            )
        ):
            raise TimestampVerificationError("The signing-certificate-v2 issuer/serial does not match.")
        tsa_name = self.tst_info["tsa"]
        # The tsa field is only a hint, but a directory name that differs from the signer is a lie.
        if (
            not isinstance(tsa_name, core.Void)
            and tsa_name.name == "directory_name"
            and _name_der(tsa_name.chosen) != cert.subject.public_bytes()
        ):
            raise TimestampVerificationError("The TSTInfo tsa name is not the TSA certificate's subject.")

    def check_signature(self, cert: x509.Certificate) -> None:
        """The signature over the DER signed attributes verifies with the certificate's key."""
        public_key = supported_key(cert.public_key())
        if public_key is None:
            raise TimestampVerificationError("The TSA key type is not supported.")
        sig_alg = self.signer_info["signature_algorithm"]
        alg_name = sig_alg["algorithm"].native
        if not isinstance(sig_alg["parameters"], core.Void | core.Null):
            raise TimestampVerificationError(f"The {alg_name} signature algorithm carries parameters.")
        digest_alg = _digest_name(self.signer_info["digest_algorithm"])
        # The signature covers the attributes encoded as a SET OF (tag 0x31), not the [0] IMPLICIT tag.
        attrs_der = b"\x31" + self.signed_attrs_der[1:]
        signature: bytes = self.signer_info["signature"].native
        key_kind = key_algorithm_of(public_key)
        algorithm: hashes.HashAlgorithm | None = None
        if alg_name == "ed25519":
            expected = "EdDSA"
        elif alg_name in ("rsassa_pkcs1v15", "sha256_rsa", "sha384_rsa", "sha512_rsa"):
            expected = "RSA"
            algorithm = _HASHES[digest_alg[3:] if alg_name == "rsassa_pkcs1v15" else alg_name[3:6]]()
        elif alg_name in ("sha256_ecdsa", "sha384_ecdsa", "sha512_ecdsa"):
            expected, algorithm = "ECDSA", _HASHES[alg_name[3:6]]()
        else:
            raise TimestampVerificationError(f"Unsupported signature algorithm {alg_name}.")
        if key_kind != expected:
            raise TimestampVerificationError(f"A {alg_name} signature cannot come from a {key_kind} key.")
        try:
            _verify_signature(public_key, algorithm, signature, attrs_der)
        except (InvalidSignature, ValueError) as exc:
            raise TimestampVerificationError("The token signature does not verify.") from exc


def _digest_name(algorithm: Any) -> str:
    """The name of an asn1crypto DigestAlgorithm whose parameters are absent or NULL, as RFC 5754 says."""
    parameters = algorithm["parameters"]  # asn1crypto raises here if a known hash has non-NULL ones
    if not isinstance(parameters, core.Void | core.Null):
        raise TimestampVerificationError("A digest algorithm carries parameters.")
    name: str = algorithm["algorithm"].native
    return name


def _name_der(name: Any) -> bytes:
    """DER of an asn1crypto Name without the [4] EXPLICIT tag it carries inside a GeneralName."""
    der: bytes = name.chosen.dump()  # the RDNSequence
    return der


def _verify_signature(
    public_key: PublicKey, algorithm: hashes.HashAlgorithm | None, signature: bytes, attrs_der: bytes
) -> None:
    """Check a CMS signature over DER signed attributes; raises InvalidSignature (or ValueError)."""
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        public_key.verify(signature, attrs_der)  # PureEdDSA (RFC 8419) signs the attributes themselves
        return
    if algorithm is None:
        raise ValueError("An RSA or ECDSA signature needs a hash algorithm.")
    digest = hashlib.new(algorithm.name, attrs_der).digest()
    if isinstance(public_key, rsa.RSAPublicKey):
        public_key.verify(signature, digest, padding.PKCS1v15(), utils.Prehashed(algorithm))
    else:
        public_key.verify(signature, digest, ec.ECDSA(utils.Prehashed(algorithm)))
