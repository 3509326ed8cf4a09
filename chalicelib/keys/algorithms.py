"""Key parameters and signature algorithms: the rules that tie them together.

Pure functions over `cryptography` objects, shared by both key backends, the service and the CLI.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

from chalicelib.domain.keyspec import HASH_LENGTHS as HASH_LENGTHS
from chalicelib.domain.keyspec import KeySpec as KeySpec
from chalicelib.errors import UnsupportedAlgorithm

Algorithm = Literal["RSA", "ECDSA", "EdDSA"]
EC_CURVES: dict[str, type[ec.EllipticCurve]] = {
    "P-256": ec.SECP256R1,
    "P-384": ec.SECP384R1,
    "P-521": ec.SECP521R1,
}

HASH_ALGORITHMS: dict[str, type[hashes.HashAlgorithm]] = {
    "SHA-256": hashes.SHA256,
    "SHA-384": hashes.SHA384,
    "SHA-512": hashes.SHA512,
}

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def generate_private_key(spec: KeySpec) -> PrivateKey:
    """Generate a private key of `spec` in process memory (disk storage)."""
    if spec.algorithm == "RSA":
        assert spec.key_size is not None
        return rsa.generate_private_key(public_exponent=65537, key_size=spec.key_size)
    if spec.algorithm == "ECDSA":
        assert spec.curve is not None
        return ec.generate_private_key(EC_CURVES[spec.curve]())
    return ed25519.Ed25519PrivateKey.generate()


@dataclass(frozen=True)
class SigAlg:
    """A signature algorithm as named in the API (`SHA256withRSA/PSS`, `Ed25519`, ...)."""

    name: str
    algorithm: str
    hash_algorithm: str | None
    pss: bool = False

    def hash(self) -> hashes.HashAlgorithm:
        """The `cryptography` hash object; raises for Ed25519, which has none."""
        if self.hash_algorithm is None:
            raise UnsupportedAlgorithm("Ed25519 uses no separate hash.")
        return HASH_ALGORITHMS[self.hash_algorithm]()


def _sig_algs() -> dict[str, SigAlg]:
    table: dict[str, SigAlg] = {}
    for bits in ("256", "384", "512"):
        h = f"SHA-{bits}"
        table[f"SHA{bits}withRSA"] = SigAlg(f"SHA{bits}withRSA", "RSA", h)
        table[f"SHA{bits}withRSA/PSS"] = SigAlg(f"SHA{bits}withRSA/PSS", "RSA", h, pss=True)
        table[f"SHA{bits}withECDSA"] = SigAlg(f"SHA{bits}withECDSA", "ECDSA", h)
    table["Ed25519"] = SigAlg("Ed25519", "EdDSA", None)
    return table


SIG_ALGS: dict[str, SigAlg] = _sig_algs()


def resolve_sig_alg(spec: KeySpec, hash_algorithm: str, sig_alg: str | None) -> SigAlg:
    """Pick (default) or check the sig_alg for a key and hash; raises UnsupportedAlgorithm."""
    if hash_algorithm not in HASH_ALGORITHMS:
        raise UnsupportedAlgorithm(
            "hash_algorithm must be SHA-256, SHA-384 or SHA-512.", details={"field": "hash_algorithm"}
        )
    if sig_alg is None:
        if spec.algorithm == "EdDSA":
            return SIG_ALGS["Ed25519"]
        bits = hash_algorithm.split("-")[1]
        suffix = "RSA" if spec.algorithm == "RSA" else "ECDSA"
        return SIG_ALGS[f"SHA{bits}with{suffix}"]
    chosen = SIG_ALGS.get(sig_alg)
    if chosen is None:
        raise UnsupportedAlgorithm(f"Unknown sig_alg {sig_alg!r}.", details={"field": "sig_alg"})
    if chosen.algorithm != spec.algorithm:
        raise UnsupportedAlgorithm(
            f"sig_alg {sig_alg} does not fit a {spec.algorithm} key.", details={"field": "sig_alg"}
        )
    if chosen.hash_algorithm is not None and chosen.hash_algorithm != hash_algorithm:
        raise UnsupportedAlgorithm(
            f"sig_alg {sig_alg} does not match hash_algorithm {hash_algorithm}.",
            details={"field": "sig_alg"},
        )
    return chosen


def rsa_padding(sig_alg: SigAlg) -> padding.AsymmetricPadding:
    """The RSA padding of a sig_alg: PSS with MGF1 of the same hash and salt = digest length, else PKCS#1 v1.5."""
    if sig_alg.pss:
        return padding.PSS(mgf=padding.MGF1(sig_alg.hash()), salt_length=sig_alg.hash().digest_size)
    return padding.PKCS1v15()


def sign(key: PrivateKey, sig_alg: SigAlg, data: bytes) -> bytes:
    """The one way every key signs (disk keys in memory, HSM keys on the token, CAs, the TSA).

    `data` is the digest for RSA/ECDSA (signed as Prehashed), the message for Ed25519. An ECDSA digest
    longer than the curve's order is cut to its leftmost bits, as OpenSSL does. Raises
    UnsupportedAlgorithm for a sig_alg of another key type, ValueError for a digest of the wrong length.
    """
    if isinstance(key, ed25519.Ed25519PrivateKey):
        _require(sig_alg, "EdDSA")
        return key.sign(data)
    if isinstance(key, rsa.RSAPrivateKey):
        _require(sig_alg, "RSA")
        return key.sign(data, rsa_padding(sig_alg), utils.Prehashed(sig_alg.hash()))
    _require(sig_alg, "ECDSA")
    return key.sign(data, ec.ECDSA(utils.Prehashed(sig_alg.hash())))


def _require(sig_alg: SigAlg, algorithm: str) -> None:
    if sig_alg.algorithm != algorithm:
        raise UnsupportedAlgorithm(f"sig_alg {sig_alg.name} does not fit an {algorithm} key.")


def verify_signature(public_key: PublicKey, sig_alg: SigAlg, signature: bytes, data: bytes) -> None:
    """Verify like `sign`; raises cryptography's InvalidSignature."""
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        public_key.verify(signature, data)
        return
    prehashed = utils.Prehashed(sig_alg.hash())
    if isinstance(public_key, rsa.RSAPublicKey):
        public_key.verify(signature, data, rsa_padding(sig_alg), prehashed)
        return
    public_key.verify(signature, data, ec.ECDSA(prehashed))


def public_key_der(public_key: PublicKey) -> bytes:
    """DER SubjectPublicKeyInfo."""
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def public_key_pem(public_key: PublicKey) -> str:
    """PEM SubjectPublicKeyInfo."""
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def key_id_of(public_key: PublicKey) -> str:
    """docs/api.md `key_id`: lowercase hex SHA-256 of the DER SubjectPublicKeyInfo."""
    return hashlib.sha256(public_key_der(public_key)).hexdigest()
