"""What PKCS#11 calls this service's algorithms: key types and curves to generate, mechanisms to sign.

Pure functions and tables, no token: `sign_rsa`, `sign_ecdsa` and `sign_eddsa` turn the arguments a
`cryptography` private key's `sign()` receives into the one `C_Sign` the token runs. One table
(`MECHANISMS`) maps each signature scheme to its mechanism, one (`HASHES`) each hash to its
parameters; nothing else in the package names a signing mechanism.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from cryptography.hazmat.primitives.asymmetric.padding import PSS, AsymmetricPadding, PKCS1v15
from pkcs11 import MGF, KeyType, Mechanism
from pkcs11.util.ec import encode_named_curve_parameters

from chalicelib.errors import UnsupportedAlgorithm

# -- key generation --------------------------------------------------------------------------------

KEY_TYPES: dict[str, KeyType] = {"RSA": KeyType.RSA, "ECDSA": KeyType.EC, "EdDSA": KeyType.EC_EDWARDS}
EC_PARAMS: dict[str, bytes] = {
    "P-256": encode_named_curve_parameters("secp256r1"),
    "P-384": encode_named_curve_parameters("secp384r1"),
    "P-521": encode_named_curve_parameters("secp521r1"),
}
CURVE_BY_PARAMS: dict[bytes, str] = {der: name for name, der in EC_PARAMS.items()}
# id-Ed25519 (RFC 8410, 1.3.101.112) as a DER OID. PKCS#11 3.0 allows this or the printable string
# "edwards25519"; SoftHSM 2.6 takes both, and the OID is the form defined outside PKCS#11 too.
ED25519_PARAMS = bytes.fromhex("06032b6570")

# -- signing ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HashParams:
    """How PKCS#11 names one hash: its digest mechanism (PSS hashAlg), MGF1 variant and DER DigestInfo prefix."""

    digest: Mechanism
    mgf: MGF
    digest_info: bytes


# By `cryptography`'s hash name. CKM_RSA_PKCS signs DigestInfo || digest (RFC 8017 section 9.2).
HASHES: dict[str, HashParams] = {
    "sha256": HashParams(Mechanism.SHA256, MGF.SHA256, bytes.fromhex("3031300d060960864801650304020105000420")),
    "sha384": HashParams(Mechanism.SHA384, MGF.SHA384, bytes.fromhex("3041300d060960864801650304020205000430")),
    "sha512": HashParams(Mechanism.SHA512, MGF.SHA512, bytes.fromhex("3051300d060960864801650304020305000440")),
}

# Signature scheme -> mechanism. All of them take the digest (or the message, EdDSA) computed outside the
# token: the combined hash-and-sign mechanisms (e.g. ECDSA_SHA256) are missing from SoftHSM, and the
# service receives digests anyway.
MECHANISMS: dict[str, Mechanism] = {
    "RSA-PKCS1v15": Mechanism.RSA_PKCS,
    "RSA-PSS": Mechanism.RSA_PKCS_PSS,
    "ECDSA": Mechanism.ECDSA,
    "EdDSA": Mechanism.EDDSA,
}


@dataclass(frozen=True)
class TokenSignature:
    """One `C_Sign`: the key type it needs, the mechanism and its parameter, and the bytes the token signs."""

    key_type: KeyType
    mechanism: Mechanism
    param: tuple[Mechanism, MGF, int] | None
    payload: bytes


def hash_params(algorithm: hashes.HashAlgorithm) -> HashParams:
    """The PKCS#11 parameters of a hash; raises UnsupportedAlgorithm for one the service does not use."""
    try:
        return HASHES[algorithm.name]
    except KeyError:
        raise UnsupportedAlgorithm(f"HSM keys sign with SHA-256/384/512, not {algorithm.name}.") from None


def digest_of(data: bytes, algorithm: object) -> tuple[bytes, hashes.HashAlgorithm]:
    """(digest, hash) for `data` given a hash (data is the message) or Prehashed (data is the digest).

    Raises ValueError for a digest of the wrong length, as `cryptography` does for in-memory keys.
    """
    if isinstance(algorithm, utils.Prehashed):
        hash_alg = algorithm._algorithm
        if len(data) != hash_alg.digest_size:
            raise ValueError("The provided data must be the same length as the hash algorithm's digest size.")
        return bytes(data), hash_alg
    if isinstance(algorithm, hashes.HashAlgorithm):
        h = hashes.Hash(algorithm)
        h.update(data)
        return h.finalize(), algorithm
    raise UnsupportedAlgorithm(f"Unsupported hash {algorithm!r} for an HSM key.")


def sign_rsa(data: bytes, padding: AsymmetricPadding, algorithm: object, key_size: int) -> TokenSignature:
    """The C_Sign for `RSAPrivateKey.sign(data, padding, algorithm)`; raises UnsupportedAlgorithm / ValueError."""
    if isinstance(algorithm, utils.NoDigestInfo):
        if not isinstance(padding, PKCS1v15):
            raise UnsupportedAlgorithm("NoDigestInfo only works with PKCS#1 v1.5 padding.")
        return TokenSignature(KeyType.RSA, MECHANISMS["RSA-PKCS1v15"], None, bytes(data))
    digest, hash_alg = digest_of(data, algorithm)
    params = hash_params(hash_alg)
    if isinstance(padding, PKCS1v15):
        return TokenSignature(KeyType.RSA, MECHANISMS["RSA-PKCS1v15"], None, params.digest_info + digest)
    if isinstance(padding, PSS):
        mgf_hash = getattr(padding.mgf, "_algorithm", None)
        if not isinstance(mgf_hash, hashes.HashAlgorithm):
            raise UnsupportedAlgorithm("PSS on the HSM needs MGF1.")
        salt = _pss_salt_length(padding, hash_alg, key_size)
        return TokenSignature(KeyType.RSA, MECHANISMS["RSA-PSS"], (params.digest, hash_params(mgf_hash).mgf, salt),
                              digest)
    raise UnsupportedAlgorithm(f"Unsupported RSA padding {padding.name} for an HSM key.")


def sign_ecdsa(data: bytes, signature_algorithm: object, curve: ec.EllipticCurve) -> TokenSignature:
    """The C_Sign for `EllipticCurvePrivateKey.sign(data, ECDSA(...))`: the token returns raw r || s.

    X9.62 (and OpenSSL) sign the leftmost bits of a digest longer than the group order. For the curves
    served that is a whole-byte cut (P-521 never gets a digest longer than 66 bytes); doing it here
    gives HSM keys the signature a disk key makes and spares modules that reject over-long input.
    """
    if not isinstance(signature_algorithm, ec.ECDSA):
        raise UnsupportedAlgorithm("HSM EC keys sign with ECDSA only.")
    if signature_algorithm.deterministic_signing:
        raise UnsupportedAlgorithm("The HSM does not offer deterministic (RFC 6979) ECDSA.")
    digest, _ = digest_of(data, signature_algorithm.algorithm)
    return TokenSignature(KeyType.EC, MECHANISMS["ECDSA"], None, digest[: field_bytes(curve)])


def sign_eddsa(message: bytes) -> TokenSignature:
    """The C_Sign for `Ed25519PrivateKey.sign(message)` (PureEdDSA: the token hashes the message itself)."""
    return TokenSignature(KeyType.EC_EDWARDS, MECHANISMS["EdDSA"], None, bytes(message))


def field_bytes(curve: ec.EllipticCurve) -> int:
    """Size of a field element (and of r and s) of `curve` in bytes."""
    return (curve.key_size + 7) // 8


def _pss_salt_length(pss: PSS, hash_alg: hashes.HashAlgorithm, key_size: int) -> int:
    salt = pss._salt_length
    if isinstance(salt, int):
        return salt
    if salt is PSS.DIGEST_LENGTH:
        return hash_alg.digest_size
    if salt is PSS.MAX_LENGTH:
        return (key_size + 6) // 8 - hash_alg.digest_size - 2  # emLen - hLen - 2
    raise ValueError("PSS salt length AUTO is only valid when verifying.")
