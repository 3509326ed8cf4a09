"""Accounts: the bootstrap that creates one (CAs, TSA, first admin) and the account settings."""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

from pynamodb.exceptions import DoesNotExist, PynamoDBException, TransactWriteError

from chalicelib.clock import rfc3339
from chalicelib.errors import Conflict, NotFound, ValidationError
from chalicelib.ids import new_id
from chalicelib.keys.algorithms import KeySpec, PrivateKey, PublicKey
from chalicelib.pki.certificates import issue_tsa_certificate, make_ca_certificate, to_pem
from chalicelib.services.access import Principal, new_api_key
from chalicelib.services.audit import Actor, audit_item
from chalicelib.services.authorities import authority_ref, material_item, new_authority_key
from chalicelib.services.deps import Deps
from chalicelib.storage.models import (
    AccountModel,
    AccountNameClaim,
    ApiKeyModel,
    AuditLogModel,
    KeyMaterialModel,
    UserModel,
)
from chalicelib.storage.tx import cancellation_codes, storage_error, transaction

log = logging.getLogger("rotasign.accounts")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,99}$")
ACCOUNT_CACHE_SECONDS = 5.0


@dataclass(frozen=True)
class BootstrapResult:
    """What the bootstrap made; `api_key` is shown once and never stored or logged."""

    account_id: str
    account_name: str
    user_id: str
    api_key: str


class AccountExists(Conflict):
    code = "account_exists"
    default_message = "An account with this name already exists."


def bootstrap_account(
    deps: Deps, name: str, admin_name: str = "admin", admin_email: str | None = None
) -> BootstrapResult:
    """Create an account, its production and test CAs, its TSA and its first admin, in one transaction."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise ValidationError("Account names are 1-100 letters, digits, spaces, dots, dashes or underscores.")
    now = deps.clock()
    account_id = new_id("acct")
    user_id = new_id("usr")
    hsm_cas = deps.settings.ca_storage == "hsm"
    keys: dict[str, PrivateKey] = {}
    publics: dict[str, PublicKey] = {}
    materials: list[KeyMaterialModel] = []
    made_on_hsm: list[str] = []
    try:
        for role in ("production", "test", "tsa"):
            ref = authority_ref(account_id, role)
            if hsm_cas:
                hsm = deps.hsm()
                hsm.generate(account_id, ref, KeySpec("ECDSA", None, "P-256"))
                made_on_hsm.append(ref)
                keys[role] = hsm.load(account_id, ref, None)
            else:
                key = new_authority_key()
                keys[role] = key
                materials.append(material_item(account_id, ref, deps.disk.seal(account_id, ref, key), rfc3339(now)))
            publics[role] = keys[role].public_key()
        production = make_ca_certificate(keys["production"], name, "production", now)
        test = make_ca_certificate(keys["test"], name, "test", now)
        tsa = issue_tsa_certificate(keys["production"], production, publics["tsa"], name, now)
        issued = new_api_key(account_id, user_id, now, "bootstrap", None)
        system = Actor(account_id, "system:bootstrap")
        retention = deps.settings.log_retention_days
        try:
            with transaction() as tx:
                tx.save(AccountNameClaim(f"name#{name.lower()}", account_id=account_id),
                        condition=AccountNameClaim.id.does_not_exist())
                tx.save(
                    AccountModel(
                        account_id,
                        name=name,
                        created_at=rfc3339(now),
                        production_ca_pem=to_pem(production),
                        test_ca_pem=to_pem(test),
                        tsa_pem=to_pem(tsa),
                        ca_storage="hsm" if hsm_cas else "disk",
                    ),
                    condition=AccountModel.id.does_not_exist(),
                )
                tx.save(
                    UserModel(account_id, user_id, name=admin_name, email=admin_email, roles=["admin"],
                              created_at=rfc3339(now)),
                    condition=UserModel.id.does_not_exist(),
                )
                tx.save(issued.item, condition=ApiKeyModel.id.does_not_exist())
                for material in materials:
                    tx.save(material, condition=KeyMaterialModel.id.does_not_exist())
                for item in (
                    audit_item(system, now, type="account", action="create", resource_id=account_id,
                               resource_alias=name, retention_days=retention),
                    audit_item(system, now, type="user", action="create", resource_id=user_id,
                               resource_alias=admin_name, details={"roles": ["admin"]}, retention_days=retention),
                    audit_item(system, now, type="api_key", action="create", resource_id=issued.item.id,
                               details={"user_id": user_id}, retention_days=retention),
                ):
                    tx.save(item, condition=AuditLogModel.sk.does_not_exist())
        except TransactWriteError as exc:
            if cancellation_codes(exc)[:1] == ["ConditionalCheckFailed"]:
                raise AccountExists(details={"name": name}) from exc
            raise storage_error(exc) from exc
    except BaseException:
        for ref in made_on_hsm:
            try:
                deps.hsm().destroy(ref)
            except Exception:
                # Keep going (one failed destroy must not strand the other keys) and keep the caller's error.
                log.warning("could not destroy an authority key of a failed bootstrap", extra={"key_ref": ref})
        raise
    log.info("account bootstrapped", extra={"event": "bootstrap", "account": account_id, "user": user_id})
    return BootstrapResult(account_id, name, user_id, issued.key)


class AccountCache:
    """Accounts read at most every few seconds by a warm process."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[float, AccountModel]] = {}
        self._lock = threading.Lock()

    def get(self, account_id: str) -> AccountModel:
        """The account; raises NotFound / StorageUnavailable."""
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(account_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        try:
            account = AccountModel.get(account_id)
        except DoesNotExist as exc:
            raise NotFound("No such account.") from exc
        except PynamoDBException as exc:
            raise storage_error(exc) from exc
        with self._lock:
            self._cache[account_id] = (now + ACCOUNT_CACHE_SECONDS, account)
        return account

    def forget(self, account_id: str | None = None) -> None:
        """Drop one or every cached account."""
        with self._lock:
            if account_id is None:
                self._cache.clear()
            else:
                self._cache.pop(account_id, None)


def account_dict(account: AccountModel) -> dict[str, Any]:
    """The API.md form of an account."""
    return {
        "id": account.id,
        "name": account.name,
        "teams_enabled": bool(account.teams_enabled),
        "require_keypair_profile": bool(account.require_keypair_profile),
        "public_tsa": bool(account.public_tsa),
        "created_at": account.created_at,
    }


ACCOUNT_PATCH_FIELDS = ("teams_enabled", "require_keypair_profile", "public_tsa")


def update_account(
    deps: Deps, cache: AccountCache, principal: Principal, body: Any, source_ip: str | None
) -> dict[str, Any]:
    """PATCH /account: the boolean settings; one transaction with its audit entry. Raises 400/409/503."""
    if not isinstance(body, dict):
        raise ValidationError("The body must be a JSON object.")
    for name, value in body.items():
        if name not in ACCOUNT_PATCH_FIELDS:
            raise ValidationError(f"Unknown field {name!r}.", details={"field": name})
        if not isinstance(value, bool):
            raise ValidationError(f"{name} must be true or false.", details={"field": name})
    try:
        account = AccountModel.get(principal.account, consistent_read=True)
    except DoesNotExist as exc:
        raise NotFound("No such account.") from exc
    except PynamoDBException as exc:
        raise storage_error(exc) from exc
    changes = {name: value for name, value in body.items() if bool(getattr(account, name)) != value}
    if not changes:
        return account_dict(account)
    now = deps.clock()
    entry = audit_item(
        Actor(account.id, principal.user_id, source_ip), now, type="account", action="update",
        resource_id=account.id, resource_alias=account.name, retention_days=deps.settings.log_retention_days,
        details={"changes": {name: {"from": not value, "to": value} for name, value in changes.items()}},
    )
    try:
        with transaction() as tx:
            # The version condition (added by PynamoDB) makes a concurrent change a 409, not a lost update.
            tx.update(account, actions=[getattr(AccountModel, name).set(value) for name, value in changes.items()],
                      condition=AccountModel.id.exists())
            tx.save(entry, condition=AuditLogModel.sk.does_not_exist())
    except TransactWriteError as exc:
        if "ConditionalCheckFailed" in cancellation_codes(exc):
            raise Conflict() from exc
        raise storage_error(exc) from exc
    cache.forget(account.id)
    for name, value in changes.items():
        setattr(account, name, value)
    log.info("account updated", extra={"event": "account_update", "account": account.id, "fields": sorted(changes)})
    return account_dict(account)
