"""HSM storage as a KeyBackend: the private key is made, used and destroyed on the token."""

from __future__ import annotations

from collections.abc import Callable

from chalicelib.keys.algorithms import KeySpec, PrivateKey
from chalicelib.keys.backend import NewKey, SealedKey
from chalicelib.keys.hsm import HsmBackend
from chalicelib.settings import Settings


class HsmKeyStore:
    """Adapts HsmBackend (token labels) to the KeyBackend interface (key references)."""

    storage = "hsm"

    def __init__(self, backend: HsmBackend) -> None:
        self.backend = backend

    @classmethod
    def from_settings(cls, settings: Settings, pin: Callable[[], str]) -> HsmKeyStore:
        """Module path and token label from settings; the PIN from a provider (env or Secrets Manager)."""
        return cls(HsmBackend(settings.pkcs11_module, settings.hsm_token_label, pin))

    def generate(self, account: str, key_ref: str, spec: KeySpec) -> NewKey:
        """Generate on the token; the key reference is the object's label."""
        return NewKey(self.backend.generate(key_ref, spec), key_ref, None)

    def load(self, account: str, key_ref: str, sealed: SealedKey | None) -> PrivateKey:
        """The on-token key as a `cryptography` key object (its sign() runs on the token)."""
        return self.backend.private_key(key_ref)

    def destroy(self, key_ref: str) -> None:
        """Destroy the token objects of a key."""
        self.backend.destroy(key_ref)

    def private_key(self, key_ref: str) -> PrivateKey:
        """A `cryptography` key object that signs on the token (for CA keys)."""
        return self.backend.private_key(key_ref)

    def health(self) -> None:
        """Check that the token answers (opening and logging in a session if needed); raises HsmUnavailable."""
        self.backend.health()

    def list_refs(self, prefix: str = "") -> list[str]:
        """Key references on the token (for the orphan sweep)."""
        return self.backend.list_labels(prefix)
