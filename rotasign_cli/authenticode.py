"""Authenticode signatures of PE files, built and read with asn1crypto.

An Authenticode signature is a PKCS#7 SignedData whose content is an `SpcIndirectDataContent`: the
file's image digest (see `pe`) beside an `SpcPeImageData` that says which file type it is. Its one
signer signs, as in CMS, the DER of signed attributes: `contentType` (the `SpcIndirectDataContent`
OID), `messageDigest` (the digest of that content *without its tag and length*, Authenticode's own
rule) and, when asked for, `SpcSpOpusInfo` (a program name and URL that Windows shows in its
prompts). The service signs those attributes (it is sent their DER and hashes it), and its RFC 3161
token over the signature value goes into the signer's unsigned attributes as Authenticode's RFC 3161
countersignature (1.3.6.1.4.1.311.3.3.1), where `signtool` and `osslsigncode` put theirs.

Authenticode has no EdDSA: Windows verifies RSA and ECDSA signatures only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from asn1crypto import algos, cms, core

from rotasign_cli import cms as rotasign_cms
from rotasign_cli.algorithms import DIGEST_SIZES, SigAlg, api_hash_name, hashlib_name, new_hash

SPC_INDIRECT_DATA = "1.3.6.1.4.1.311.2.1.4"
SPC_PE_IMAGE_DATA = "1.3.6.1.4.1.311.2.1.15"
SPC_SP_OPUS_INFO = "1.3.6.1.4.1.311.2.1.12"
RFC3161_COUNTERSIGNATURE = "microsoft_time_stamp_token"  # 1.3.6.1.4.1.311.3.3.1, as asn1crypto names it
KEY_ALGORITHMS = ("RSA", "ECDSA")
NO_EDDSA = "Authenticode has no EdDSA (Windows verifies RSA and ECDSA signatures only): use an RSA or ECDSA keypair"
NO_PSS = "Authenticode RSA signatures use PKCS#1 v1.5: osslsigncode (OpenSSL's PKCS#7) rejects RSA-PSS"
MAX_OPUS_TEXT = 1024
# What Windows' own tools put in SpcPeImageData's file link: a BMPString that says nothing.
_OBSOLETE = "<<<Obsolete>>>"


class SpcString(core.Choice):  # type: ignore[misc]
    """SpcString: a BMPString or an IA5String."""

    _alternatives = [
        ("unicode", core.BMPString, {"implicit": 0}),
        ("ascii", core.IA5String, {"implicit": 1}),
    ]


class SpcSerializedObject(core.Sequence):  # type: ignore[misc]
    """SpcSerializedObject (page hashes; read, never written here)."""

    _fields = [("class_id", core.OctetString), ("serialized_data", core.OctetString)]


class SpcLink(core.Choice):  # type: ignore[misc]
    """SpcLink: a URL, a serialized object or a file name."""

    _alternatives = [
        ("url", core.IA5String, {"implicit": 0}),
        ("moniker", SpcSerializedObject, {"implicit": 1}),
        ("file", SpcString, {"explicit": 2}),
    ]


class SpcPeImageFlags(core.BitString):  # type: ignore[misc]
    """SpcPeImageFlags."""

    _map = {0: "include_resources", 1: "include_debug_info", 2: "include_import_address_table"}


class SpcPeImageData(core.Sequence):  # type: ignore[misc]
    """SpcPeImageData: flags and a file link."""

    _fields = [
        ("flags", SpcPeImageFlags),
        ("file", SpcLink, {"explicit": 0, "optional": True}),
    ]


class SpcAttributeTypeAndOptionalValue(core.Sequence):  # type: ignore[misc]
    """The kind of file signed (for a PE file, SpcPeImageData) and its value."""

    _fields = [("type", core.ObjectIdentifier), ("value", core.Any, {"optional": True})]


class DigestInfo(core.Sequence):  # type: ignore[misc]
    """The file's digest and its algorithm."""

    _fields = [("digest_algorithm", algos.DigestAlgorithm), ("digest", core.OctetString)]


class SpcIndirectDataContent(core.Sequence):  # type: ignore[misc]
    """The content an Authenticode signature signs: what the file is and its digest."""

    _fields = [("data", SpcAttributeTypeAndOptionalValue), ("message_digest", DigestInfo)]


class SpcSpOpusInfo(core.Sequence):  # type: ignore[misc]
    """The program's name and a URL about it, which Windows shows when it asks about the file."""

    _fields = [
        ("program_name", SpcString, {"explicit": 0, "optional": True}),
        ("more_info", SpcLink, {"explicit": 1, "optional": True}),
    ]


class AuthenticodeError(ValueError):
    """An Authenticode signature this CLI cannot check, and why."""


def _digest_algorithm(hash_algorithm: str) -> Any:
    # Windows' own tools write the NULL parameters; RFC 5754 allows them.
    return algos.DigestAlgorithm({"algorithm": hashlib_name(hash_algorithm), "parameters": core.Null()})


def indirect_data(image_digest: bytes, hash_algorithm: str) -> bytes:
    """The DER SpcIndirectDataContent of a PE file whose image digest is `image_digest`."""
    if len(image_digest) != DIGEST_SIZES[hash_algorithm]:
        raise ValueError(f"not a {hash_algorithm} digest")
    image_data = SpcPeImageData(
        {
            "flags": SpcPeImageFlags({"include_resources"}),
            "file": SpcLink({"file": SpcString({"unicode": _OBSOLETE})}),
        }
    )
    content = SpcIndirectDataContent(
        {
            "data": {"type": SPC_PE_IMAGE_DATA, "value": image_data},
            "message_digest": {"digest_algorithm": _digest_algorithm(hash_algorithm), "digest": image_digest},
        }
    )
    der: bytes = content.dump()
    return der


def content_digest(indirect_data_der: bytes, hash_algorithm: str) -> bytes:
    """What `messageDigest` holds: the digest of the SpcIndirectDataContent's value, without tag and length."""
    contents: bytes = SpcIndirectDataContent.load(indirect_data_der).contents
    digest = new_hash(hash_algorithm)
    digest.update(contents)
    result: bytes = digest.digest()
    return result


def signed_attributes(
    indirect_data_der: bytes, hash_algorithm: str, *, program_name: str | None = None, program_url: str | None = None
) -> bytes:
    """The DER `SET OF Attribute` the service signs: content type, message digest, optional SpcSpOpusInfo."""
    attributes = [
        cms.CMSAttribute({"type": "content_type", "values": [SPC_INDIRECT_DATA]}),
        cms.CMSAttribute(
            {"type": "message_digest", "values": [content_digest(indirect_data_der, hash_algorithm)]}
        ),
    ]
    if program_name is not None or program_url is not None:
        opus: dict[str, Any] = {}
        if program_name is not None:
            opus["program_name"] = SpcString({"unicode": program_name})
        if program_url is not None:
            opus["more_info"] = SpcLink({"url": program_url})
        attributes.append(cms.CMSAttribute({"type": SPC_SP_OPUS_INFO, "values": [SpcSpOpusInfo(opus)]}))
    der: bytes = cms.CMSAttributes(attributes).dump()
    return der


def build(
    *,
    indirect_data_der: bytes,
    signed_attrs_der: bytes,
    hash_algorithm: str,
    sig_alg: SigAlg,
    signature: bytes,
    certificate_pem: str,
    chain_pems: list[str],
    timestamp_token: bytes | None,
) -> bytes:
    """The DER PKCS#7 SignedData of an Authenticode signature with one signer; raises ValueError for EdDSA."""
    if sig_alg.key_algorithm not in KEY_ALGORITHMS:
        raise ValueError(NO_EDDSA)
    if sig_alg.pss:
        raise ValueError(NO_PSS)
    # PKCS#7's content is an [0] EXPLICIT ANY; asn1crypto leaves a given value untagged, so tag it here.
    content = SpcIndirectDataContent.load(indirect_data_der).retag({"explicit": 0})
    return rotasign_cms.signed_data(
        encapsulated=cms.ContentInfo({"content_type": SPC_INDIRECT_DATA, "content": content}),
        digest_algorithm=_digest_algorithm(hash_algorithm),
        signature_algorithm=_signature_algorithm(sig_alg),
        signed_attrs_der=signed_attrs_der,
        signature=signature,
        certificate_pem=certificate_pem,
        chain_pems=chain_pems,
        unsigned_attrs=[] if timestamp_token is None else [(RFC3161_COUNTERSIGNATURE, timestamp_token)],
    )


def _signature_algorithm(sig_alg: SigAlg) -> Any:
    if sig_alg.key_algorithm == "RSA":
        # rsaEncryption with the signer's digest algorithm, as Windows' own tools write it.
        return algos.SignedDigestAlgorithm({"algorithm": "rsassa_pkcs1v15", "parameters": core.Null()})
    return rotasign_cms.signature_algorithm(sig_alg)


# -- reading ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Signature:
    """An Authenticode signature as read from a PE file."""

    signer: rotasign_cms.SignerView
    image_hash_algorithm: str
    image_digest: bytes
    content_digest_ok: bool  # messageDigest is the digest of the SpcIndirectDataContent


def read(der: bytes) -> Signature:
    """Parse the PKCS#7 of a PE file's certificate table; raises AuthenticodeError (or CmsError)."""
    view = rotasign_cms.read(der, detached=False, timestamp_attribute=RFC3161_COUNTERSIGNATURE)
    if view.encap_content_type != SPC_INDIRECT_DATA or view.encap_content is None:
        raise AuthenticodeError("the signed content is not an SpcIndirectDataContent.")
    if view.content_type != SPC_INDIRECT_DATA:
        raise AuthenticodeError("the signed content-type attribute is not SpcIndirectDataContent.")
    try:
        content = SpcIndirectDataContent.load(view.encap_content, strict=True)
        algorithm = api_hash_name(content["message_digest"]["digest_algorithm"]["algorithm"].native)
        image_digest: bytes = content["message_digest"]["digest"].native
        kind = content["data"]["type"].dotted
    except (ValueError, TypeError, KeyError) as exc:
        raise AuthenticodeError("the SpcIndirectDataContent is malformed.") from exc
    if kind != SPC_PE_IMAGE_DATA:
        raise AuthenticodeError(f"the signature is not over a PE image (data type {kind}).")
    if algorithm is None or len(image_digest) != DIGEST_SIZES[algorithm]:
        raise AuthenticodeError("the signed image digest is not SHA-256, SHA-384 or SHA-512.")
    expected = content_digest(view.encap_content, view.hash_algorithm)
    return Signature(view, algorithm, image_digest, view.message_digest == expected)
