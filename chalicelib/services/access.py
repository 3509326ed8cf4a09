"""Authentication (API keys) and authorisation (roles and permissions)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime

from pynamodb.exceptions import DoesNotExist, PynamoDBException

from chalicelib.clock import parse_rfc3339, rfc3339
from chalicelib.errors import Forbidden, Unauthenticated
from chalicelib.ids import ulid
from chalicelib.services.audit import Actor, audit_item, write_audit
from chalicelib.services.deps import Deps
from chalicelib.storage.models import ApiKeyModel, UserModel
from chalicelib.storage.tx import storage_error

log = logging.getLogger("rotasign.access")

PERMISSIONS = (
    "generate_keypair",
    "view_keypair",
    "manage_keypair",
    "sign",
    "view_audit_log",
    "manage_users",
    "manage_teams",
    "manage_profiles",
    "manage_releases",
    "manage_account",
)
ROLES: dict[str, frozenset[str]] = {
    "admin": frozenset(PERMISSIONS),
    "lead": frozenset(PERMISSIONS) - {"manage_account", "manage_users"},
    "developer": frozenset({"view_keypair", "generate_keypair", "sign", "view_audit_log"}),
    "auditor": frozenset({"view_keypair", "view_audit_log"}),
}
_KEY_RE = re.compile(r"^rsk_(?P<kid>[0-9A-HJKMNP-TV-Z]{26})_(?P<secret>[a-z2-7]{52})$")


@dataclass(frozen=True)
class Principal:
    """An authenticated caller."""

    account: str
    user_id: str
    name: str
    roles: tuple[str, ...]
    permissions: frozenset[str]
    api_key_id: str

    def require(self, permission: str) -> None:
        """Raise Forbidden unless the caller holds `permission`."""
        if permission not in self.permissions:
            raise Forbidden(f"This needs the {permission} permission.", details={"permission": permission})


def effective_permissions(roles: list[str], extra: list[str]) -> frozenset[str]:
    """Union of the roles' permissions and the user's own."""
    granted: set[str] = set(extra) & set(PERMISSIONS)
    for role in roles:
        granted |= ROLES.get(role, frozenset())
    return frozenset(granted)


@dataclass(frozen=True)
class IssuedKey:
    """A new API key: the item stored and the full key, shown once."""

    item: ApiKeyModel
    key: str


def new_api_key(account: str, user_id: str, now: datetime, name: str | None, expires_at: str | None) -> IssuedKey:
    """Make a key `rsk_<key id>_<secret>` (256-bit secret, base32); stores only SHA-256 of the secret."""
    kid = ulid()
    secret = base64.b32encode(os.urandom(32)).decode().rstrip("=").lower()
    item = ApiKeyModel(
        kid,
        account=account,
        user_id=user_id,
        user_key=f"{account}#{user_id}",
        name=name,
        secret_sha256=hashlib.sha256(secret.encode()).digest(),
        created_at=rfc3339(now),
        expires_at=expires_at,
    )
    return IssuedKey(item, f"rsk_{kid}_{secret}")


class Authenticator:
    """Turns an X-API-Key header into a Principal; caches answers for at most 5 seconds."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps
        self._cache: dict[bytes, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def authenticate(self, header: str | None, source_ip: str | None) -> Principal:
        """Raises Unauthenticated; audits failures against a real key id of an account."""
        if not header:
            raise Unauthenticated("Send an API key in the X-API-Key header.")
        fingerprint = hashlib.sha256(header.encode()).digest()
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(fingerprint)
        if hit is not None and hit[0] > now:
            return hit[1]
        match = _KEY_RE.fullmatch(header)
        if match is None:
            log.info("authentication failed", extra={"event": "auth_failed", "reason": "malformed"})
            raise Unauthenticated("The API key is malformed.")
        principal = self._check(match.group("kid"), match.group("secret"), source_ip)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[fingerprint] = (now + self._deps.settings.principal_cache_seconds, principal)
        return principal

    def _check(self, kid: str, secret: str, source_ip: str | None) -> Principal:
        try:
            item = ApiKeyModel.get(kid)
        except DoesNotExist:
            # Unknown key ids write nothing: anonymous callers must not be able to drive writes.
            log.info("authentication failed", extra={"event": "auth_failed", "reason": "unknown_key"})
            raise Unauthenticated("The API key is not valid.") from None
        except PynamoDBException as exc:
            raise storage_error(exc) from exc
        digest = hashlib.sha256(secret.encode()).digest()
        now = self._deps.clock()
        reason = None
        if not hmac.compare_digest(digest, bytes(item.secret_sha256)):
            reason = "wrong_secret"
        elif item.revoked_at:
            reason = "revoked"
        elif item.expires_at and parse_rfc3339(item.expires_at) <= now:
            reason = "expired"
        user = None
        if reason is None:
            try:
                user = UserModel.get(item.account, item.user_id)
            except DoesNotExist:
                reason = "user_missing"
            except PynamoDBException as exc:
                raise storage_error(exc) from exc
            if user is not None and user.deleted_at:
                reason = "user_deleted"
        if reason is not None or user is None:
            self._audit_failure(item, reason or "user_missing", source_ip)
            raise Unauthenticated("The API key is not valid.")
        return Principal(
            account=item.account,
            user_id=user.id,
            name=user.name,
            roles=tuple(str(role) for role in user.roles),
            permissions=effective_permissions([str(r) for r in user.roles], [str(p) for p in user.permissions]),
            api_key_id=item.id,
        )

    def _audit_failure(self, item: ApiKeyModel, reason: str, source_ip: str | None) -> None:
        log.info("authentication failed", extra={"event": "auth_failed", "reason": reason, "key_id": item.id})
        entry = audit_item(
            Actor(item.account, f"api_key:{item.id}", source_ip),
            self._deps.clock(),
            type="api_key",
            action="authenticate",
            resource_id=item.id,
            outcome="failure",
            error=reason,
            details={"user_id": item.user_id},
            retention_days=self._deps.settings.log_retention_days,
        )
        try:
            write_audit(entry)
        except PynamoDBException as exc:
            raise storage_error(exc) from exc

    def forget(self) -> None:
        """Drop every cached principal (tests; revocation within a process)."""
        with self._lock:
            self._cache.clear()
