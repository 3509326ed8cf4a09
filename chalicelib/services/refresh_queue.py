"""The refresh queue: the messages the tick and its slices send, and the SQS worker that handles each.

Two kinds of message share the queue. A refresh message carries `{account, keypair_id,
expected_generation}`; one whose generation is already behind the stored one is a success with nothing
to do, so a redelivered message never refreshes twice. A slice message (`{slice, bound, start}`) asks
for one page of one due-index shard to be turned into refresh messages (services/scheduler.py); a
repeated slice only sends refresh messages that are no-ops.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chalicelib import metrics
from chalicelib.domain.logs import SCHEDULER, Actor, AuditEntry
from chalicelib.errors import NotDynamic, RotasignError, ValidationError
from chalicelib.services.refresh import RefreshOutcome

if TYPE_CHECKING:
    from chalicelib.services.container import Deps
    from chalicelib.services.refresh import RefreshService

log = logging.getLogger("rotasign.refresh")


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
            return cls(str(data["account"]), str(data["keypair_id"]), int(data["expected_generation"]))
        except (ValueError, TypeError, KeyError) as exc:
            raise ValidationError("Malformed refresh message.") from exc

    def body(self) -> str:
        """The JSON body sent to the queue."""
        return json.dumps({"account": self.account, "keypair_id": self.keypair_id,
                           "expected_generation": self.expected_generation}, separators=(",", ":"))


@dataclass(frozen=True)
class SliceMessage:
    """The body of a slice message: a due-index shard, the tick's bound and where to continue."""

    shard: str
    bound: str
    start: dict[str, Any] | None = None

    def body(self) -> str:
        """The JSON body sent to the queue."""
        return json.dumps({"slice": self.shard, "bound": self.bound, "start": self.start}, separators=(",", ":"))


def parse_message(body: str) -> RefreshMessage | SliceMessage:
    """Parse a queue message body of either kind; raises ValidationError."""
    try:
        data = json.loads(body)
        if isinstance(data, dict) and "slice" in data:
            start = data.get("start")
            if start is not None and not isinstance(start, dict):
                raise TypeError("start")
            return SliceMessage(str(data["slice"]), str(data["bound"]), start)
    except (ValueError, TypeError, KeyError) as exc:
        raise ValidationError("Malformed slice message.") from exc
    return RefreshMessage.parse(body)


class RefreshFailed(Exception):
    """Some messages of an SQS batch failed: raised so that Lambda delivers them again."""


@dataclass(frozen=True)
class BatchResult:
    """What one SQS batch did."""

    refreshed: int
    skipped: int
    failed: int
    slices: int = 0


class RefreshQueue:
    """The SQS-triggered worker: one scheduled refresh per refresh message, one due page per slice message."""

    def __init__(self, deps: Deps, refresh: RefreshService, run_slice: Callable[[SliceMessage], object]) -> None:
        self.deps = deps
        self.refresh = refresh
        self.run_slice = run_slice

    def handle_message(self, message: RefreshMessage) -> RefreshOutcome:
        """One scheduled refresh: a message behind the stored generation is done with nothing to do."""
        try:
            return self.refresh.refresh(message.account, message.keypair_id, Actor(message.account, SCHEDULER),
                                        seen_generation=message.expected_generation, trigger="schedule")
        except NotDynamic:
            return RefreshOutcome("not_dynamic", None)

    def handle_records(self, records: Iterable[Mapping[str, Any]]) -> BatchResult:
        """The SQS handler: refresh each record; raises RefreshFailed if any failed, so Lambda retries.

        Successful records of a failed batch come back too; their generation check makes them no-ops.
        A record failing on its last receive (ApproximateReceiveCount ≥ ROTASIGN_REFRESH_MAX_RECEIVES)
        is audited as a failed refresh before it moves to the dead-letter queue.
        """
        refreshed = skipped = failed = slices = 0
        for record in records:
            receives = int((record.get("attributes") or {}).get("ApproximateReceiveCount", "1"))
            try:
                parsed = parse_message(str(record.get("body", "")))
            except ValidationError:
                # Retrying cannot fix a malformed body, and without an account there is no log to write to.
                log.error("malformed refresh message dropped",
                          extra={"event": "refresh", "outcome": "failure", "message_id": record.get("messageId")})
                skipped += 1
                continue
            if isinstance(parsed, SliceMessage):
                if self._slice(parsed, receives):
                    slices += 1
                else:
                    failed += 1
                continue
            message = parsed
            try:
                outcome = self.handle_message(message)
            except Exception as exc:
                failed += 1
                code = exc.code if isinstance(exc, RotasignError) else type(exc).__name__
                log.error("refresh failed", exc_info=True, extra={
                    "event": "refresh", "outcome": "failure", "account": message.account,
                    "keypair_id": message.keypair_id, "error": code, "receive_count": receives})
                metrics.emit("refresh_failures", 1, error=code)
                if receives >= self.deps.settings.refresh_max_receives:
                    self.audit_failure(message, code, receives)
                continue
            if outcome.refreshed:
                refreshed += 1
            else:
                skipped += 1
        if failed:
            raise RefreshFailed(f"{failed} refresh(es) of the batch failed; the queue delivers them again.")
        return BatchResult(refreshed, skipped, failed, slices)

    def _slice(self, message: SliceMessage, receives: int) -> bool:
        """Run one slice; False (logged and counted) when it failed. A slice is never audited: it has no account.

        A slice that ends in the dead-letter queue costs nothing lasting: its keypairs stay due, the next
        tick finds them again, and the refresh lag alarm shows the delay meanwhile.
        """
        try:
            self.run_slice(message)
        except Exception as exc:
            code = exc.code if isinstance(exc, RotasignError) else type(exc).__name__
            log.error("refresh slice failed", exc_info=True, extra={
                "event": "refresh_slice", "outcome": "failure", "shard": message.shard, "error": code,
                "receive_count": receives})
            metrics.emit("refresh_failures", 1, error=code)
            return False
        return True

    def audit_failure(self, message: RefreshMessage, error: str, receives: int) -> None:
        """Audit a scheduled refresh that failed for the last time (its message goes to the dead-letter queue)."""
        kp = None
        with contextlib.suppress(RotasignError):  # the entry is still worth writing without the alias
            kp = self.deps.store.keypairs.get(message.account, message.keypair_id)
        now = self.deps.clock()
        entry = AuditEntry.new(
            Actor(message.account, SCHEDULER), now, type="dynamic", action="refresh",
            resource_id=message.keypair_id, resource_alias=kp.alias if kp is not None else None,
            outcome="failure", error=error, expires=self.deps.log_expiry(now),
            details={"expected_generation": message.expected_generation, "receive_count": receives,
                     "trigger": "schedule", "dead_letter": True},
        )
        try:
            self.deps.store.audit.append(entry)
        except RotasignError:
            log.error("could not audit a failed refresh", exc_info=True,
                      extra={"event": "refresh_audit_failed", "keypair_id": message.keypair_id})
