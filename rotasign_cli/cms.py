"""Detached CMS (PKCS #7) signatures, `FILE.p7s`, built and read with asn1crypto.

The service signs the signed attributes, never the file: the CLI hashes the file, puts that digest
into the `message-digest` attribute beside `content-type` and `signing-time`, and asks the service to
sign the DER of that attribute set — its SHA digest for RSA and ECDSA, the DER itself (`message`)
for Ed25519, as RFC 8419 requires. The service's RFC 3161 token over the signature value goes into
the signer's unsigned attributes as `id-aa-signatureTimeStampToken` (RFC 3161 appendix A), which is
where CMS verifiers and code-signing tools look for it. The signer's own `signing-time` is a claim a
holder of a stolen key could backdate; verification takes its time from the token.

No ESS signing-certificate attribute is signed: a dynamic keypair may be refreshed between the moment
the attributes are built and the moment the service signs, so the certificate is unknown until the
answer arrives. The signer is named by issuer and serial number, which lies outside the signature.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from asn1crypto import algos, cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from rotasign_cli.algorithms import DIGEST_SIZES, SIG_ALGS, SigAlg, api_hash_name, hashlib_name

SUFFIX = ".p7s"
# RFC 8419 section 3.1: with Ed25519 the digest algorithm (of the message-digest attribute) is SHA-512.
ED25519_HASH = "SHA-512"


class CmsError(ValueError):
    """A CMS file that is not a detached SignedData this CLI can check, and why."""


def signed_attributes(content_digest: bytes, hash_algorithm: str, signing_time: datetime) -> bytes:
    """The DER `SET OF Attribute` the signature covers: content type, signing time, message digest."""
    if len(content_digest) != DIGEST_SIZES[hash_algorithm]:
        raise ValueError(f"not a {hash_algorithm} digest")
    attributes = cms.CMSAttributes(
        [
            cms.CMSAttribute({"type": "content_type", "values": ["data"]}),
            cms.CMSAttribute({"type": "signing_time", "values": [_time(signing_time)]}),
            cms.CMSAttribute({"type": "message_digest", "values": [content_digest]}),
        ]
    )
    der: bytes = attributes.dump()
    return der


def build(
    *,
    signed_attrs_der: bytes,
    hash_algorithm: str,
    sig_alg: SigAlg,
    signature: bytes,
    certificate_pem: str,
    chain_pems: list[str],
    timestamp_token: bytes | None,
) -> bytes:
    """The DER ContentInfo of a detached SignedData with one signer."""
    return signed_data(
        encapsulated={"content_type": "data"},
        digest_algorithm=algos.DigestAlgorithm({"algorithm": hashlib_name(hash_algorithm)}),
        signature_algorithm=signature_algorithm(sig_alg),
        signed_attrs_der=signed_attrs_der,
        signature=signature,
        certificate_pem=certificate_pem,
        chain_pems=chain_pems,
        unsigned_attrs=[] if timestamp_token is None else [("signature_time_stamp_token", timestamp_token)],
    )


def signed_data(
    *,
    encapsulated: Any,
    digest_algorithm: Any,
    signature_algorithm: Any,
    signed_attrs_der: bytes,
    signature: bytes,
    certificate_pem: str,
    chain_pems: list[str],
    unsigned_attrs: list[tuple[str, bytes]],
) -> bytes:
    """The DER ContentInfo of a version 1 SignedData with one signer, named by issuer and serial number.

    `encapsulated` is the content info (its type, and the content unless detached); `unsigned_attrs`
    holds (attribute type, DER ContentInfo) pairs such as a time-stamp token.
    """
    leaf = asn1_certificate(certificate_pem)
    signer: dict[str, Any] = {
        "version": "v1",
        "sid": cms.SignerIdentifier(
            {
                "issuer_and_serial_number": cms.IssuerAndSerialNumber(
                    {"issuer": leaf.issuer, "serial_number": leaf.serial_number}
                )
            }
        ),
        "digest_algorithm": digest_algorithm,
        "signed_attrs": cms.CMSAttributes.load(signed_attrs_der),
        "signature_algorithm": signature_algorithm,
        "signature": signature,
    }
    if unsigned_attrs:
        signer["unsigned_attrs"] = cms.CMSAttributes(
            [cms.CMSAttribute({"type": kind, "values": [cms.ContentInfo.load(der)]}) for kind, der in unsigned_attrs]
        )
    content = cms.SignedData(
        {
            "version": "v1",
            "digest_algorithms": [digest_algorithm],
            "encap_content_info": encapsulated,
            "certificates": [leaf, *(asn1_certificate(pem) for pem in chain_pems)],
            "signer_infos": [cms.SignerInfo(signer)],
        }
    )
    der: bytes = cms.ContentInfo({"content_type": "signed_data", "content": content}).dump()
    return der


def _time(moment: datetime) -> Any:
    # RFC 5652 11.3: UTCTime for the years 1950 to 2049, GeneralizedTime outside them.
    moment = moment.astimezone(UTC).replace(microsecond=0)
    kind = "utc_time" if 1950 <= moment.year < 2050 else "generalized_time"
    return cms.Time({kind: moment})


def asn1_certificate(pem: str) -> Any:
    """The asn1crypto Certificate of a PEM certificate."""
    der = x509.load_pem_x509_certificate(pem.encode("ascii")).public_bytes(serialization.Encoding.DER)
    return asn1_x509.Certificate.load(der)


def signature_algorithm(sig_alg: SigAlg) -> Any:
    """The SignerInfo signatureAlgorithm of a SigAlg (RSA-PSS with its parameters)."""
    if sig_alg.key_algorithm == "EdDSA":
        return algos.SignedDigestAlgorithm({"algorithm": "ed25519"})
    assert sig_alg.hash_algorithm is not None
    name = hashlib_name(sig_alg.hash_algorithm)
    if sig_alg.key_algorithm == "ECDSA":
        return algos.SignedDigestAlgorithm({"algorithm": f"{name}_ecdsa"})
    if not sig_alg.pss:
        return algos.SignedDigestAlgorithm({"algorithm": f"{name}_rsa"})
    params = algos.RSASSAPSSParams(
        {
            "hash_algorithm": {"algorithm": name},
            "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": name}},
            "salt_length": DIGEST_SIZES[sig_alg.hash_algorithm],
            "trailer_field": "trailer_field_bc",
        }
    )
    return algos.SignedDigestAlgorithm({"algorithm": "rsassa_pss", "parameters": params})


# -- reading ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignerView:
    """What a verifier needs from a SignedData with one signer."""

    hash_algorithm: str
    sig_alg: SigAlg
    signed_attrs_der: bytes
    content_type: str
    message_digest: bytes
    signing_time: datetime | None
    signature: bytes
    signer_certificate: x509.Certificate
    certificates: tuple[x509.Certificate, ...]
    timestamp_token: bytes | None
    encap_content_type: str  # dotted OID
    encap_content: bytes | None  # the DER of the signed content, when the SignedData embeds it


def read(
    der: bytes, *, detached: bool = True, timestamp_attribute: str = "signature_time_stamp_token"
) -> SignerView:
    """Parse a SignedData with one signer; raises CmsError when it is not one this CLI can check.

    A `.p7s` is `detached`; an Authenticode signature embeds its content and carries its token under
    another unsigned attribute.
    """
    try:
        return _read(der, detached, timestamp_attribute)
    except CmsError:
        raise
    except Exception as exc:  # asn1crypto parses lazily: malformed input fails anywhere inside
        raise CmsError("not a DER CMS SignedData.") from exc


def _read(der: bytes, detached: bool, timestamp_attribute: str) -> SignerView:
    info = cms.ContentInfo.load(der, strict=True)
    if info["content_type"].native != "signed_data":
        raise CmsError("the CMS content is not SignedData.")
    signed_data = info["content"]
    encapsulated = signed_data["encap_content_info"]
    embedded = not isinstance(encapsulated["content"], core.Void)
    if detached and embedded:
        raise CmsError("the CMS signature is not detached (it embeds its content).")
    if not detached and not embedded:
        raise CmsError("the signature does not embed the content it signs.")
    signers = signed_data["signer_infos"]
    if len(signers) != 1:
        raise CmsError(f"the CMS signature has {len(signers)} signers; one is expected.")
    signer = signers[0]
    hash_algorithm = api_hash_name(signer["digest_algorithm"]["algorithm"].native)
    if hash_algorithm is None:
        raise CmsError(f"unsupported digest algorithm {signer['digest_algorithm']['algorithm'].native}.")
    attrs = signer["signed_attrs"]
    if isinstance(attrs, core.Void) or len(attrs) == 0:
        raise CmsError("the CMS signer has no signed attributes.")
    values = _attribute_values(attrs)
    certificates = tuple(
        x509.load_der_x509_certificate(choice.chosen.dump())
        for choice in signed_data["certificates"]
        if choice.name == "certificate"
    )
    return SignerView(
        hash_algorithm=hash_algorithm,
        sig_alg=_sig_alg(signer["signature_algorithm"], hash_algorithm),
        # The signature covers the attributes with the universal SET tag, not the [0] they are stored under.
        signed_attrs_der=attrs.untag().dump(),
        content_type=_single(values, "content_type").native,
        message_digest=_single(values, "message_digest").native,
        signing_time=_single(values, "signing_time").native if "signing_time" in values else None,
        signature=signer["signature"].native,
        signer_certificate=_find_signer(signer["sid"], certificates),
        certificates=certificates,
        timestamp_token=_timestamp_token(signer["unsigned_attrs"], timestamp_attribute),
        encap_content_type=encapsulated["content_type"].dotted,
        encap_content=_content_der(encapsulated["content"]) if embedded else None,
    )


def _content_der(content: Any) -> bytes:
    """The DER of embedded content: PKCS#7's ANY (Authenticode) or CMS's OCTET STRING, without [0]."""
    if isinstance(content, core.Any):
        der: bytes = content.parse().untag().dump()
        return der
    return bytes(content)


def _attribute_values(attrs: Any) -> dict[str, list[Any]]:
    values: dict[str, list[Any]] = {}
    for attribute in attrs:
        name = attribute["type"].native
        if name in values:
            raise CmsError(f"the signed attribute {name} appears twice.")
        values[name] = list(attribute["values"])
    for required in ("content_type", "message_digest"):
        if required not in values:
            raise CmsError(f"the signed attribute {required} is missing.")
    return values


def _single(values: dict[str, list[Any]], name: str) -> Any:
    if len(values[name]) != 1:
        raise CmsError(f"the signed attribute {name} must have exactly one value.")
    return values[name][0]


def _sig_alg(algorithm: Any, hash_algorithm: str) -> SigAlg:
    kind = algorithm.signature_algo
    if kind == "ed25519":
        return SIG_ALGS["Ed25519"]
    bits = hash_algorithm.split("-")[1]
    if kind == "rsassa_pss":
        params = algorithm["parameters"]
        pss_hash = api_hash_name(params["hash_algorithm"]["algorithm"].native)
        mgf_hash = api_hash_name(params["mask_gen_algorithm"]["parameters"]["algorithm"].native)
        if pss_hash != hash_algorithm or mgf_hash != hash_algorithm:
            raise CmsError("the RSA-PSS parameters do not use the signer's digest algorithm.")
        if params["salt_length"].native != DIGEST_SIZES[hash_algorithm]:
            raise CmsError("the RSA-PSS salt length is not the digest length.")
        return SIG_ALGS[f"SHA{bits}withRSA/PSS"]
    if kind in ("rsassa_pkcs1v15", "ecdsa"):
        # `sha256_rsa` names its own hash; `rsaEncryption` uses the signer's digest algorithm.
        named = algorithm["algorithm"].native
        if named.startswith("sha") and named.split("_")[0] != hashlib_name(hash_algorithm):
            raise CmsError("the signature algorithm's hash is not the signer's digest algorithm.")
        return SIG_ALGS[f"SHA{bits}with{'RSA' if kind == 'rsassa_pkcs1v15' else 'ECDSA'}"]
    raise CmsError(f"unsupported signature algorithm {algorithm['algorithm'].native}.")


def _find_signer(sid: Any, certificates: tuple[x509.Certificate, ...]) -> x509.Certificate:
    if sid.name != "issuer_and_serial_number":
        raise CmsError("the signer is named by key identifier; issuer and serial number are expected.")
    issuer_der = sid.chosen["issuer"].dump()
    serial = sid.chosen["serial_number"].native
    for certificate in certificates:
        if certificate.serial_number == serial and certificate.issuer.public_bytes() == issuer_der:
            return certificate
    raise CmsError("the signer's certificate is not in the CMS file.")


def _timestamp_token(unsigned: Any, attribute_name: str) -> bytes | None:
    if isinstance(unsigned, core.Void):
        return None
    tokens = [
        value.dump() for attribute in unsigned if attribute["type"].native == attribute_name
        for value in attribute["values"]
    ]
    if len(tokens) > 1:
        raise CmsError("the signer carries more than one signature time-stamp token.")
    return tokens[0] if tokens else None
