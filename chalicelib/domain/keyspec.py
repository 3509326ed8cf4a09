"""Key parameters: algorithm plus key size (RSA) or curve (ECDSA, EdDSA), validated when built."""

from __future__ import annotations

from dataclasses import dataclass

from chalicelib.errors import UnsupportedAlgorithm, ValidationError

ALGORITHMS: tuple[str, ...] = ("RSA", "ECDSA", "EdDSA")
RSA_KEY_SIZES: tuple[int, ...] = (2048, 3072, 4096)
EC_CURVE_NAMES: tuple[str, ...] = ("P-256", "P-384", "P-521")
ED_CURVE = "Ed25519"
HASH_LENGTHS: dict[str, int] = {"SHA-256": 32, "SHA-384": 48, "SHA-512": 64}


@dataclass(frozen=True)
class KeySpec:
    """The parameters of a keypair: algorithm plus key size (RSA) or curve (ECDSA, EdDSA)."""

    algorithm: str
    key_size: int | None = None
    curve: str | None = None

    @classmethod
    def build(cls, algorithm: object, key_size: object = None, curve: object = None) -> KeySpec:
        """Validate a combination from a request; raises ValidationError / UnsupportedAlgorithm."""
        if not isinstance(algorithm, str):
            raise ValidationError("algorithm must be a string.", details={"field": "algorithm"})
        if algorithm not in ALGORITHMS:
            raise UnsupportedAlgorithm(
                f"algorithm must be one of {', '.join(ALGORITHMS)}.", details={"field": "algorithm"}
            )
        if key_size is not None and (isinstance(key_size, bool) or not isinstance(key_size, int)):
            raise ValidationError("key_size must be an integer.", details={"field": "key_size"})
        if curve is not None and not isinstance(curve, str):
            raise ValidationError("curve must be a string.", details={"field": "curve"})
        if algorithm == "RSA":
            if curve is not None:
                raise ValidationError("RSA keys take key_size, not curve.", details={"field": "curve"})
            if key_size is None:
                raise ValidationError("RSA keys need key_size.", details={"field": "key_size"})
            if key_size not in RSA_KEY_SIZES:
                raise UnsupportedAlgorithm("RSA key_size must be 2048, 3072 or 4096.", details={"field": "key_size"})
            return cls("RSA", key_size, None)
        if key_size is not None:
            raise ValidationError(f"{algorithm} keys take no key_size.", details={"field": "key_size"})
        if algorithm == "ECDSA":
            if curve is None:
                raise ValidationError("ECDSA keys need curve.", details={"field": "curve"})
            if curve not in EC_CURVE_NAMES:
                raise UnsupportedAlgorithm("ECDSA curve must be P-256, P-384 or P-521.", details={"field": "curve"})
            return cls("ECDSA", None, curve)
        if curve not in (None, ED_CURVE):
            raise UnsupportedAlgorithm("EdDSA keys use curve Ed25519.", details={"field": "curve"})
        return cls("EdDSA", None, ED_CURVE)
