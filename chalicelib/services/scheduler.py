"""The scheduled tick: sweep orphaned keys, queue one refresh message per due dynamic keypair, checkpoint the logs.

The due keypairs come from the sparse `due` index of the keypairs table (only live dynamic keypairs
carry `due_shard`), read page by page with a key condition on `next_refresh_at` — never a scan. The
index projects keys only, so each page of ids is followed by one BatchGetItem for the generations the
messages carry. Messages go out in SendMessageBatch calls of 10, a few calls in flight at a time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from chalicelib import metrics
from chalicelib.clock import due_window, parse_rfc3339, rfc3339
from chalicelib.errors import RotasignError
from chalicelib.services.refresh_queue import RefreshMessage
from chalicelib.services.sweep import sweep_orphans

if TYPE_CHECKING:
    from chalicelib.services.container import Deps, Services

log = logging.getLogger("rotasign.scheduler")
SQS_BATCH = 10  # SendMessageBatch takes at most 10 entries
READ_BATCH = 100  # BatchGetItem takes at most 100 keys
SENDERS = 4  # SendMessageBatch calls in flight at once


class EnqueueFailed(Exception):
    """Some refresh messages could not be queued: raised so that the scheduled invocation is retried.

    Messages already queued come back as no-ops (their generation check), so a retried tick is safe.
    """


@dataclass
class TickResult:
    """What one tick did."""

    due: int = 0
    enqueued: int = 0
    swept: int = 0
    lag_seconds: float | None = None  # now - next_refresh_at of the oldest due keypair
    logged: int = 0  # entries appended to the accounts' transparency logs
    checkpoints: int = 0  # new signed checkpoints

    def as_dict(self) -> dict[str, Any]:
        """JSON form (the scheduled function's return value; `make tick` prints it)."""
        return asdict(self)


def run_tick(services: Services, now: datetime | None = None) -> TickResult:
    """One scheduled invocation: the orphan sweep, the due keypairs onto the queue, then the log checkpoints.

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
        result = enqueue_due(deps, now)
    finally:
        logs = services.checkpointer.run_all(now)
    result.swept = swept
    result.logged, result.checkpoints = logs.appended, logs.checkpoints
    log.info("refresh tick", extra={"event": "refresh_tick", **result.as_dict()})
    metrics.emit("refreshes_enqueued", result.enqueued)
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


def due_messages(deps: Deps, now: datetime) -> Iterator[tuple[RefreshMessage, str]]:
    """A refresh message and its `next_refresh_at` for every keypair due at `now`.

    One index query, page by page, and one consistent BatchGetItem per 100 keypairs for the generation
    the message carries. The index is eventually consistent: a row refreshed since it was read there
    is no longer due and is dropped.
    """
    bound = due_bound(now, deps.settings.schedule_seconds)
    repo = deps.store.keypairs
    chunk: list[tuple[str, str]] = []

    def details() -> Iterator[tuple[RefreshMessage, str]]:
        for due in repo.due_details(chunk):
            if due.next_refresh_at <= bound:
                yield RefreshMessage(due.account, due.keypair_id, due.generation), due.next_refresh_at

    for key in repo.due(bound):
        chunk.append(key)
        if len(chunk) == READ_BATCH:
            yield from details()
            chunk = []
    if chunk:
        yield from details()


class _Sender:
    """Sends messages in batches of 10 with a few batches in flight; counts what could not be queued."""

    def __init__(self, deps: Deps) -> None:
        self._sqs, self._url = deps.queue()
        self._pool = ThreadPoolExecutor(max_workers=SENDERS, thread_name_prefix="refresh-enqueue")
        self._futures: list[Future[int]] = []
        self._buffer: list[RefreshMessage] = []

    def add(self, message: RefreshMessage) -> None:
        self._buffer.append(message)
        if len(self._buffer) == SQS_BATCH:
            self._flush()

    def _flush(self) -> None:
        if self._buffer:
            self._futures.append(self._pool.submit(self._send, self._buffer))
            self._buffer = []

    def _send(self, batch: list[RefreshMessage]) -> int:
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


def enqueue_due(deps: Deps, now: datetime) -> TickResult:
    """Find the due keypairs page by page and queue a refresh message for each; raises EnqueueFailed."""
    result = TickResult()
    oldest: str | None = None
    sender = _Sender(deps)
    queued = 0
    try:
        for message, due_at in due_messages(deps, now):
            result.due += 1
            oldest = due_at if oldest is None else min(oldest, due_at)
            sender.add(message)
    finally:
        queued = sender.close()
    result.enqueued = queued
    if oldest is not None:
        result.lag_seconds = max(0.0, (now - parse_rfc3339(oldest)).total_seconds())
    if queued < result.due:
        raise EnqueueFailed(f"{result.due - queued} of {result.due} refresh messages could not be queued.")
    return result
