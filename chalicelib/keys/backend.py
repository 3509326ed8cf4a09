"""The key-backend interface shared by disk and HSM storage.

A backend makes keys, hands out `cryptography` private-key objects and destroys keys; it never signs
itself. Every signature is `algorithms.sign(backend.load(...), sig_alg, data)`, whatever the storage.
"""

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
    """Where private keys live: `storage` is "disk" or "hsm"."""

    storage: str

    def generate(self, account: str, key_ref: str, spec: KeySpec) -> NewKey:
        """Make a new private key; raises HsmUnavailable / StorageUnavailable / Throttled."""
        ...

    def load(self, account: str, key_ref: str, sealed: SealedKey | None) -> PrivateKey:
        """The private key named by key_ref, as a `cryptography` key object to pass to `algorithms.sign`.

        `sealed` is the persisted material of a disk key (None for HSM keys). Raises KeyMissing when the
        key no longer exists, HsmUnavailable / StorageUnavailable / Throttled when its store fails.
        """
        ...

    def destroy(self, key_ref: str) -> None:
        """Destroy a key for good; idempotent. (Disk material is deleted in the caller's transaction.)"""
        ...
