"""An account's issuing CAs and TSA key: created at bootstrap, loaded (and cached) to issue."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from pynamodb.exceptions import DoesNotExist, PynamoDBException

from chalicelib.errors import StorageUnavailable
from chalicelib.keys.algorithms import PrivateKey
from chalicelib.keys.backend import SealedKey
from chalicelib.pki.certificates import load_pem
from chalicelib.services.deps import Deps
from chalicelib.storage.models import AccountModel, KeyMaterialModel
from chalicelib.storage.tx import storage_error

AUTHORITY_CACHE_SECONDS = 300.0


def authority_ref(account: str, role: str) -> str:
    """Key reference of an account authority: `<account>/ca/production`, `.../ca/test`, `.../tsa`."""
    return f"{account}/tsa" if role == "tsa" else f"{account}/ca/{role}"


def new_authority_key() -> PrivateKey:
    """CA and TSA keys are ECDSA P-256: fast to issue with, and verifiable by every openssl."""
    return ec.generate_private_key(ec.SECP256R1())


def material_item(account: str, ref: str, sealed: SealedKey, now_iso: str) -> KeyMaterialModel:
    """A key-material row for a sealed private key."""
    return KeyMaterialModel(
        ref,
        account=account,
        ciphertext=sealed.ciphertext,
        nonce=sealed.nonce,
        wrapped_key=sealed.wrapped_key,
        created_at=now_iso,
    )


def sealed_of(item: KeyMaterialModel) -> SealedKey:
    """The SealedKey held by a key-material row."""
    return SealedKey(bytes(item.ciphertext), bytes(item.nonce), bytes(item.wrapped_key))


@dataclass(frozen=True)
class Authority:
    """An issuer: its private key (disk or HSM backed) and certificate."""

    key: PrivateKey
    certificate: x509.Certificate


class Authorities:
    """Loads an account's CA and TSA keys, caching them for a few minutes."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps
        self._cache: dict[tuple[str, str], tuple[float, Authority]] = {}
        self._lock = threading.Lock()

    def get(self, account: AccountModel, role: str) -> Authority:
        """`role` is `production`, `test` or `tsa`; raises StorageUnavailable / HsmUnavailable."""
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get((account.id, role))
        if hit is not None and hit[0] > now:
            return hit[1]
        pem = {"production": account.production_ca_pem, "test": account.test_ca_pem, "tsa": account.tsa_pem}[role]
        ref = authority_ref(account.id, role)
        if account.ca_storage == "hsm":
            key = self._deps.hsm().load(account.id, ref, None)
        else:
            try:
                material = KeyMaterialModel.get(ref)
            except DoesNotExist as exc:
                raise StorageUnavailable("The account's CA key is missing.") from exc
            except PynamoDBException as exc:
                raise storage_error(exc) from exc
            key = self._deps.disk.load(account.id, ref, sealed_of(material))
        authority = Authority(key, load_pem(pem))
        with self._lock:
            self._cache[(account.id, role)] = (now + AUTHORITY_CACHE_SECONDS, authority)
        return authority


