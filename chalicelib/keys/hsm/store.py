"""HSM storage as a KeyBackend: private keys are made, used and destroyed on a PKCS#11 token."""

from __future__ import annotations

from collections.abc import Callable

from chalicelib.keys.algorithms import KeySpec, PrivateKey
from chalicelib.keys.backend import NewKey, SealedKey
from chalicelib.keys.hsm.keys import key_object
from chalicelib.keys.hsm.session import TokenSession
from chalicelib.keys.hsm.token import TokenKeys
from chalicelib.settings import Settings


class HsmKeyStore:
    """Keys on one token; a key reference is the token label of its key pair."""

    storage = "hsm"

    def __init__(self, session: TokenSession, pin_provider: Callable[[], str]) -> None:
        """A store on `session` (use `connect` for the process-wide one); nothing is opened until first use."""
        self.token = TokenKeys(session, pin_provider)

    @classmethod
    def connect(cls, module_path: str, token_label: str, pin_provider: Callable[[], str]) -> HsmKeyStore:
        """A store on the process-wide session of this module and token (one login per process)."""
        return cls(TokenSession.shared(module_path, token_label), pin_provider)

    @classmethod
    def from_settings(cls, settings: Settings, pin_provider: Callable[[], str]) -> HsmKeyStore:
        """Module path and token label from settings; the PIN from a provider (env or Secrets Manager)."""
        return cls.connect(settings.pkcs11_module, settings.hsm_token_label, pin_provider)

    def generate(self, account: str, key_ref: str, spec: KeySpec) -> NewKey:
        """Generate on the token; raises Conflict (label taken), UnsupportedAlgorithm, HsmUnavailable."""
        return NewKey(self.token.generate(key_ref, spec), key_ref, None)

    def load(self, account: str, key_ref: str, sealed: SealedKey | None) -> PrivateKey:
        """The token key as a `cryptography` key object (its sign() runs on the token, export raises TypeError).

        Raises KeyMissing when the key is not on the token, HsmUnavailable when the token fails.
        """
        return key_object(self.token, key_ref, self.token.public_key(key_ref))

    def destroy(self, key_ref: str) -> None:
        """Destroy the token objects of a key (nothing to do when they are gone); raises HsmUnavailable."""
        self.token.destroy(key_ref)

    def health(self) -> None:
        """Check that the token answers (logging in, or recovering, if needed); raises HsmUnavailable."""
        self.token.health()

    def list_refs(self, prefix: str = "") -> list[str]:
        """Sorted key references on the token that start with `prefix` (for the orphan sweep)."""
        return self.token.labels(prefix)
