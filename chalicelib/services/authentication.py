"""Authentication: an X-API-Key header becomes a Principal, or a 401 that reveals nothing.

- Keys are `rsk_<key id>_<secret>`; only SHA-256 of the secret is stored and compared in constant time.
- A warm process trusts an answer for at most `ROTASIGN_PRINCIPAL_CACHE_SECONDS` (≤ 5 s), and never past
  the key's `expires_at`.
- Failures that looked a key id up are answered no sooner than `FAILURE_FLOOR_SECONDS` after the lookup
  began, so the time of a 401 does not tell whether the key id exists. A known key id's failures are
  audited once per key and `FAILURE_WINDOW_SECONDS` (the entry is written in one transaction with a mark
  on the key, which a second writer's condition finds; a warm process remembers the windows it has seen)
  and every failure is counted in the `auth_failures` metric, so anonymous callers cannot drive
  unbounded writes into an account's log.
- `last_used_at` is recorded at most once per `USE_RECORD_SECONDS` per key, when the principal is
  loaded (not on every request, and never in a signature's own write).
- The caller's group and team ids are derived from the groups and teams when the principal is loaded
  and cached with it, so removing a user from a group or team takes effect within the same bound.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from chalicelib import metrics
from chalicelib.cache import TtlCache
from chalicelib.clock import parse_rfc3339, rfc3339
from chalicelib.domain.identity import ApiKey, Principal, effective_permissions
from chalicelib.domain.logs import Actor, AuditEntry
from chalicelib.errors import Conflict, RotasignError, Unauthenticated
from chalicelib.ids import ulid

if TYPE_CHECKING:
    from chalicelib.services.container import Deps

log = logging.getLogger("rotasign.access")

KEY_RE = re.compile(r"^rsk_(?P<kid>[0-9A-HJKMNP-TV-Z]{26})_(?P<secret>[a-z2-7]{52})$")
FAILURE_FLOOR_SECONDS = 0.1
FAILURE_WINDOW_SECONDS = 300
USE_RECORD_SECONDS = 300


@dataclass(frozen=True)
class IssuedKey:
    """A new API key: what is stored, and the full key, shown once."""

    key: ApiKey
    secret: str


def issue_api_key(account: str, user_id: str, now_iso: str, name: str | None, expires_at: str | None) -> IssuedKey:
    """Make `rsk_<key id>_<secret>` (256-bit secret, base32); only SHA-256 of the secret is kept."""
    kid = ulid()
    secret = base64.b32encode(os.urandom(32)).decode().rstrip("=").lower()
    key = ApiKey(kid, account, user_id, hashlib.sha256(secret.encode()).digest(), now_iso, name, expires_at)
    return IssuedKey(key, f"rsk_{kid}_{secret}")


class Authenticator:
    """Turns an X-API-Key header into a Principal; raises Unauthenticated."""

    def __init__(self, deps: Deps, *, sleep: Callable[[float], None] = time.sleep,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._deps = deps
        self._sleep = sleep
        self._monotonic = monotonic
        self._cache: TtlCache[bytes, Principal] = TtlCache(deps.settings.principal_cache_seconds, clock=monotonic)
        self._audited: TtlCache[tuple[str, int], bool] = TtlCache(FAILURE_WINDOW_SECONDS, clock=monotonic)

    def authenticate(self, header: str | None, source_ip: str | None) -> Principal:
        """The caller of a request; raises Unauthenticated (or 503 when storage is down)."""
        if not header:
            raise Unauthenticated("Send an API key in the X-API-Key header.")
        fingerprint = hashlib.sha256(header.encode()).digest()
        cached = self._cache.get(fingerprint)
        if cached is not None:
            return cached
        match = KEY_RE.fullmatch(header)
        if match is None:
            log.info("authentication failed", extra={"event": "auth_failed", "reason": "malformed"})
            raise Unauthenticated("The API key is malformed.")
        started = self._monotonic()
        try:
            principal = self._check(match.group("kid"), match.group("secret"), source_ip)
        except Unauthenticated:
            self._pad(started)
            raise
        now = self._deps.clock()
        ttl = self._cache.ttl
        if principal.key_expires_at is not None:
            ttl = min(ttl, (parse_rfc3339(principal.key_expires_at) - now).total_seconds())
        self._cache.put(fingerprint, principal, ttl)
        return principal

    def _check(self, kid: str, secret: str, source_ip: str | None) -> Principal:
        store = self._deps.store
        key = store.identity.api_key(kid)
        if key is None:
            log.info("authentication failed", extra={"event": "auth_failed", "reason": "unknown_key"})
            metrics.emit("auth_failures", 1, reason="unknown_key")
            raise Unauthenticated("The API key is not valid.")
        now = self._deps.clock()
        reason = None
        user = None
        if not hmac.compare_digest(hashlib.sha256(secret.encode()).digest(), key.secret_sha256):
            reason = "wrong_secret"
        elif key.revoked_at:
            reason = "revoked"
        elif key.expires_at and parse_rfc3339(key.expires_at) <= now:
            reason = "expired"
        else:
            user = store.identity.user(key.account, key.user_id)
            if user is None:
                reason = "user_missing"
            elif user.deleted_at:
                reason = "user_deleted"
        if reason is not None or user is None:
            self._audit_failure(key, reason or "user_missing", source_ip, now)
            raise Unauthenticated("The API key is not valid.")
        self._record_use(key, now)
        # Memberships live on the groups and teams; derived here, they are trusted as long as the
        # principal (at most the cache bound), so a removal takes effect within it.
        group_ids = store.groups.of_member(key.account, user.id)
        return Principal(
            account=key.account,
            user_id=user.id,
            name=user.name,
            roles=user.roles,
            permissions=effective_permissions(user.roles, user.permissions),
            api_key_id=key.id,
            key_expires_at=key.expires_at,
            group_ids=group_ids,
            team_ids=store.teams.of_member(key.account, user.id, group_ids),
        )

    def _audit_failure(self, key: ApiKey, reason: str, source_ip: str | None, now: datetime) -> None:
        """One audit entry per key id and window; every failure counted in the metric."""
        log.info("authentication failed", extra={"event": "auth_failed", "reason": reason, "key_id": key.id})
        metrics.emit("auth_failures", 1, reason=reason)
        window = int(now.timestamp()) // FAILURE_WINDOW_SECONDS * FAILURE_WINDOW_SECONDS
        if self._audited.get((key.id, window)):
            return
        window_start = rfc3339(datetime.fromtimestamp(window, UTC))
        entry = AuditEntry.new(
            Actor(key.account, f"api_key:{key.id}", source_ip), now, type="api_key", action="authenticate",
            resource_id=key.id, outcome="failure", error=reason, expires=self._deps.log_expiry(now),
            details={"user_id": key.user_id, "window_start": window_start, "window_seconds": FAILURE_WINDOW_SECONDS,
                     "note": "the first failure of this key in the window; later ones are counted, not listed"},
        )
        store = self._deps.store
        tx = store.transaction()
        store.identity.stage_failure_window(tx, key.id, window_start, on_fail=Conflict)
        store.audit.stage(tx, entry)
        with contextlib.suppress(Conflict):  # another process audited this window already
            tx.commit()
        self._audited.put((key.id, window), True)

    def _record_use(self, key: ApiKey, now: datetime) -> None:
        since = now - timedelta(seconds=USE_RECORD_SECONDS)
        if key.last_used_at and parse_rfc3339(key.last_used_at) > since:
            return
        try:
            self._deps.store.identity.record_use(key.id, rfc3339(now), rfc3339(since))
        except RotasignError:
            # Bookkeeping only: a failed write must not refuse a valid key.
            log.warning("could not record API key use", extra={"event": "api_key_use", "key_id": key.id})

    def _pad(self, started: float) -> None:
        remaining = FAILURE_FLOOR_SECONDS - (self._monotonic() - started)
        if remaining > 0:
            self._sleep(remaining)

    def forget(self) -> None:
        """Drop every cached principal."""
        self._cache.clear()
