"""Making a keypair generation: a key in the keypair's backend and its certificate, nothing committed yet."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from chalicelib.clock import dynamic_validity, next_refresh_at, rfc3339
from chalicelib.domain.identity import Account
from chalicelib.domain.keypairs import Category, KeyRef, NewGeneration, Storage
from chalicelib.domain.keyspec import KeySpec
from chalicelib.services.trust import issuer_url

if TYPE_CHECKING:
    from chalicelib.services.authorities import Authorities
    from chalicelib.services.container import Deps

log = logging.getLogger("rotasign.keys")


class KeyMaker:
    """Generates keys and issues their certificates; destroys what does not get committed."""

    def __init__(self, deps: Deps, authorities: Authorities) -> None:
        self.deps = deps
        self.authorities = authorities

    def make(
        self,
        account: Account,
        keypair_id: str,
        generation: int,
        spec: KeySpec,
        *,
        storage: Storage,
        alias: str,
        category: Category,
        dynamic: bool,
        with_certificate: bool,
    ) -> NewGeneration:
        """Generate a key and issue its certificate; if issuing fails the new key is destroyed.

        Raises HsmUnavailable, StorageUnavailable, Throttled (KMS), Conflict (an HSM label clash).
        """
        from chalicelib.keys.algorithms import key_id_of, public_key_pem
        from chalicelib.pki.certificates import STATIC_CERT_LIFETIME, describe, issue_keypair_certificate

        now = self.deps.clock()
        interval = self.deps.settings.schedule_seconds
        key_ref = str(KeyRef(keypair_id, generation, int(now.timestamp())))
        backend = self.deps.backend(storage.value)
        new = backend.generate(account.id, key_ref, spec)
        try:
            certificate = None
            if with_certificate:
                not_before, not_after = self._validity(now, dynamic, STATIC_CERT_LIFETIME)
                issuer = self.authorities.get(account, category.value)
                certificate = describe(issue_keypair_certificate(
                    issuer.key, issuer.certificate, new.public_key, alias=alias, account_name=account.name,
                    category=category.value, not_before=not_before, not_after=not_after,
                    ca_issuers=issuer_url(self.deps.settings, account.id, category.value),
                ))
        except BaseException:
            backend.destroy(key_ref)
            raise
        due = rfc3339(next_refresh_at(now, interval)) if dynamic else None
        return NewGeneration(keypair_id, generation, key_ref, key_id_of(new.public_key), public_key_pem(new.public_key),
                             certificate, rfc3339(now), due, new.sealed)

    def _validity(self, now: datetime, dynamic: bool, static_lifetime: timedelta) -> tuple[datetime, datetime]:
        if dynamic:
            return dynamic_validity(now, self.deps.settings.schedule_seconds)
        return now - timedelta(minutes=5), now + static_lifetime

    def discard(self, storage: Storage, gen: NewGeneration) -> None:
        """Destroy a key whose transaction did not commit (the sweep removes it if this fails too)."""
        try:
            self.deps.backend(storage.value).destroy(gen.key_ref)
        except Exception:
            # The caller's own error matters more; an HSM key left behind is an orphan the sweep removes.
            log.warning("could not destroy an uncommitted key", extra={"key_ref": gen.key_ref})
