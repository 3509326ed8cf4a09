"""The orphan sweep: destroys HSM keys that no keypair references, left behind by a crash.

A refresh or a create that dies between generating a key and committing its transaction, or between
committing and destroying the retired key, leaves an HSM object nothing points at. Disk keys cannot be
orphaned: their sealed material is written and deleted in the same transaction that references it, and
an uncommitted disk key only ever lived in the memory of the process that died.

Keys are found by their token labels `<keypair id>/<generation>/<unix time>`; account CA and TSA labels
(`acct_…/ca/…`, `acct_…/tsa`) do not parse as keypair keys and are never touched. A key is destroyed only
when it is older than the minimum age (a younger one may belong to a refresh that is about to commit;
refreshes never commit a key half that old) and its keypair, read consistently, does not reference it
or is deleted.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from chalicelib.clock import rfc3339
from chalicelib.domain.keypairs import Keypair, KeyRef
from chalicelib.domain.logs import SCHEDULER, Actor, AuditEntry
from chalicelib.errors import RotasignError
from chalicelib.services.refresh import sweep_min_age

if TYPE_CHECKING:
    from chalicelib.services.container import Deps

log = logging.getLogger("rotasign.sweep")


@dataclass
class SweepResult:
    """What one sweep looked at and removed."""

    examined: int = 0
    removed: list[str] = field(default_factory=list)
    skipped: str | None = None  # why the sweep did not run (no HSM configured, HSM unavailable)


@dataclass(frozen=True)
class _Owner:
    account: str | None
    keypair: Keypair | None


def hsm_configured(deps: Deps) -> bool:
    """Whether this deployment has an HSM at all (a PIN or a PIN secret is configured)."""
    return bool(deps.settings.hsm_pin or deps.settings.hsm_pin_secret)


def sweep_orphans(deps: Deps, now: datetime | None = None) -> SweepResult:
    """Destroy unreferenced HSM keys older than the minimum age, one audit entry per key removed.

    Raises StorageUnavailable / Throttled if DynamoDB fails (nothing is destroyed without a consistent read).
    """
    result = SweepResult()
    if not hsm_configured(deps):
        result.skipped = "no_hsm"
        return result
    now = now or deps.clock()
    cutoff = int((now - sweep_min_age(deps)).timestamp())
    try:
        hsm = deps.hsm()
        labels = hsm.list_refs()
    except RotasignError as exc:
        log.warning("sweep skipped: HSM unavailable", extra={"event": "sweep", "outcome": "skipped", "error": exc.code})
        result.skipped = exc.code
        return result
    candidates: dict[str, list[tuple[str, int, int]]] = defaultdict(list)
    for label in labels:
        parsed = KeyRef.parse(label)
        if parsed is None:
            continue
        result.examined += 1
        if parsed.created <= cutoff:
            candidates[parsed.keypair_id].append((label, parsed.generation, parsed.created))
    for kp_id, refs in candidates.items():
        owner = _owner(deps, kp_id)
        for label, generation, created in refs:
            kp = owner.keypair
            if kp is not None and not kp.deleted_at and kp.key_ref == label:
                continue
            reason = "no_keypair" if kp is None else ("keypair_deleted" if kp.deleted_at else "unreferenced")
            hsm.destroy(label)
            result.removed.append(label)
            log.info("orphan key destroyed", extra={"event": "sweep", "keypair_id": kp_id, "key_ref": label,
                                                    "reason": reason, "account": owner.account})
            if owner.account is not None:
                _audit(deps, now, owner, kp_id, label, generation, created, reason)
    return result


def _owner(deps: Deps, kp_id: str) -> _Owner:
    """The account (from any generation row) and keypair row of a keypair id; labels carry no account."""
    first = deps.store.generations.first(kp_id)
    if first is None:
        # No generation was ever committed: the key is from a create that never finished.
        return _Owner(None, None)
    return _Owner(first.account, deps.store.keypairs.get(first.account, kp_id))


def _audit(
    deps: Deps, now: datetime, owner: _Owner, kp_id: str, label: str, generation: int, created: int, reason: str
) -> None:
    assert owner.account is not None
    kp = owner.keypair
    entry = AuditEntry.new(
        Actor(owner.account, SCHEDULER), now, type=kp.type.value if kp is not None else "dynamic", action="sweep",
        resource_id=kp_id, resource_alias=kp.alias if kp is not None else None, expires=deps.log_expiry(now),
        details={"key_ref": label, "generation": generation, "reason": reason, "storage": "hsm",
                 "key_created_at": rfc3339(datetime.fromtimestamp(created, UTC))},
    )
    try:
        deps.store.audit.append(entry)
    except RotasignError:
        log.error("could not audit a swept key", exc_info=True, extra={"event": "sweep_audit_failed", "key_ref": label})
