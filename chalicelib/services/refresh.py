"""Refreshing dynamic keypairs: one conditional transaction, shared by the schedule, the API and signing.

One refresh: generate the new key in the keypair's backend and issue its certificate
(`KeypairService.make_generation`) → one TransactWriteItems that moves the keypair row from the
generation it was read at to the new one (conditions: same generation, same version, not deleted),
records the new generation, retires the old one, swaps disk key material and writes the audit entry
→ after the commit, destroy the old key. A refresh that loses its condition destroys its own new key
and reads again: if someone else moved the keypair past the generation this refresh set out to
replace, the work is done. A crash between two steps leaves at worst a key nothing references; the
sweep (`services/sweep.py`) removes it.

Signing plugs in through two hooks of `SigningService`:
- `before_sign`: a keypair whose `next_refresh_at` is more than a third of an interval past (its
  certificate would expire within two thirds of one) is refreshed before it signs; only one racer wins.
- Single-use keypairs (`refresh_after_sign`): the sign transaction also sets `retired_at` on the row of
  the generation that signed, on condition that it is unset, so a second signature on one generation
  fails its transaction and that signer retries on a fresh key (signing allows a single-use keypair
  several rounds). `after_sign` refreshes the keypair right after each signature, and `before_sign`
  refreshes a keypair whose current generation has signed already (after a crash, or while racing), at
  the cost of one extra read of the generation row per single-use signature. Signatures never write
  the keypair row, so they cannot make a refresh lose its version condition.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pynamodb.exceptions import DoesNotExist, PynamoDBException, TransactWriteError
from pynamodb.expressions.update import Action

from chalicelib import metrics
from chalicelib.clock import parse_rfc3339, rfc3339, skew_allowance
from chalicelib.errors import Conflict, NotDynamic, NotFound, RotasignError, ValidationError
from chalicelib.keys.algorithms import public_key_pem
from chalicelib.services import pagination
from chalicelib.services.access import Principal
from chalicelib.services.accounts import AccountCache
from chalicelib.services.audit import SCHEDULER, Actor, audit_item, write_audit
from chalicelib.services.authorities import material_item
from chalicelib.services.deps import Deps
from chalicelib.services.keypairs import (
    KeyGeneration,
    KeypairService,
    cert_dict,
    cert_map,
    keypair_dict,
    spec_of,
)
from chalicelib.storage.models import (
    AuditLogModel,
    GenerationModel,
    KeyMaterialModel,
    KeypairModel,
    SignatureLogModel,
)
from chalicelib.storage.paging import page
from chalicelib.storage.tx import cancellation_codes, storage_error, transaction

log = logging.getLogger("rotasign.refresh")
_RACE_CODES = {"ConditionalCheckFailed", "TransactionConflict"}


@dataclass(frozen=True)
class RefreshOptions:
    """Refresh settings read from the environment when the services are built."""

    max_receives: int = 5  # ROTASIGN_REFRESH_MAX_RECEIVES: the queue's maxReceiveCount
    sweep_min_age_seconds: float | None = None  # ROTASIGN_SWEEP_MIN_AGE_SECONDS; None: scaled from the interval
    attempts: int = 8  # refresh rounds before a refresh that keeps losing gives up with 409

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RefreshOptions:
        """Read ROTASIGN_REFRESH_MAX_RECEIVES and ROTASIGN_SWEEP_MIN_AGE_SECONDS; raises ValueError."""
        env = os.environ if env is None else env
        min_age = env.get("ROTASIGN_SWEEP_MIN_AGE_SECONDS")
        return cls(
            max_receives=max(1, int(env.get("ROTASIGN_REFRESH_MAX_RECEIVES", "5"))),
            sweep_min_age_seconds=float(min_age) if min_age else None,
        )

    def sweep_min_age(self, interval_seconds: int) -> timedelta:
        """How old an unreferenced key must be before the sweep destroys it.

        5 minutes on the 15-minute schedule, scaled with the interval like the other windows, but never
        under a minute: a key younger than that may belong to a refresh that has not committed yet.
        """
        if self.sweep_min_age_seconds is not None:
            return timedelta(seconds=self.sweep_min_age_seconds)
        return max(skew_allowance(interval_seconds), timedelta(seconds=60))


def overdue_grace(interval_seconds: int) -> timedelta:
    """How late a refresh may be before a sign request does it itself (5 min of the 15-min schedule).

    The certificate lives until `next_refresh_at` plus one interval, so an overdue keypair still has
    two thirds of an interval of certificate left when the sign path steps in.
    """
    return skew_allowance(interval_seconds)


@dataclass(frozen=True)
class RefreshOutcome:
    """What one refresh request ended with.

    `reason`: `refreshed` (this call committed a new generation), `already_refreshed` (someone else
    moved the keypair past the generation this call set out to replace), `deleted`.
    """

    reason: str
    keypair: KeypairModel | None
    old_generation: int | None = None
    new_generation: int | None = None

    @property
    def refreshed(self) -> bool:
        """Whether this call committed the new generation."""
        return self.reason == "refreshed"


@dataclass(frozen=True)
class RefreshMessage:
    """The body of a refresh queue message."""

    account: str
    keypair_id: str
    expected_generation: int

    @classmethod
    def parse(cls, body: str) -> RefreshMessage:
        """Parse a queue message body; raises ValidationError."""
        try:
            data = json.loads(body)
            message = cls(str(data["account"]), str(data["keypair_id"]), int(data["expected_generation"]))
        except (ValueError, TypeError, KeyError) as exc:
            raise ValidationError("Malformed refresh message.") from exc
        return message

    def body(self) -> str:
        """The JSON body sent to the queue."""
        return json.dumps({"account": self.account, "keypair_id": self.keypair_id,
                           "expected_generation": self.expected_generation}, separators=(",", ":"))


class RefreshFailed(Exception):
    """Some messages of an SQS batch failed: raised so that Lambda delivers them again."""


@dataclass(frozen=True)
class BatchResult:
    """What one SQS batch did."""

    refreshed: int
    skipped: int
    failed: int


class RefreshService:
    """Refreshes dynamic keypairs; every outside capability comes in through `deps`."""

    def __init__(
        self,
        deps: Deps,
        keypairs: KeypairService,
        accounts: AccountCache,
        options: RefreshOptions | None = None,
    ) -> None:
        self.deps = deps
        self.keypairs = keypairs
        self.accounts = accounts
        self.options = options or RefreshOptions.from_env()

    # -- one refresh -----------------------------------------------------------------------------

    def refresh(
        self,
        account: str,
        keypair_id: str,
        who: Actor,
        *,
        seen_generation: int | None = None,
        trigger: str = "manual",
    ) -> RefreshOutcome:
        """Move a dynamic keypair past `seen_generation` (default: its generation now).

        Returns without a new key when the keypair is already past it or is deleted. Raises NotDynamic,
        Conflict (still losing after every round), HsmUnavailable, StorageUnavailable, Throttled.
        """
        target = seen_generation
        for attempt in range(1, self.options.attempts + 1):
            kp = self._load(account, keypair_id)
            if kp is None or kp.deleted_at:
                return RefreshOutcome("deleted", kp)
            if kp.type != "dynamic":
                raise NotDynamic(details={"keypair": kp.id})
            current = int(kp.generation)
            if target is None or target > current:
                target = current
            if current > target:
                return RefreshOutcome("already_refreshed", kp, target, current)
            outcome = self._try_once(kp, who, trigger)
            if outcome is not None:
                return outcome
            # Lost to another writer: back off a little (with jitter, so racers spread out) and read again.
            time.sleep(random.uniform(0.01, 0.05) * attempt)
        raise Conflict("The keypair kept changing during the refresh; try again.")

    def _load(self, account: str, keypair_id: str) -> KeypairModel | None:
        try:
            return KeypairModel.get(account, keypair_id, consistent_read=True)
        except DoesNotExist:
            return None
        except PynamoDBException as exc:
            raise storage_error(exc) from exc

    def _try_once(self, kp: KeypairModel, who: Actor, trigger: str) -> RefreshOutcome | None:
        """Generate, commit, clean up; None when another writer got there first (nothing is left behind)."""
        started = time.monotonic()
        seen = int(kp.generation)
        account = self.accounts.get(kp.account)
        try:
            gen = self.keypairs.make_generation(
                account, kp.id, seen + 1, spec_of(kp), storage=kp.storage, alias=kp.alias,
                category=kp.category, kind="dynamic", with_certificate=bool(kp.generate_certificate),
            )
        except Conflict:
            # An HSM label clash: a racer is making this generation in the same second. Let it finish.
            return None
        now = self.deps.clock()
        if now - gen.created > self.options.sweep_min_age(self.deps.settings.schedule_seconds) / 2:
            # A key this old may already look like an orphan to the sweep; never commit it.
            self.keypairs.discard(kp.storage, gen)
            return None
        old_ref, old_key_id = kp.key_ref, kp.key_id
        try:
            self._commit(kp, gen, who, now, trigger)
        except TransactWriteError as exc:
            self.keypairs.discard(kp.storage, gen)
            if set(cancellation_codes(exc)) & _RACE_CODES:
                return None
            raise storage_error(exc) from exc
        except BaseException:
            self.keypairs.discard(kp.storage, gen)
            raise
        self._apply(kp, gen, now)
        try:
            self.deps.backend(kp.storage).destroy(old_ref)
        except Exception:
            # Nothing references the old key any more: the sweep destroys it later.
            log.warning("could not destroy a retired key", exc_info=True,
                        extra={"event": "refresh_cleanup_failed", "keypair_id": kp.id, "key_ref": old_ref})
        log.info("keypair refreshed", extra={
            "event": "refresh", "account": kp.account, "keypair_id": kp.id, "trigger": trigger,
            "old_key_id": old_key_id, "key_id": gen.key_id, "generation": seen + 1, "outcome": "success",
            "duration_ms": round((time.monotonic() - started) * 1000, 1),
        })
        metrics.emit("refreshes", 1, trigger=trigger, storage=kp.storage)
        return RefreshOutcome("refreshed", kp, seen, seen + 1)

    def _commit(self, kp: KeypairModel, gen: KeyGeneration, who: Actor, now: datetime, trigger: str) -> None:
        """The refresh transaction; raises TransactWriteError."""
        seen = int(kp.generation)
        now_iso = rfc3339(now)
        certificate = cert_map(gen.certificate)
        actions: list[Action] = [
            KeypairModel.key_id.set(gen.key_id),
            KeypairModel.key_ref.set(gen.new.key_ref),
            KeypairModel.generation.set(seen + 1),
            KeypairModel.public_key.set(public_key_pem(gen.new.public_key)),
            KeypairModel.certificate.set(certificate) if certificate else KeypairModel.certificate.remove(),
            KeypairModel.refreshed_at.set(rfc3339(gen.created)),
        ]
        if gen.next_refresh_at is not None:
            actions.append(KeypairModel.next_refresh_at.set(rfc3339(gen.next_refresh_at)))
        with transaction() as tx:
            # The version condition (added by PynamoDB) also catches a PATCH or delete since the read.
            tx.update(kp, actions=actions, condition=(KeypairModel.generation == seen)
                      & KeypairModel.deleted_at.does_not_exist() & (KeypairModel.type == "dynamic"))
            tx.save(self.keypairs.generation_item(kp.account, kp.id, seen + 1, gen),
                    condition=GenerationModel.generation.does_not_exist())
            # A single-use generation was retired by its one signature already: keep that time.
            tx.update(GenerationModel(kp.id, seen),
                      actions=[GenerationModel.retired_at.set(GenerationModel.retired_at | now_iso)],
                      condition=GenerationModel.generation.exists())
            if gen.new.sealed is not None:
                tx.save(material_item(kp.account, gen.new.key_ref, gen.new.sealed, now_iso),
                        condition=KeyMaterialModel.id.does_not_exist())
            if kp.storage == "disk":
                tx.delete(KeyMaterialModel(kp.key_ref))
            tx.save(
                audit_item(who, now, type="dynamic", action="refresh", resource_id=kp.id, resource_alias=kp.alias,
                           retention_days=self.deps.settings.log_retention_days,
                           details={"old_key_id": kp.key_id, "new_key_id": gen.key_id, "old_generation": seen,
                                    "new_generation": seen + 1, "storage": kp.storage, "trigger": trigger}),
                condition=AuditLogModel.sk.does_not_exist(),
            )

    @staticmethod
    def _apply(kp: KeypairModel, gen: KeyGeneration, now: datetime) -> None:
        """Bring the in-memory row to what the transaction wrote (its version was bumped by PynamoDB)."""
        kp.key_id = gen.key_id
        kp.key_ref = gen.new.key_ref
        kp.generation = int(kp.generation) + 1
        kp.public_key = public_key_pem(gen.new.public_key)
        kp.certificate = cert_map(gen.certificate)
        kp.refreshed_at = rfc3339(gen.created)
        if gen.next_refresh_at is not None:
            kp.next_refresh_at = rfc3339(gen.next_refresh_at)

    # -- callers ---------------------------------------------------------------------------------

    def refresh_by_user(self, principal: Principal, ref: str, source_ip: str | None) -> dict[str, Any]:
        """POST /keypairs/{keypair}/refresh: a generation newer than the one current on arrival.

        Losing a race to another refresh counts as done. Raises NotFound, NotDynamic, Conflict.
        """
        kp = self.keypairs.resolve(principal.account, ref)
        if kp.type != "dynamic":
            raise NotDynamic(details={"keypair": kp.id})
        outcome = self.refresh(principal.account, kp.id, Actor(principal.account, principal.user_id, source_ip),
                               seen_generation=int(kp.generation), trigger="manual")
        if outcome.keypair is None or outcome.keypair.deleted_at:
            raise NotFound("No such keypair.")
        return keypair_dict(outcome.keypair)

    def handle_message(self, message: RefreshMessage) -> RefreshOutcome:
        """One scheduled refresh: a message behind the stored generation is done with nothing to do."""
        try:
            return self.refresh(message.account, message.keypair_id, Actor(message.account, SCHEDULER),
                                seen_generation=message.expected_generation, trigger="schedule")
        except NotDynamic:
            return RefreshOutcome("not_dynamic", None)

    def handle_records(self, records: Iterable[Mapping[str, Any]]) -> BatchResult:
        """The SQS handler: refresh each record; raises RefreshFailed if any failed, so Lambda retries.

        Successful records of a failed batch come back too; their generation check makes them no-ops.
        A record failing on its last receive (ApproximateReceiveCount ≥ ROTASIGN_REFRESH_MAX_RECEIVES)
        is audited as a failed refresh before it moves to the dead-letter queue.
        """
        refreshed = skipped = failed = 0
        for record in records:
            receives = int((record.get("attributes") or {}).get("ApproximateReceiveCount", "1"))
            try:
                message = RefreshMessage.parse(str(record.get("body", "")))
            except ValidationError:
                # Retrying cannot fix a malformed body, and without an account there is no log to write to.
                log.error("malformed refresh message dropped",
                          extra={"event": "refresh", "outcome": "failure", "message_id": record.get("messageId")})
                skipped += 1
                continue
            try:
                outcome = self.handle_message(message)
            except Exception as exc:
                failed += 1
                code = exc.code if isinstance(exc, RotasignError) else type(exc).__name__
                log.error("refresh failed", exc_info=True, extra={
                    "event": "refresh", "outcome": "failure", "account": message.account,
                    "keypair_id": message.keypair_id, "error": code, "receive_count": receives})
                metrics.emit("refresh_failures", 1, error=code)
                if receives >= self.options.max_receives:
                    self.audit_failure(message, code, receives)
                continue
            if outcome.refreshed:
                refreshed += 1
            else:
                skipped += 1
        if failed:
            raise RefreshFailed(f"{failed} refresh(es) of the batch failed; the queue delivers them again.")
        return BatchResult(refreshed, skipped, failed)

    def audit_failure(self, message: RefreshMessage, error: str, receives: int) -> None:
        """Audit a scheduled refresh that failed for the last time (its message goes to the dead-letter queue)."""
        kp = None
        with contextlib.suppress(RotasignError):  # the entry is still worth writing without the alias
            kp = self._load(message.account, message.keypair_id)
        entry = audit_item(
            Actor(message.account, SCHEDULER), self.deps.clock(), type="dynamic", action="refresh",
            resource_id=message.keypair_id, resource_alias=kp.alias if kp is not None else None,
            outcome="failure", error=error, retention_days=self.deps.settings.log_retention_days,
            details={"expected_generation": message.expected_generation, "receive_count": receives,
                     "trigger": "schedule", "dead_letter": True},
        )
        try:
            write_audit(entry)
        except PynamoDBException:
            log.error("could not audit a failed refresh", exc_info=True,
                      extra={"event": "refresh_audit_failed", "keypair_id": message.keypair_id})

    # -- the sign path ---------------------------------------------------------------------------

    def is_overdue(self, kp: KeypairModel, now: datetime) -> bool:
        """Whether a dynamic keypair missed its refresh by more than the grace (its certificate may expire)."""
        if kp.type != "dynamic" or not kp.next_refresh_at:
            return False
        grace = overdue_grace(self.deps.settings.schedule_seconds)
        return parse_rfc3339(kp.next_refresh_at) + grace <= now

    def before_sign(self, kp: KeypairModel) -> bool:
        """Signing's pre-sign hook: refresh an overdue keypair, or a single-use one whose key has signed.

        Returns True when the keypair moved on (the signer reads it again).
        """
        if kp.type != "dynamic" or kp.deleted_at:
            return False
        seen = int(kp.generation)
        if self.is_overdue(kp, self.deps.clock()):
            trigger = "overdue"
        elif kp.refresh_after_sign and self._generation_used(kp):
            trigger = "after_sign"
        else:
            return False
        outcome = self.refresh(kp.account, kp.id, Actor(kp.account, SCHEDULER), seen_generation=seen, trigger=trigger)
        return outcome.keypair is not None and int(outcome.keypair.generation) > seen

    def after_sign(self, kp: KeypairModel, entry: SignatureLogModel) -> None:
        """Signing's post-sign hook: a single-use keypair gets its next key now, for the next request."""
        if kp.refresh_after_sign and kp.type == "dynamic":
            self.refresh(kp.account, kp.id, Actor(kp.account, entry.signer), seen_generation=int(kp.generation),
                         trigger="after_sign")

    def _generation_used(self, kp: KeypairModel) -> bool:
        """A single-use generation is retired by the transaction of its one signature."""
        try:
            row = GenerationModel.get(kp.id, int(kp.generation), consistent_read=True,
                                      attributes_to_get=["keypair_id", "generation", "retired_at"])
        except DoesNotExist:
            return True
        except PynamoDBException as exc:
            raise storage_error(exc) from exc
        return bool(row.retired_at)

    # -- history ---------------------------------------------------------------------------------

    def generations(self, principal: Principal, ref: str, params: dict[str, str]) -> dict[str, Any]:
        """GET /keypairs/{keypair}/generations: newest first, sealed `next` tokens."""
        unknown = sorted(set(params) - {"limit", "next"})
        if unknown:
            raise ValidationError(f"Unknown parameter {unknown[0]!r}.", details={"field": unknown[0]})
        limit = pagination.parse_limit(params.get("limit"))
        kp = self.keypairs.resolve(principal.account, ref)
        key = self.deps.settings.token_key
        filters = {"keypair": kp.id}
        start = None
        if params.get("next"):
            start = pagination.open_token(key, params["next"], principal.account, "generations", filters)

        def run(start_key: dict[str, Any] | None) -> Any:
            return GenerationModel.query(kp.id, scan_index_forward=False, last_evaluated_key=start_key,
                                         page_size=min(limit + 1, 500))

        try:
            items, position = page(run, limit, start, ("keypair_id", "generation"))
        except PynamoDBException as exc:
            raise storage_error(exc) from exc
        token = pagination.seal(key, principal.account, "generations", filters, position) if position else None
        return {"items": [generation_dict(g) for g in items], "next": token}


def generation_dict(item: GenerationModel) -> dict[str, Any]:
    """The API.md form of one generation."""
    return {
        "generation": int(item.generation),
        "key_id": item.key_id,
        "public_key": item.public_key,
        "certificate": cert_dict(item.certificate),
        "created_at": item.created_at,
        "retired_at": item.retired_at,
    }
