"""API keys of a user: issue (shown once), list (never the secret), revoke — each change audited.

A caller manages only the keys of users whose permissions it holds (a key acts with its user's
permissions), and a user has at most `MAX_LIVE_KEYS` unrevoked keys, so that deleting the user revokes
them all in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from chalicelib.clock import rfc3339
from chalicelib.domain.identity import ApiKey, Principal, User
from chalicelib.domain.logs import Actor, AuditEntry
from chalicelib.errors import Conflict, NotFound, ValidationError
from chalicelib.ids import looks_like_id
from chalicelib.services.authentication import IssuedKey, issue_api_key
from chalicelib.services.users import require_manageable

if TYPE_CHECKING:
    from datetime import datetime

    from chalicelib.services.container import Deps

MAX_LIVE_KEYS = 50


class TooManyApiKeys(Conflict):
    """A user may hold at most MAX_LIVE_KEYS unrevoked keys."""

    code = "too_many_api_keys"
    default_message = f"This user already has {MAX_LIVE_KEYS} API keys; revoke one first."


@dataclass(frozen=True)
class NewApiKey:
    """A validated POST /users/{id}/api-keys body."""

    name: str | None = None
    expires_at: datetime | None = None


class ApiKeyService:
    """Issue, list and revoke API keys."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def _user(self, account: str, user_id: str) -> User:
        user = self.deps.store.identity.user(account, user_id) if looks_like_id(user_id, "usr") else None
        if user is None or user.deleted_at:
            raise NotFound("No such user.")
        return user

    def create(self, who: Principal, user_id: str, req: NewApiKey, source_ip: str | None) -> IssuedKey:
        """POST /users/{id}/api-keys: the key is in the result once and never stored."""
        now = self.deps.clock()
        if req.expires_at is not None and req.expires_at <= now:
            raise ValidationError("expires_at must be a future RFC 3339 time.", details={"field": "expires_at"})
        expires_at = rfc3339(req.expires_at) if req.expires_at is not None else None
        user = self._user(who.account, user_id)
        require_manageable(who, user)
        live = [k for k in self.deps.store.identity.api_keys_of(who.account, user.id) if not k.revoked_at]
        if len(live) >= MAX_LIVE_KEYS:
            raise TooManyApiKeys()
        issued = issue_api_key(who.account, user.id, rfc3339(now), req.name, expires_at)
        store = self.deps.store
        tx = store.transaction()
        store.identity.stage_api_key(tx, issued.key)
        store.audit.stage(tx, AuditEntry.new(
            Actor(who.account, who.user_id, source_ip), now, type="api_key", action="create",
            resource_id=issued.key.id, expires=self.deps.log_expiry(now),
            details={"user_id": user.id, "name": req.name, "expires_at": expires_at},
        ))
        tx.commit()
        return issued

    def list(self, who: Principal, user_id: str) -> list[ApiKey]:
        """GET /users/{id}/api-keys, newest first."""
        user = self._user(who.account, user_id)
        return self.deps.store.identity.api_keys_of(who.account, user.id)

    def revoke(self, who: Principal, user_id: str, key_id: str, source_ip: str | None) -> None:
        """DELETE /users/{id}/api-keys/{key id}: idempotent; audited once; effective within 5 seconds."""
        user = self._user(who.account, user_id)
        require_manageable(who, user)
        # Key ids are bare ULIDs; anything else (DynamoDB refuses keys over 2 KiB) names no key.
        key = self.deps.store.identity.api_key(key_id) if looks_like_id(f"key_{key_id}", "key") else None
        if key is None or key.account != who.account or key.user_id != user.id:
            raise NotFound("No such API key.")
        if key.revoked_at:
            return
        now = self.deps.clock()
        store = self.deps.store
        tx = store.transaction()
        store.identity.stage_revoke(tx, key, rfc3339(now))
        store.audit.stage(tx, AuditEntry.new(
            Actor(who.account, who.user_id, source_ip), now, type="api_key", action="revoke",
            resource_id=key.id, expires=self.deps.log_expiry(now), details={"user_id": user.id},
        ))
        tx.commit()
