"""The scheduled tick and its fan-out: every due dynamic keypair gets a refresh message, in stages; then
the log checkpoints.

One Lambda invocation cannot read and queue a million due keypairs inside a quarter hour, so none does
work that grows with their number:

1. The tick (every quarter hour) sweeps orphaned HSM keys, reads the oldest entry of each of the due
   index's DUE_SHARDS partitions (a Query with Limit 1 each, a few at once: the refresh lag, and which
   shards have anything due) and queues one slice message per shard that has.
2. A slice (run by the SQS worker) reads one page of at most SLICE_PAGE keys of its shard up to the
   tick's bound, their generations (one consistent BatchGetItem per 100: the index is eventually
   consistent and keys-only), queues a refresh message for each keypair still due and, when the shard
   holds more, one slice message that continues after the page.
3. A refresh message (the SQS worker) refreshes one keypair.

The tick's work is bounded by the shard count and a slice's by its page; the queue and Lambda's
concurrency run the slices of every shard and the refreshes side by side. Messages go out in
SendMessageBatch calls of 10, a few calls in flight at a time.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from chalicelib import metrics
from chalicelib.clock import due_window, parse_rfc3339, rfc3339
from chalicelib.errors import RotasignError
from chalicelib.services.refresh_queue import RefreshMessage, SliceMessage
from chalicelib.services.sweep import sweep_orphans
from chalicelib.storage.keypairs import due_shards

if TYPE_CHECKING:
    from chalicelib.services.container import Deps, Services

log = logging.getLogger("rotasign.scheduler")
SQS_BATCH = 10  # SendMessageBatch takes at most 10 entries
READ_BATCH = 100  # BatchGetItem takes at most 100 keys
SENDERS = 4  # SendMessageBatch calls in flight at once
PROBERS = 8  # due-index shards the tick reads at once
SLICE_PAGE = 1000  # due keys one slice reads: at most 10 BatchGetItem and 100 SendMessageBatch calls


class EnqueueFailed(Exception):
    """Some messages could not be queued: raised so that the invocation is retried.

    Refresh messages already queued come back as no-ops (their generation check), so a retry is safe.
    """


@dataclass
class TickResult:
    """What one tick did."""

    due_shards: int = 0  # due-index shards holding a due keypair
    slices: int = 0  # slice messages queued (one per such shard)
    swept: int = 0
    lag_seconds: float | None = None  # now - next_refresh_at of the oldest due keypair
    logged: int = 0  # entries appended to the accounts' transparency logs
    checkpoints: int = 0  # new signed checkpoints

    def as_dict(self) -> dict[str, Any]:
        """JSON form (the scheduled function's return value)."""
        return asdict(self)


@dataclass
class SliceResult:
    """What one slice did."""

    shard: str
    due: int = 0  # keypairs of the page still due when read consistently
    enqueued: int = 0  # refresh messages queued
    continued: bool = False  # whether a slice message for the rest of the shard was queued

    def as_dict(self) -> dict[str, Any]:
        """JSON form (logged)."""
        return asdict(self)


def run_tick(services: Services, now: datetime | None = None) -> TickResult:
    """One scheduled invocation: the orphan sweep, a slice message per due-index shard with due keypairs, then
    the log checkpoints.

    A failing sweep is logged and does not stop the refreshes; the checkpoints run even when queuing
    failed, and count their own failures. Raises EnqueueFailed, StorageUnavailable.
    """
    deps = services.deps
    now = now or deps.clock()
    swept = 0
    try:
        swept = len(sweep_orphans(deps, now).removed)
    except RotasignError as exc:
        log.warning("sweep failed", extra={"event": "sweep", "outcome": "failure", "error": exc.code})
    try:
        result = fan_out(deps, now)
    finally:
        logs = services.checkpointer.run_all(now)
    result.swept = swept
    result.logged, result.checkpoints = logs.appended, logs.checkpoints
    log.info("refresh tick", extra={"event": "refresh_tick", **result.as_dict()})
    # Alarm on this: a lag that grows over ticks means refreshes fall behind the schedule.
    metrics.emit("refresh_lag_seconds", result.lag_seconds or 0.0, unit="Seconds")
    return result


def due_bound(now: datetime, interval_seconds: int) -> str:
    """The index bound of a tick at `now`, in whole seconds.

    `next_refresh_at` values are whole seconds; a bound with milliseconds would sort wrongly against
    them as a string (`…00.5Z` < `…00Z`).
    """
    bound = now + due_window(interval_seconds)
    return rfc3339(bound.replace(microsecond=0))


def fan_out(deps: Deps, now: datetime) -> TickResult:
    """Find the shards with due keypairs (one Limit-1 query each) and queue a slice message for each.

    Raises EnqueueFailed, StorageUnavailable.
    """
    bound = due_bound(now, deps.settings.schedule_seconds)
    repo = deps.store.keypairs

    def oldest(shard: str) -> tuple[str, str | None]:
        keys, _ = repo.due_page(shard, bound, None, 1)
        return shard, keys[0].next_refresh_at if keys else None

    with ThreadPoolExecutor(max_workers=PROBERS, thread_name_prefix="due-probe") as pool:
        found = {shard: at for shard, at in pool.map(oldest, due_shards()) if at is not None}
    result = TickResult(due_shards=len(found))
    if found:
        result.lag_seconds = max(0.0, (now - parse_rfc3339(min(found.values()))).total_seconds())
    sender = _Sender(deps)
    try:
        for shard in found:
            sender.add(SliceMessage(shard, bound))
    finally:
        result.slices = sender.close()
    if result.slices < len(found):
        raise EnqueueFailed(f"{len(found) - result.slices} of {len(found)} slice messages could not be queued.")
    return result


def run_slice(deps: Deps, message: SliceMessage) -> SliceResult:
    """One page of one due-index shard: a refresh message per keypair still due, then the rest as a slice.

    The continuation is queued only once every refresh message of the page is, so a retried slice never
    leaves two continuations behind. Raises EnqueueFailed, StorageUnavailable.
    """
    repo = deps.store.keypairs
    keys, position = repo.due_page(message.shard, message.bound, message.start, SLICE_PAGE)
    result = SliceResult(message.shard)
    sender = _Sender(deps)
    try:
        for i in range(0, len(keys), READ_BATCH):
            chunk = [(key.account, key.keypair_id) for key in keys[i:i + READ_BATCH]]
            for due in repo.due_details(chunk):
                if due.next_refresh_at <= message.bound:
                    result.due += 1
                    sender.add(RefreshMessage(due.account, due.keypair_id, due.generation))
    finally:
        result.enqueued = sender.close()
    if result.enqueued < result.due:
        raise EnqueueFailed(f"{result.due - result.enqueued} of {result.due} refresh messages could not be queued.")
    if position is not None:
        continuation = _Sender(deps)
        continuation.add(SliceMessage(message.shard, message.bound, position))
        if continuation.close() != 1:
            raise EnqueueFailed("The rest of a due-index shard could not be queued.")
        result.continued = True
    log.info("refresh slice", extra={"event": "refresh_slice", **result.as_dict()})
    metrics.emit("refreshes_enqueued", result.enqueued)
    return result


class _Sender:
    """Sends messages in batches of 10 with a few batches in flight; counts what could not be queued."""

    def __init__(self, deps: Deps) -> None:
        self._sqs, self._url = deps.queue()
        self._pool = ThreadPoolExecutor(max_workers=SENDERS, thread_name_prefix="refresh-enqueue")
        self._futures: list[Future[int]] = []
        self._buffer: list[RefreshMessage | SliceMessage] = []

    def add(self, message: RefreshMessage | SliceMessage) -> None:
        self._buffer.append(message)
        if len(self._buffer) == SQS_BATCH:
            self._flush()

    def _flush(self) -> None:
        if self._buffer:
            self._futures.append(self._pool.submit(self._send, self._buffer))
            self._buffer = []

    def _send(self, batch: list[RefreshMessage | SliceMessage]) -> int:
        """Send one batch, retrying the entries SQS refused once; returns how many were queued."""
        pending = {str(i): m for i, m in enumerate(batch)}
        for attempt in (1, 2):
            try:
                response = self._sqs.send_message_batch(
                    QueueUrl=self._url,
                    Entries=[{"Id": key, "MessageBody": m.body()} for key, m in pending.items()],
                )
            except Exception:
                log.warning("SendMessageBatch failed", exc_info=True, extra={"event": "refresh_enqueue"})
                response = {"Failed": [{"Id": key} for key in pending]}
            pending = {f["Id"]: pending[f["Id"]] for f in response.get("Failed", []) if f["Id"] in pending}
            if not pending:
                break
            if attempt == 1:
                time.sleep(0.1)
        return len(batch) - len(pending)

    def close(self) -> int:
        """Wait for every batch; returns how many messages were queued."""
        self._flush()
        try:
            return sum(f.result() for f in self._futures)
        finally:
            self._pool.shutdown(wait=True)
