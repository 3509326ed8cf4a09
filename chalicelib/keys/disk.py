"""Disk storage: keys made by `cryptography`, sealed with AES-256-GCM under a KMS data key."""

from __future__ import annotations

import os
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from chalicelib.errors import KeyMissing, StorageUnavailable, Throttled
from chalicelib.keys.algorithms import KeySpec, PrivateKey, generate_private_key
from chalicelib.keys.backend import NewKey, SealedKey

_THROTTLING = {"ThrottlingException", "LimitExceededException", "RequestLimitExceeded"}


def kms_error(exc: Exception) -> Exception:
    """Map a KMS/botocore failure to the domain error a client sees."""
    if isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in _THROTTLING:
        return Throttled("The key service is throttling requests; retry later.")
    return StorageUnavailable("The key service is unavailable; nothing was changed.")


class DiskKeyStore:
    """Seals private keys for the key-material table and unseals them to sign; keeps no copy itself."""

    storage = "disk"

    def __init__(self, kms: Any, kms_key_id: str) -> None:
        self._kms = kms
        self._kms_key_id = kms_key_id

    def generate(self, account: str, key_ref: str, spec: KeySpec) -> NewKey:
        """Generate a key in memory and seal it; raises StorageUnavailable / Throttled."""
        private_key = generate_private_key(spec)
        sealed = self.seal(account, key_ref, private_key)
        return NewKey(private_key.public_key(), key_ref, sealed)

    def seal(self, account: str, key_ref: str, private_key: PrivateKey) -> SealedKey:
        """Encrypt a private key (PKCS#8 DER) under a fresh data key bound to account and key_ref."""
        try:
            data_key = self._kms.generate_data_key(
                KeyId=self._kms_key_id,
                KeySpec="AES_256",
                EncryptionContext=self._context(account, key_ref),
            )
        except (BotoCoreError, ClientError) as exc:
            raise kms_error(exc) from exc
        der = private_key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        nonce = os.urandom(12)
        ciphertext = AESGCM(data_key["Plaintext"]).encrypt(nonce, der, key_ref.encode())
        return SealedKey(ciphertext, nonce, data_key["CiphertextBlob"])

    def load(self, account: str, key_ref: str, sealed: SealedKey | None) -> PrivateKey:
        """Unseal the key of key_ref (one KMS Decrypt; the caller decides how long to keep the object).

        Raises KeyMissing without material, StorageUnavailable / Throttled when KMS fails or the
        material does not open under this account and key_ref.
        """
        if sealed is None:
            raise KeyMissing()
        try:
            plain = self._kms.decrypt(
                CiphertextBlob=sealed.wrapped_key,
                EncryptionContext=self._context(account, key_ref),
                KeyId=self._kms_key_id,
            )
        except (BotoCoreError, ClientError) as exc:
            raise kms_error(exc) from exc
        try:
            der = AESGCM(plain["Plaintext"]).decrypt(sealed.nonce, sealed.ciphertext, key_ref.encode())
        except InvalidTag as exc:
            raise StorageUnavailable("The stored key material does not belong to this key.") from exc
        # The GCM tag authenticates a key this service generated, so OpenSSL's RSA consistency
        # check (~80 ms for RSA-3072) would only re-prove what the tag already proves.
        key = serialization.load_der_private_key(der, password=None, unsafe_skip_rsa_key_validation=True)
        return key  # type: ignore[return-value]

    def destroy(self, key_ref: str) -> None:
        """Nothing to do here: the sealed material is deleted in the caller's transaction."""

    @staticmethod
    def _context(account: str, key_ref: str) -> dict[str, str]:
        keypair, _, generation = key_ref.partition("/")
        return {"account": account, "keypair": keypair, "generation": generation.split("/")[0]}
