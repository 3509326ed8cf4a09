"""`cryptography` private keys whose private half stays on the token.

Each class subclasses the `cryptography` ABC (`RSAPrivateKey`, `EllipticCurvePrivateKey`,
`Ed25519PrivateKey`), so the signing function, the X.509 builders and the TSA cannot tell an HSM key
from a disk key: `sign()` runs one C_Sign on the token, and every export method raises TypeError.
PKCS#11 ECDSA returns raw r || s; it becomes DER here with `cryptography`'s encoder (asn1crypto's,
`pkcs11.util.ec.encode_ecdsa_signature`, costs ~65 µs a signature, a third of a P-256 signature).
"""

from __future__ import annotations

from typing import Generic, NoReturn, Self, TypeVar

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, utils
from cryptography.hazmat.primitives.asymmetric.padding import AsymmetricPadding
from cryptography.utils import Buffer

from chalicelib.keys.algorithms import PrivateKey, PublicKey
from chalicelib.keys.hsm.mechanisms import sign_ecdsa, sign_eddsa, sign_rsa
from chalicelib.keys.hsm.token import TokenKeys

_P = TypeVar("_P", rsa.RSAPublicKey, ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey)


def key_object(token: TokenKeys, label: str, public_key: PublicKey) -> PrivateKey:
    """The `cryptography` private key for the token key pair `label` whose public half is `public_key`."""
    if isinstance(public_key, rsa.RSAPublicKey):
        return HsmRsaPrivateKey(token, label, public_key)
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return HsmEcPrivateKey(token, label, public_key)
    return HsmEd25519PrivateKey(token, label, public_key)


def _no_export() -> NoReturn:
    raise TypeError("This private key is held by the HSM and cannot be exported.")


class _OnToken(Generic[_P]):
    """What every token-backed key shares: its label, its public key, and no way to get the private key out."""

    def __init__(self, token: TokenKeys, label: str, public_key: _P) -> None:
        self._token = token
        self.label = label
        self._public_key: _P = public_key

    def private_bytes(
        self,
        encoding: serialization.Encoding,
        format: serialization.PrivateFormat,
        encryption_algorithm: serialization.KeySerializationEncryption,
    ) -> bytes:
        """Not possible: raises TypeError."""
        _no_export()

    def __copy__(self) -> Self:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> Self:
        return self

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.label!r}>"


class HsmRsaPrivateKey(_OnToken[rsa.RSAPublicKey], rsa.RSAPrivateKey):
    """An RSA key on the token, usable wherever `cryptography` expects an RSAPrivateKey."""

    def sign(
        self,
        data: Buffer,
        padding: AsymmetricPadding,
        algorithm: utils.Prehashed | hashes.HashAlgorithm | utils.NoDigestInfo,
    ) -> bytes:
        """RSA PKCS#1 v1.5 or PSS signature made on the token; raises ValueError / UnsupportedAlgorithm."""
        return self._token.sign(self.label, sign_rsa(bytes(data), padding, algorithm, self.key_size))

    def decrypt(self, ciphertext: bytes, padding: AsymmetricPadding) -> bytes:
        """Not offered: HSM keys are generated for signing only."""
        raise TypeError("HSM keys are for signing only.")

    @property
    def key_size(self) -> int:
        """Modulus size in bits."""
        return self._public_key.key_size

    def public_key(self) -> rsa.RSAPublicKey:
        """The matching public key (read from the token when the key was loaded)."""
        return self._public_key

    def private_numbers(self) -> rsa.RSAPrivateNumbers:
        """Not possible: raises TypeError."""
        _no_export()


class HsmEcPrivateKey(_OnToken[ec.EllipticCurvePublicKey], ec.EllipticCurvePrivateKey):
    """An ECDSA key on the token, usable wherever `cryptography` expects an EllipticCurvePrivateKey."""

    def sign(self, data: Buffer, signature_algorithm: ec.EllipticCurveSignatureAlgorithm) -> bytes:
        """DER ECDSA signature made on the token; raises ValueError / UnsupportedAlgorithm."""
        raw = self._token.sign(self.label, sign_ecdsa(bytes(data), signature_algorithm, self.curve))
        # PKCS#11 returns raw r || s (each the size of a field element); X.509 and the API want DER.
        half = len(raw) // 2
        return utils.encode_dss_signature(int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big"))

    def exchange(self, algorithm: ec.ECDH, peer_public_key: ec.EllipticCurvePublicKey) -> bytes:
        """Not offered: HSM keys are generated for signing only."""
        raise TypeError("HSM keys are for signing only.")

    @property
    def curve(self) -> ec.EllipticCurve:
        """The key's curve."""
        return self._public_key.curve

    @property
    def key_size(self) -> int:
        """Curve size in bits."""
        return self._public_key.key_size

    def public_key(self) -> ec.EllipticCurvePublicKey:
        """The matching public key (read from the token when the key was loaded)."""
        return self._public_key

    def private_numbers(self) -> ec.EllipticCurvePrivateNumbers:
        """Not possible: raises TypeError."""
        _no_export()


class HsmEd25519PrivateKey(_OnToken[ed25519.Ed25519PublicKey], ed25519.Ed25519PrivateKey):
    """An Ed25519 key on the token, usable wherever `cryptography` expects an Ed25519PrivateKey."""

    def sign(self, data: Buffer) -> bytes:
        """PureEdDSA signature made on the token."""
        return self._token.sign(self.label, sign_eddsa(bytes(data)))

    def public_key(self) -> ed25519.Ed25519PublicKey:
        """The matching public key (read from the token when the key was loaded)."""
        return self._public_key

    def private_bytes_raw(self) -> bytes:
        """Not possible: raises TypeError."""
        _no_export()
