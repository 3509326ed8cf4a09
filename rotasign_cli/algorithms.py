"""Hash and signature algorithms as the API names them, and how to check a signature locally."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

HASH_ALGORITHMS = ("SHA-256", "SHA-384", "SHA-512")
_HASHLIB_NAMES = {"SHA-256": "sha256", "SHA-384": "sha384", "SHA-512": "sha512"}
_CRYPTOGRAPHY_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "SHA-256": hashes.SHA256,
    "SHA-384": hashes.SHA384,
    "SHA-512": hashes.SHA512,
}
DIGEST_SIZES = {"SHA-256": 32, "SHA-384": 48, "SHA-512": 64}

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey


def hashlib_name(hash_algorithm: str) -> str:
    """`sha256` for `SHA-256` (also asn1crypto's name); raises KeyError for another."""
    return _HASHLIB_NAMES[hash_algorithm]


def new_hash(hash_algorithm: str) -> Any:
    """A fresh hashlib object for `SHA-256`, `SHA-384` or `SHA-512`."""
    return hashlib.new(hashlib_name(hash_algorithm))


def api_hash_name(name: str) -> str | None:
    """`SHA-256` for `sha256` / `SHA256` / `SHA-256`; None for anything else."""
    compact = name.upper().replace("-", "").replace("_", "")
    return next((h for h in HASH_ALGORITHMS if h.replace("-", "") == compact), None)


@dataclass(frozen=True)
class SigAlg:
    """A signature algorithm of the API: `SHA256withRSA`, `SHA384withRSA/PSS`, `SHA256withECDSA`, `Ed25519`."""

    name: str
    key_algorithm: str  # RSA | ECDSA | EdDSA
    hash_algorithm: str | None  # None for Ed25519, which hashes internally
    pss: bool = False


def _table() -> dict[str, SigAlg]:
    table: dict[str, SigAlg] = {}
    for hash_algorithm in HASH_ALGORITHMS:
        bits = hash_algorithm.split("-")[1]
        table[f"SHA{bits}withRSA"] = SigAlg(f"SHA{bits}withRSA", "RSA", hash_algorithm)
        table[f"SHA{bits}withRSA/PSS"] = SigAlg(f"SHA{bits}withRSA/PSS", "RSA", hash_algorithm, pss=True)
        table[f"SHA{bits}withECDSA"] = SigAlg(f"SHA{bits}withECDSA", "ECDSA", hash_algorithm)
    table["Ed25519"] = SigAlg("Ed25519", "EdDSA", None)
    return table


SIG_ALGS: dict[str, SigAlg] = _table()


def sig_alg(name: str) -> SigAlg:
    """The SigAlg named `name`; raises ValueError for an unknown one."""
    try:
        return SIG_ALGS[name]
    except KeyError:
        raise ValueError(f"unknown sig_alg {name!r}") from None


def default_hash_algorithm(keypair: dict[str, Any]) -> str:
    """The hash that matches the key's strength: SHA-384 for P-384, SHA-512 for P-521 and Ed25519 CMS.

    Everything else uses SHA-256, the API's default.
    """
    curve = keypair.get("curve")
    if keypair.get("algorithm") == "ECDSA" and curve == "P-384":
        return "SHA-384"
    if keypair.get("algorithm") == "ECDSA" and curve == "P-521":
        return "SHA-512"
    return "SHA-256"


def supported_key(public_key: object) -> PublicKey | None:
    """The key itself when it is RSA, ECDSA or Ed25519 (what the service issues); None otherwise."""
    if isinstance(public_key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey)):
        return public_key
    return None


def key_algorithm_of(public_key: PublicKey) -> str:
    """`RSA`, `ECDSA` or `EdDSA`."""
    if isinstance(public_key, rsa.RSAPublicKey):
        return "RSA"
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return "ECDSA"
    return "EdDSA"


def verify_signature(
    public_key: PublicKey, alg: SigAlg, signature: bytes, digest: bytes, message: bytes | None
) -> None:
    """Check `signature` as the service makes it; raises cryptography's InvalidSignature.

    RSA and ECDSA sign `digest`. Ed25519 signs `message` when the request sent one (CMS), else the
    digest bytes themselves.
    """
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        public_key.verify(signature, message if message is not None else digest)
        return
    assert alg.hash_algorithm is not None
    chosen = _CRYPTOGRAPHY_HASHES[alg.hash_algorithm]()
    prehashed = utils.Prehashed(chosen)
    if isinstance(public_key, rsa.RSAPublicKey):
        pad: padding.AsymmetricPadding = (
            padding.PSS(mgf=padding.MGF1(chosen), salt_length=chosen.digest_size) if alg.pss else padding.PKCS1v15()
        )
        public_key.verify(signature, digest, pad, prehashed)
        return
    public_key.verify(signature, digest, ec.ECDSA(prehashed))


def key_id(public_key: PublicKey) -> str:
    """docs/api.md's `key_id`: lowercase hex SHA-256 of the DER SubjectPublicKeyInfo."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()
