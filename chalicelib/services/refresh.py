"""Refreshing a dynamic keypair: one conditional transaction, shared by the schedule, the API and signing.

One refresh: generate the new key in the keypair's backend and issue its certificate (`KeyMaker`) →
one TransactWriteItems that moves the keypair row from the generation it was read at to the new one
(conditions: same version, same generation, not deleted), records the new generation, retires the old
one at commit time + the retirement grace, overwrites disk key material (which destroys the old disk
key) and writes the audit entry → after the commit, destroy the old HSM key. A refresh that loses its
condition destroys its own new key and reads again: if someone else moved the keypair past the
generation this refresh set out to replace, the work is done. A crash between two steps leaves at worst
a key nothing references; the sweep (`services/sweep.py`) removes it.

Old keys and in-flight signatures: a warm signer may hold the old generation's key object for the
state-cache bound. A disk key object it holds keeps working until its cache entry expires (the stored
ciphertext is already gone); an HSM key is destroyed right after the commit, so such a signer gets
"key missing" from the token and signs again on the new generation. Either way every signature of a
generation is time-stamped before its `retired_at` (the signing path checks its own deadline).
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import TYPE_CHECKING

from chalicelib import metrics
from chalicelib.clock import parse_rfc3339, skew_allowance
from chalicelib.domain.identity import Principal
from chalicelib.domain.keypairs import Keypair, NewGeneration
from chalicelib.domain.logs import Actor, AuditEntry
from chalicelib.errors import Conflict, NotDynamic, NotFound
from chalicelib.services.keypairs import retirement
from chalicelib.storage.transaction import TransactionConflicted

if TYPE_CHECKING:
    from datetime import datetime

    from chalicelib.services.accounts import AccountCache
    from chalicelib.services.container import Deps
    from chalicelib.services.keypairs import KeypairService

log = logging.getLogger("rotasign.refresh")
ATTEMPTS = 8  # refresh rounds before a refresh that keeps losing gives up with 409


class _Lost(Exception):
    """Another writer moved the keypair between our read and our commit."""


def sweep_min_age(deps: Deps) -> timedelta:
    """How old an unreferenced key must be before the sweep destroys it.

    5 minutes on the 15-minute schedule, scaled with the interval like the other windows, but never
    under a minute: a key younger than that may belong to a refresh that has not committed yet.
    """
    configured = deps.settings.sweep_min_age_seconds
    if configured is not None:
        return timedelta(seconds=configured)
    return max(skew_allowance(deps.settings.schedule_seconds), timedelta(seconds=60))


@dataclass(frozen=True)
class RefreshOutcome:
    """What one refresh request ended with.

    `reason`: `refreshed` (this call committed a new generation), `already_refreshed` (someone else
    moved the keypair past the generation this call set out to replace), `deleted`, `not_dynamic`.
    """

    reason: str
    keypair: Keypair | None
    old_generation: int | None = None
    new_generation: int | None = None

    @property
    def refreshed(self) -> bool:
        """Whether this call committed the new generation."""
        return self.reason == "refreshed"


class RefreshService:
    """Refreshes dynamic keypairs; every outside capability comes in through `deps`."""

    def __init__(self, deps: Deps, keypairs: KeypairService, accounts: AccountCache) -> None:
        self.deps = deps
        self.keypairs = keypairs
        self.accounts = accounts

    def refresh(self, account: str, keypair_id: str, who: Actor, *, seen_generation: int | None = None,
                trigger: str = "manual") -> RefreshOutcome:
        """Move a dynamic keypair past `seen_generation` (default: its generation now).

        Returns without a new key when the keypair is already past it or is deleted. Raises NotDynamic,
        Conflict (still losing after every round), HsmUnavailable, StorageUnavailable, Throttled.
        """
        target = seen_generation
        for attempt in range(1, ATTEMPTS + 1):
            kp = self.deps.store.keypairs.get(account, keypair_id)
            if kp is None or kp.deleted_at:
                return RefreshOutcome("deleted", kp)
            if not kp.dynamic:
                raise NotDynamic(details={"keypair": kp.id})
            if target is None or target > kp.generation:
                target = kp.generation
            if kp.generation > target:
                return RefreshOutcome("already_refreshed", kp, target, kp.generation)
            outcome = self._try_once(kp, who, trigger)
            if outcome is not None:
                return outcome
            # Lost to another writer: back off a little (with jitter, so racers spread out) and read again.
            time.sleep(random.uniform(0.01, 0.05) * attempt)
        raise Conflict("The keypair kept changing during the refresh; try again.")

    def _try_once(self, kp: Keypair, who: Actor, trigger: str) -> RefreshOutcome | None:
        """Generate, commit, clean up; None when another writer got there first (nothing is left behind)."""
        started = time.monotonic()
        account = self.accounts.get(kp.account)
        try:
            gen = self.keypairs.keys.make(account, kp.id, kp.generation + 1, kp.spec, storage=kp.storage,
                                          alias=kp.alias, category=kp.category, dynamic=True,
                                          with_certificate=kp.generate_certificate)
        except Conflict:
            # An HSM label clash: a racer is making this generation in the same second. Let it finish.
            return None
        now = self.deps.clock()
        if now - parse_rfc3339(gen.created_at) > sweep_min_age(self.deps) / 2:
            # A key this old may already look like an orphan to the sweep; never commit it.
            self.keypairs.keys.discard(kp.storage, gen)
            return None
        try:
            moved = self._commit(kp, gen, who, now, trigger)
        except (_Lost, TransactionConflicted):
            self.keypairs.keys.discard(kp.storage, gen)
            return None
        except BaseException:
            self.keypairs.keys.discard(kp.storage, gen)
            raise
        self.keypairs.states.forget(kp)
        try:
            self.deps.backend(kp.storage.value).destroy(kp.key_ref)
        except Exception:
            # Nothing references the old key any more: the sweep destroys it later.
            log.warning("could not destroy a retired key", exc_info=True,
                        extra={"event": "refresh_cleanup_failed", "keypair_id": kp.id, "key_ref": kp.key_ref})
        log.info("keypair refreshed", extra={
            "event": "refresh", "account": kp.account, "keypair_id": kp.id, "trigger": trigger,
            "old_key_id": kp.key_id, "key_id": gen.key_id, "generation": gen.generation, "outcome": "success",
            "duration_ms": round((time.monotonic() - started) * 1000, 1),
        })
        metrics.emit("refreshes", 1, trigger=trigger, storage=kp.storage.value)
        return RefreshOutcome("refreshed", moved, kp.generation, gen.generation)

    def _commit(self, kp: Keypair, gen: NewGeneration, who: Actor, now: datetime, trigger: str) -> Keypair:
        """The refresh transaction; raises _Lost when the keypair moved since it was read."""
        store = self.deps.store
        moved = replace(kp, key_id=gen.key_id, key_ref=gen.key_ref, generation=gen.generation,
                        public_key=gen.public_key, certificate=gen.certificate, refreshed_at=gen.created_at,
                        next_refresh_at=gen.next_refresh_at)
        tx = store.transaction()
        moved = store.keypairs.stage_new_generation(tx, kp, moved, on_fail=_Lost)
        store.generations.stage_add(tx, kp.account, gen)
        store.generations.stage_retire(tx, kp.id, kp.generation, retirement(self.deps, now))
        if gen.sealed is not None:
            store.keypairs.stage_material(tx, kp.id, kp.account, gen.key_ref, gen.sealed, gen.created_at,
                                          replaces=kp.key_ref, on_fail=_Lost)
        store.audit.stage(tx, AuditEntry.new(
            who, now, type="dynamic", action="refresh", resource_id=kp.id, resource_alias=kp.alias,
            expires=self.deps.log_expiry(now),
            details={"old_key_id": kp.key_id, "new_key_id": gen.key_id, "old_generation": kp.generation,
                     "new_generation": gen.generation, "storage": kp.storage.value, "trigger": trigger},
        ))
        tx.commit()
        return moved

    # -- callers -------------------------------------------------------------------------------------

    def refresh_by_user(self, principal: Principal, ref: str, source_ip: str | None) -> Keypair:
        """POST /keypairs/{keypair}/refresh: a generation newer than the one current on arrival.

        Losing a race to another refresh counts as done. Raises NotFound, NotDynamic, Conflict.
        """
        kp = self.keypairs.find(principal, ref)
        if not kp.dynamic:
            raise NotDynamic(details={"keypair": kp.id})
        outcome = self.refresh(principal.account, kp.id, Actor(principal.account, principal.user_id, source_ip),
                               seen_generation=kp.generation, trigger="manual")
        if outcome.keypair is None or outcome.keypair.deleted_at:
            raise NotFound("No such keypair.")
        return outcome.keypair

    def is_overdue(self, kp: Keypair, now: datetime) -> bool:
        """Whether a dynamic keypair missed its refresh by more than a third of an interval.

        Its certificate lives until `next_refresh_at` plus one interval, so the sign path that steps in
        then still has two thirds of an interval of certificate left.
        """
        if not kp.dynamic or not kp.next_refresh_at:
            return False
        return parse_rfc3339(kp.next_refresh_at) + skew_allowance(self.deps.settings.schedule_seconds) <= now

    def overdue_or_used(self, kp: Keypair, who: str, trigger: str) -> bool:
        """Refresh a keypair the sign path found overdue or spent (single-use); True when it moved on."""
        outcome = self.refresh(kp.account, kp.id, Actor(kp.account, who), seen_generation=kp.generation,
                               trigger=trigger)
        return outcome.keypair is not None and outcome.keypair.generation > kp.generation

