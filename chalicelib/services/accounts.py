"""Accounts: the bootstrap that creates one (CAs, TSA, first admin) and the account settings."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chalicelib.cache import TtlCache
from chalicelib.clock import rfc3339
from chalicelib.domain.identity import Account, Principal, User
from chalicelib.domain.keyspec import KeySpec
from chalicelib.domain.logs import Actor, AuditEntry
from chalicelib.errors import NotFound, ValidationError
from chalicelib.ids import new_id
from chalicelib.services.authentication import issue_api_key
from chalicelib.services.authorities import authority_ref, new_authority_key
from chalicelib.services.log_keys import log_key_ref, new_log_key
from chalicelib.services.trust import issuer_url
from chalicelib.storage.accounts import AccountExists

if TYPE_CHECKING:
    from chalicelib.keys.algorithms import PrivateKey, PublicKey
    from chalicelib.services.container import Deps

log = logging.getLogger("rotasign.accounts")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,99}$")

__all__ = ["AccountCache", "AccountExists", "BootstrapResult", "bootstrap_account", "update_settings"]


@dataclass(frozen=True)
class BootstrapResult:
    """What the bootstrap made; `api_key` is shown once and never stored or logged."""

    account_id: str
    account_name: str
    user_id: str
    api_key: str


def bootstrap_account(deps: Deps, name: str, admin_name: str = "admin", admin_email: str | None = None
                      ) -> BootstrapResult:
    """Create an account, its production and test CAs, its TSA, its log key and its first admin, in one transaction.

    Raises ValidationError (bad name), AccountExists, HsmUnavailable, StorageUnavailable.
    """
    from chalicelib.pki.certificates import issue_tsa_certificate, make_ca_certificate, to_pem

    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise ValidationError("Account names are 1-100 letters, digits, spaces, dots, dashes or underscores.")
    now = deps.clock()
    now_iso = rfc3339(now)
    account_id, user_id = new_id("acct"), new_id("usr")
    on_hsm = deps.settings.ca_storage == "hsm"
    store = deps.store
    tx = store.transaction()
    keys: dict[str, PrivateKey] = {}
    publics: dict[str, PublicKey] = {}
    made_on_hsm: list[str] = []
    try:
        for role in ("production", "test", "tsa"):
            ref = authority_ref(account_id, role)
            if on_hsm:
                hsm = deps.hsm()
                hsm.generate(account_id, ref, KeySpec("ECDSA", None, "P-256"))
                made_on_hsm.append(ref)
                keys[role] = hsm.load(account_id, ref, None)
            else:
                key = new_authority_key()
                keys[role] = key
                store.keypairs.stage_material(tx, ref, account_id, ref, deps.disk.seal(account_id, ref, key), now_iso)
            publics[role] = keys[role].public_key()
        if on_hsm:
            made_on_hsm.append(log_key_ref(account_id))
        log_public_key = new_log_key(deps, tx, account_id, on_hsm, now_iso)
        production = make_ca_certificate(keys["production"], name, "production", now)
        test = make_ca_certificate(keys["test"], name, "test", now)
        tsa = issue_tsa_certificate(keys["production"], production, publics["tsa"], name, now,
                                    ca_issuers=issuer_url(deps.settings, account_id, "production"))
        issued = issue_api_key(account_id, user_id, now_iso, "bootstrap", None)
        account = Account(account_id, name, now_iso, to_pem(production), to_pem(test), to_pem(tsa),
                          ca_storage="hsm" if on_hsm else "disk", log_public_key=log_public_key)
        store.accounts.stage_create(tx, account)
        store.identity.stage_user(tx, User(account_id, user_id, admin_name, now_iso, email=admin_email,
                                           roles=("admin",)))
        store.identity.stage_api_key(tx, issued.key)
        system = Actor(account_id, "system:bootstrap")
        expires = deps.log_expiry(now)
        for entry in (
            AuditEntry.new(system, now, type="account", action="create", resource_id=account_id,
                           resource_alias=name, expires=expires),
            AuditEntry.new(system, now, type="user", action="create", resource_id=user_id,
                           resource_alias=admin_name, details={"roles": ["admin"]}, expires=expires),
            AuditEntry.new(system, now, type="api_key", action="create", resource_id=issued.key.id,
                           details={"user_id": user_id}, expires=expires),
        ):
            store.audit.stage(tx, entry)
        tx.commit()
    except BaseException:
        for ref in made_on_hsm:
            try:
                deps.hsm().destroy(ref)
            except Exception:
                # Keep going (one failed destroy must not strand the other keys) and keep the caller's error.
                log.warning("could not destroy an authority key of a failed bootstrap", extra={"key_ref": ref})
        raise
    log.info("account bootstrapped", extra={"event": "bootstrap", "account": account_id, "user": user_id})
    return BootstrapResult(account_id, name, user_id, issued.secret)


class AccountCache:
    """Accounts as a warm process sees them: read at most every few seconds."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps
        self._cache: TtlCache[str, Account] = TtlCache(deps.settings.state_cache_seconds)

    def get(self, account_id: str) -> Account:
        """The account; raises NotFound / StorageUnavailable."""
        account = self._cache.get(account_id)
        if account is None:
            account = self._deps.store.accounts.get(account_id)
            if account is None:
                raise NotFound("No such account.")
            self._cache.put(account_id, account)
        return account

    def forget(self, account_id: str | None = None) -> None:
        """Drop one or every cached account."""
        if account_id is None:
            self._cache.clear()
        else:
            self._cache.pop(account_id)


def update_settings(deps: Deps, cache: AccountCache, principal: Principal, changes: dict[str, bool],
                    source_ip: str | None) -> Account:
    """PATCH /account: change boolean settings, audited in the same transaction; raises 409/503."""
    account = deps.store.accounts.get(principal.account)  # fresh: the update is conditioned on its version
    if account is None:
        raise NotFound("No such account.")
    changed = {name: value for name, value in changes.items() if getattr(account, name) != value}
    if not changed:
        return account
    now = deps.clock()
    tx = deps.store.transaction()
    updated = deps.store.accounts.stage_settings(tx, account, changed)
    deps.store.audit.stage(tx, AuditEntry.new(
        Actor(account.id, principal.user_id, source_ip), now, type="account", action="update",
        resource_id=account.id, resource_alias=account.name, expires=deps.log_expiry(now),
        details={"changes": {name: {"from": getattr(account, name), "to": value} for name, value in changed.items()}},
    ))
    tx.commit()
    cache.forget(account.id)
    log.info("account updated", extra={"event": "account_update", "account": account.id, "fields": sorted(changed)})
    return updated
