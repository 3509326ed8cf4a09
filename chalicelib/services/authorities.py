"""An account's issuing CAs and TSA key: created at bootstrap, loaded (and cached) to issue and stamp."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from chalicelib.cache import TtlCache
from chalicelib.domain.identity import Account
from chalicelib.errors import StorageUnavailable

if TYPE_CHECKING:
    from cryptography import x509

    from chalicelib.keys.algorithms import PrivateKey
    from chalicelib.services.container import Deps

AUTHORITY_CACHE_SECONDS = 300.0
ROLES = ("production", "test", "tsa")


def authority_ref(account: str, role: str) -> str:
    """Key reference of an account authority: `<account>/ca/production`, `.../ca/test`, `.../tsa`."""
    return f"{account}/tsa" if role == "tsa" else f"{account}/ca/{role}"


def new_authority_key() -> PrivateKey:
    """CA and TSA keys are ECDSA P-256: fast to issue with, and verifiable by every openssl."""
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


@dataclass(frozen=True)
class Authority:
    """An issuer: its private key (disk or HSM backed) and certificate."""

    key: PrivateKey
    certificate: x509.Certificate


class Authorities:
    """Loads an account's CA and TSA keys; a loaded key object is kept for a few minutes."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps
        self._cache: TtlCache[tuple[str, str], Authority] = TtlCache(AUTHORITY_CACHE_SECONDS)

    def get(self, account: Account, role: str) -> Authority:
        """`role` is `production`, `test` or `tsa`; raises StorageUnavailable / HsmUnavailable."""
        from chalicelib.pki.certificates import load_pem

        hit = self._cache.get((account.id, role))
        if hit is not None:
            return hit
        pem = {"production": account.production_ca_pem, "test": account.test_ca_pem, "tsa": account.tsa_pem}[role]
        ref = authority_ref(account.id, role)
        if account.ca_storage == "hsm":
            key = self._deps.hsm().load(account.id, ref, None)
        else:
            material = self._deps.store.keypairs.material(ref)
            if material is None:
                raise StorageUnavailable("The account's CA key is missing.")
            key = self._deps.disk.load(account.id, ref, material.sealed)
        authority = Authority(key, load_pem(pem))
        self._cache.put((account.id, role), authority)
        return authority
