"""The account's log key: the Ed25519 key that signs its transparency checkpoints.

It lives where the account's CA keys live: on the HSM (token label `<account>/log`) for accounts made
with `ROTASIGN_CA_STORAGE=hsm`, otherwise sealed under KMS in the key-material table. The bootstrap makes
it with the account; an account made before the transparency log existed gets it from the first
checkpointer run that needs it. Its public half is kept on the account, so the trust route serves it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from chalicelib.cache import TtlCache
from chalicelib.clock import rfc3339
from chalicelib.domain.identity import Account
from chalicelib.domain.keyspec import KeySpec
from chalicelib.domain.transparency import checkpoint_body, signed_note
from chalicelib.errors import Conflict, NotFound, StorageUnavailable

if TYPE_CHECKING:
    from chalicelib.keys.algorithms import PrivateKey
    from chalicelib.services.accounts import AccountCache
    from chalicelib.services.container import Deps
    from chalicelib.storage.transaction import Transaction

log = logging.getLogger("rotasign.transparency")
LOG_KEY_SPEC = KeySpec("EdDSA", None, "Ed25519")
LOG_KEY_CACHE_SECONDS = 300.0


def log_key_ref(account_id: str) -> str:
    """Key reference (and HSM label) of an account's log key."""
    return f"{account_id}/log"


def raw_public_key(pem: str) -> bytes:
    """The 32 bytes of an Ed25519 public key in PEM (what note key IDs are computed over)."""
    from cryptography.hazmat.primitives import serialization

    public = serialization.load_pem_public_key(pem.encode("ascii"))
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def new_log_key(deps: Deps, tx: Transaction, account_id: str, on_hsm: bool, created_at: str) -> str:
    """Make the log key of a new account (its sealed material staged in `tx` for disk); returns its public PEM.

    On the HSM the key exists as soon as this returns: a caller whose transaction fails destroys it.
    Raises HsmUnavailable, StorageUnavailable, Throttled.
    """
    from chalicelib.keys.algorithms import public_key_pem

    ref = log_key_ref(account_id)
    if on_hsm:
        return public_key_pem(deps.hsm().generate(account_id, ref, LOG_KEY_SPEC).public_key)
    new = deps.disk.generate(account_id, ref, LOG_KEY_SPEC)
    assert new.sealed is not None
    deps.store.keypairs.stage_material(tx, ref, account_id, ref, new.sealed, created_at)
    return public_key_pem(new.public_key)


class _Recorded(Conflict):
    """Another run recorded the account's log key first."""


@dataclass(frozen=True)
class LogSigner:
    """A loaded log key and its raw public key: signs checkpoints as C2SP signed notes."""

    key: PrivateKey
    public_key: bytes

    def checkpoint(self, origin: str, size: int, root: bytes) -> str:
        """The signed checkpoint of a tree: note text plus one Ed25519 signature line named after the origin."""
        from chalicelib.keys.algorithms import SIG_ALGS, sign

        body = checkpoint_body(origin, size, root)
        return signed_note(body, origin, self.public_key, sign(self.key, SIG_ALGS["Ed25519"], body.encode()))


class LogKeys:
    """Loads (and caches for a few minutes) each account's log key; makes it for accounts that have none."""

    def __init__(self, deps: Deps, accounts: AccountCache) -> None:
        self._deps = deps
        self._accounts = accounts
        self._cache: TtlCache[str, LogSigner] = TtlCache(LOG_KEY_CACHE_SECONDS)

    def signer(self, account: Account) -> LogSigner:
        """The account's log key, ready to sign; raises NotFound (none yet), StorageUnavailable, HsmUnavailable."""
        hit = self._cache.get(account.id)
        if hit is not None:
            return hit
        if not account.log_public_key:
            raise NotFound("The account has no log key yet.")
        ref = log_key_ref(account.id)
        if account.ca_storage == "hsm":
            key = self._deps.hsm().load(account.id, ref, None)
        else:
            material = self._deps.store.keypairs.material(ref)
            if material is None:
                raise StorageUnavailable("The account's log key is missing.")
            key = self._deps.disk.load(account.id, ref, material.sealed)
        from chalicelib.keys.algorithms import public_key_pem

        if public_key_pem(key.public_key()) != account.log_public_key:
            raise StorageUnavailable("The account's log key does not match its published public key.")
        signer = LogSigner(key, raw_public_key(account.log_public_key))
        self._cache.put(account.id, signer)
        return signer

    def ensure(self, account: Account) -> Account:
        """The account with a log key: made now (where its CA keys live) if it has none.

        Safe to race: one key gets recorded and every racer ends up with it. On the HSM a key left by a
        run that died before recording it is adopted, not replaced. Raises HsmUnavailable, StorageUnavailable.
        """
        if account.log_public_key:
            return account
        from chalicelib.keys.algorithms import public_key_pem

        deps = self._deps
        store = deps.store
        ref = log_key_ref(account.id)
        tx = store.transaction()
        if account.ca_storage == "hsm":
            hsm = deps.hsm()
            try:
                public = hsm.generate(account.id, ref, LOG_KEY_SPEC).public_key
            except Conflict:
                public = hsm.load(account.id, ref, None).public_key()
            store.accounts.stage_log_key(tx, account, public_key_pem(public), on_fail=_Recorded)
        else:
            new = deps.disk.generate(account.id, ref, LOG_KEY_SPEC)
            assert new.sealed is not None
            public = new.public_key
            store.accounts.stage_log_key(tx, account, public_key_pem(public), on_fail=_Recorded)
            store.keypairs.stage_material(tx, ref, account.id, ref, new.sealed, rfc3339(deps.clock()),
                                          on_fail=_Recorded)
        pem = public_key_pem(public)
        try:
            tx.commit()
        except _Recorded:
            self._accounts.forget(account.id)
            recorded = store.accounts.get(account.id)
            if recorded is None or not recorded.log_public_key:
                raise StorageUnavailable("The account's log key could not be recorded.") from None
            return recorded
        self._accounts.forget(account.id)
        log.info("log key made", extra={"event": "log_key", "account": account.id, "storage": account.ca_storage})
        return replace(account, log_public_key=pem)
