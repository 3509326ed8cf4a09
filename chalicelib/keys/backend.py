"""The key-backend interface shared by disk and HSM storage."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from chalicelib.domain.keypairs import SealedKey
from chalicelib.keys.algorithms import KeySpec, PrivateKey, PublicKey

__all__ = ["KeyBackend", "NewKey", "SealedKey"]


@dataclass(frozen=True)
class NewKey:
    """A key just made: its public half, its reference, and (disk) the sealed private half to persist."""

    public_key: PublicKey
    key_ref: str
    sealed: SealedKey | None


class KeyBackend(Protocol):
    """Where private keys live. `data` to sign is the digest (RSA/ECDSA) or the message (Ed25519)."""

    storage: str

    def generate(self, account: str, key_ref: str, spec: KeySpec) -> NewKey:
        """Make a new private key; raises HsmUnavailable / StorageUnavailable."""
        ...

    def load(self, account: str, key_ref: str, sealed: SealedKey | None) -> PrivateKey:
        """The key named by key_ref as a `cryptography` private-key object (disk: unsealed; hsm: on the token)."""
        ...

    def destroy(self, key_ref: str) -> None:
        """Destroy a key for good; idempotent. (Disk material is deleted in the caller's transaction.)"""
        ...
