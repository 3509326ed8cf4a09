"""Signing: check the caller and the keypair, sign, time-stamp, log every attempt — one write per signature.

A warm signature (README "How it is built", "The signing path"):
  the keypair's state and key object from this process's cache (at most 5 s old) → the signature →
  its RFC 3161 token → one conditional PutItem of its signature-log entry → the answer.
No item is shared between concurrent signers of one keypair, so a busy keypair scales with Lambda, not
with transaction conflicts on its row. Three cases need a transaction instead of the PutItem: a single-use
keypair (the entry + a conditional update of *that generation's* row, so each generation signs once),
a batch (every entry in one TransactWriteItems), and an offline keypair in a release window (the entries
+ a conditional `ADD` to the window's `signatures_used`: the budget is counted exactly under concurrency,
in the same write as the entries; a windowed batch holds at most 99 items so that the window's item fits
DynamoDB's 100). Either way: no log entry, no signature.

Access (domain/access.py): another team's keypair is NotFound, exactly like a keypair that does not
exist (its refusal entry names no keypair); a restricted keypair signs for its allowed users and the
members of its allowed groups (the caller's groups come with the principal, at most 5 s old).

Retirement is exact in time: a refresh committed at T retires the old generation at T + grace
(cache bound + longest request). A state read at `read_at` signs only while the time-stamp time is
before `read_at` + grace (less a second for clock skew between processes), which is no later than the
generation's `retired_at`; a request that gets there later signs again on a freshly read state.

A refused request writes its failed signature-log entry and its `sign_denied` audit entry in one
transaction, then answers with the refusal.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from chalicelib import metrics
from chalicelib.domain.access import can_see, may_use
from chalicelib.domain.identity import Principal
from chalicelib.domain.keypairs import Keypair, Status
from chalicelib.domain.logs import SCHEDULER, Actor, AuditEntry, SignatureEntry
from chalicelib.domain.releases import ReleaseWindow
from chalicelib.errors import (
    Conflict,
    KeyMissing,
    KeypairOffline,
    NotAllowed,
    NotFound,
    RotasignError,
    StorageUnavailable,
    Throttled,
    ValidationError,
)
from chalicelib.services.sign_requests import SignCall, Signed, failure_entry, success_entry
from chalicelib.services.sign_state import KeypairGone, SignState, SignStates
from chalicelib.storage.signature_log import MAX_TRANSACTION_ITEMS
from chalicelib.storage.transaction import TransactionConflicted
from chalicelib.structured_logging import annotate

if TYPE_CHECKING:
    from chalicelib.keys.algorithms import SigAlg
    from chalicelib.services.accounts import AccountCache
    from chalicelib.services.container import Deps
    from chalicelib.services.refresh import RefreshService
    from chalicelib.services.release_windows import ReleaseGate
    from chalicelib.services.timestamping import TimestampService

log = logging.getLogger("rotasign.signing")

ROUNDS = 3  # a plain keypair: the cached state, then at most two fresh reads after races
SINGLE_USE_ROUNDS = 16  # a single-use keypair makes one winner per generation: N racing signers need N rounds
SKEW_MARGIN = timedelta(seconds=1)  # clocks of two Lambda processes may disagree a little
NOT_LOGGED = "The signature log could not be written; no signature was made available."
MAX_WINDOWED_BATCH = MAX_TRANSACTION_ITEMS - 1  # the window's counter is the transaction's last item
WINDOW_CONFLICT_TRIES = 8  # DynamoDB cancels transactions that meet on one item: a busy window retries


class _Raced(Exception):
    """The state moved on under the request (a refresh, a key gone from the HSM, a late request)."""


class _Spent(_Raced):
    """A single-use generation signed already (another request won it)."""


class _WindowSpent(Exception):
    """The window's item refused the count: used up, changed, closed or gone since it was read."""


@dataclass
class _Attempt:
    """What a request has learnt so far: everything its refusal entry records."""

    keypair: Keypair | None = None
    sig_alg: str | None = None


class SigningService:
    """POST /keypairs/{keypair}/sign; every outside capability comes in through the constructor."""

    def __init__(self, deps: Deps, accounts: AccountCache, states: SignStates, refresh: RefreshService,
                 timestamps: TimestampService, gate: ReleaseGate) -> None:
        self.deps = deps
        self.accounts = accounts
        self.states = states
        self.refresh = refresh
        self.timestamps = timestamps
        self.gate = gate

    def sign(self, principal: Principal, call: SignCall) -> list[Signed]:
        """Sign every item of the call; raises the refusal (after logging it) or a 503/429."""
        attempt = _Attempt()
        try:
            return self._sign(principal, call, attempt)
        except RotasignError as exc:
            if not (call.batch and exc.status == 400):  # a bad batch item writes nothing (its index is named)
                self._refuse(principal, call, attempt, exc.code)
            raise
        except Exception:
            self._refuse(principal, call, attempt, "internal_error")
            raise

    def _sign(self, principal: Principal, call: SignCall, attempt: _Attempt) -> list[Signed]:
        try:
            state = self.states.get(principal.account, call.ref)
        except KeypairGone as gone:
            if can_see(principal, gone.tombstone):
                attempt.keypair = gone.tombstone
            raise
        if not can_see(principal, state.keypair):
            raise NotFound("No such keypair.")  # another team's: not even its refusal entry names it
        attempt.keypair = state.keypair
        principal.require("sign")
        if call.refused is not None:
            raise call.refused
        self._check_access(principal, state.keypair)
        kp = state.keypair
        if call.batch and kp.single_use:
            raise ValidationError("A single-use keypair signs one item per request.", details={"field": "items"})
        if call.batch and kp.status is Status.OFFLINE and len(call.items) > MAX_WINDOWED_BATCH:
            raise ValidationError(f"An offline keypair signs at most {MAX_WINDOWED_BATCH} items per request.",
                                  details={"field": "items"})
        algs = self._sig_algs(kp, call, attempt)
        rounds = SINGLE_USE_ROUNDS if kp.single_use else ROUNDS
        for round_ in range(1, rounds + 1):
            if round_ > 1 or kp.single_use:
                state = self.states.get(principal.account, call.ref, fresh=True)
                attempt.keypair = kp = state.keypair
                self._check_access(principal, kp)
                algs = self._sig_algs(kp, call, attempt)
            if self.refresh.is_overdue(kp, self.deps.clock()):
                # The schedule fell behind: refresh before the certificate gets close to expiring.
                self.refresh.overdue_or_used(kp, SCHEDULER, "overdue")
                continue
            try:
                return self._sign_once(principal, call, state, algs)
            except _Spent:
                # Its winner refreshes it right after signing; step in if that has not happened yet.
                self.refresh.overdue_or_used(kp, principal.user_id, "after_sign")
            except _Raced:
                log.info("sign raced a keypair change", extra={"event": "sign_raced", "keypair_id": kp.id})
        raise Conflict("The keypair changed while signing; try again.")

    def _sign_once(self, principal: Principal, call: SignCall, state: SignState,
                   algs: list[SigAlg]) -> list[Signed]:
        from chalicelib.keys.algorithms import sign

        kp = state.keypair
        windows = self._open_windows(principal, kp, len(call.items)) if kp.status is Status.OFFLINE else None
        try:
            key = state.private_key()
            signatures = [sign(key, alg, item.data_for(kp.spec.algorithm))
                          for item, alg in zip(call.items, algs, strict=True)]
        except KeyMissing as exc:
            # The HSM key is gone: a refresh or delete destroyed it after this state was read.
            raise _Raced() from exc
        at = self.deps.clock()
        if at >= state.read_at + timedelta(seconds=self.deps.settings.retirement_grace_seconds) - SKEW_MARGIN:
            raise _Raced()  # the generation may be retired by now: sign again on a fresh read
        account = self.accounts.get(principal.account)
        chain = (account.ca_pem(kp.category.value),) if kp.certificate is not None else ()
        expires = self.deps.log_expiry(at)
        results = []
        for item, alg, signature in zip(call.items, algs, signatures, strict=True):
            token = self.timestamps.stamp_signature(account, signature, at)
            entry = success_entry(principal, kp, item, alg.name, signature, token, at, expires, call.client_ip)
            results.append(Signed(signature, alg.name, kp, chain, token, entry))
        self._write([r.entry for r in results], kp, principal, windows, at)
        annotate(action="sign", keypair_id=kp.id, generation=kp.generation, signatures=len(results),
                 outcome="success")
        metrics.signatures.add(len(results), outcome="success", storage=kp.storage.value)
        if kp.single_use:
            self._next_key(kp, principal)
        return results

    def _write(self, entries: list[SignatureEntry], kp: Keypair, principal: Principal,
               windows: list[ReleaseWindow] | None, at: datetime) -> None:
        """The one write: a PutItem, or a transaction for batches, single-use keys and release windows;
        raises _Raced, KeypairOffline (no window took the count) or 503."""
        if windows is not None:
            self._write_windowed(entries, kp, principal, windows, at)
            return
        store = self.deps.store
        try:
            if len(entries) == 1 and not kp.single_use:
                store.signatures.append(entries[0])
                return
            tx = store.transaction()
            for entry in entries:
                store.signatures.stage(tx, entry)
            if kp.single_use:
                store.generations.stage_signed(tx, kp.id, kp.generation, entries[0].id, on_fail=_Spent)
            tx.commit()
        except TransactionConflicted as exc:
            raise _Raced() from exc  # another signer's transaction held the generation row for a moment
        except Conflict as exc:
            # A new entry's key cannot be taken; whatever the storage said, the entry is not written.
            raise StorageUnavailable(NOT_LOGGED) from exc

    def _open_windows(self, principal: Principal, kp: Keypair, count: int) -> list[ReleaseWindow]:
        """The windows that may take this request's count now; KeypairOffline when there is none."""
        now = self.deps.clock()
        windows = self.gate.candidates(principal, kp, now, count) or self.gate.candidates(principal, kp, now, count,
                                                                                           fresh=True)
        if not windows:
            raise KeypairOffline(details={"keypair": kp.id})
        return windows

    def _write_windowed(self, entries: list[SignatureEntry], kp: Keypair, principal: Principal,
                        windows: list[ReleaseWindow], at: datetime) -> None:
        """The entries and the window's count in one transaction: the window that takes it, or none.

        A window that refuses (used up, changed or closed since read) gives way to the next; when all
        have refused, the account's windows are read again once before the request is refused.
        """
        tried: set[str] = set()
        for fresh in (False, True):
            if fresh:
                self.gate.forget(principal.account)
                windows = self.gate.candidates(principal, kp, at, len(entries), fresh=True)
            for window in windows:
                if window.id in tried:
                    continue
                tried.add(window.id)
                if self._commit_in_window(entries, kp, principal, window, at):
                    return
        raise KeypairOffline(details={"keypair": kp.id})

    def _commit_in_window(self, entries: list[SignatureEntry], kp: Keypair, principal: Principal,
                          window: ReleaseWindow, at: datetime) -> bool:
        """One window's try: True when committed, False when the window refused the count."""
        store = self.deps.store
        for attempt in range(WINDOW_CONFLICT_TRIES):
            tx = store.transaction()
            for entry in entries:
                store.signatures.stage(tx, entry)
            if kp.single_use:
                store.generations.stage_signed(tx, kp.id, kp.generation, entries[0].id, on_fail=_Spent)
            store.windows.stage_use(tx, window, len(entries), at, kp.id, principal.user_id, on_fail=_WindowSpent)
            try:
                tx.commit()
                return True
            except _WindowSpent:
                return False
            except TransactionConflicted:
                # Concurrent signers in one window meet on its item; DynamoDB cancels all but one.
                time.sleep(random.uniform(0.005, 0.02) * (attempt + 1))
            except Conflict as exc:
                raise StorageUnavailable(NOT_LOGGED) from exc
        raise _Raced()

    def _next_key(self, kp: Keypair, principal: Principal) -> None:
        """A single-use keypair gets its next key now, for the next request (a failure is only logged)."""
        try:
            self.refresh.overdue_or_used(kp, principal.user_id, "after_sign")
        except RotasignError:
            # The signature exists and is logged; the next signer refreshes the spent key itself.
            log.warning("refresh after a single-use signature failed", exc_info=True,
                        extra={"event": "after_sign_failed", "keypair_id": kp.id})

    def _check_access(self, principal: Principal, kp: Keypair) -> None:
        """The access rule (an offline keypair's windows are checked when the request's count is known)."""
        if not may_use(principal, kp):
            raise NotAllowed(details={"keypair": kp.id})

    @staticmethod
    def _sig_algs(kp: Keypair, call: SignCall, attempt: _Attempt) -> list[SigAlg]:
        from chalicelib.keys.algorithms import resolve_sig_alg

        algs = []
        for index, item in enumerate(call.items):
            try:
                algs.append(resolve_sig_alg(kp.spec, item.hash_algorithm, item.sig_alg))
            except RotasignError as exc:
                if call.batch:
                    exc.details = {**exc.details, "index": index}
                raise
        attempt.sig_alg = algs[0].name if len(algs) == 1 else None
        return algs

    def _refuse(self, principal: Principal, call: SignCall, attempt: _Attempt, error: str) -> None:
        """Write the failed signature-log entry and its `sign_denied` audit entry in one transaction."""
        now = self.deps.clock()
        expires = self.deps.log_expiry(now)
        kp = attempt.keypair
        entry = failure_entry(principal, call, kp, attempt.sig_alg, error, now, expires)
        details: dict[str, object] = {"signature_log_id": entry.id, "keypair": call.ref[:100]}
        if entry.sig_alg is not None:
            details["sig_alg"] = entry.sig_alg
        if call.batch:
            details["items"] = len(call.items)
        denied = AuditEntry.new(
            Actor(principal.account, principal.user_id, call.client_ip), now,
            # An unknown keypair has no type; the documented keypair vocabulary is static | dynamic.
            type=kp.type.value if kp is not None else "static", action="sign_denied",
            resource_id=kp.id if kp is not None else None, resource_alias=entry.keypair_alias,
            outcome="failure", error=error, details=details, expires=expires,
        )
        store = self.deps.store
        tx = store.transaction()
        store.signatures.stage(tx, entry)
        store.audit.stage(tx, denied)
        try:
            tx.commit()
        except RotasignError as exc:
            log.error("could not log a refused signature", extra={"event": "sign_log_failed", "error": error})
            if isinstance(exc, Throttled):
                raise
            raise StorageUnavailable("The signature log could not be written.") from exc
        annotate(action="sign", keypair_id=entry.keypair_id, outcome="failure", error=error)
        metrics.signatures.add(1, outcome="failure", error=error)

