"""The tick's staged fan-out: each due keypair queued exactly once; no invocation's work grows with their number."""

from __future__ import annotations

import dataclasses
import math
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chalicelib.clock import next_tick, rfc3339
from chalicelib.services.container import Deps, Services, build_services, get_deps
from chalicelib.services.refresh_queue import RefreshFailed, RefreshMessage, SliceMessage, parse_message
from chalicelib.services.scheduler import SLICE_PAGE, due_bound, fan_out
from chalicelib.storage.connection import configure
from chalicelib.storage.keypairs import DUE_SHARDS
from chalicelib.storage.tables import MODELS, create_tables
from tests.support.clock import FakeClock
from tests.support.fanout import MemoryQueue, seed_due_keypairs
from tests.support.requests import RequestCounter

INTERVAL = 900
# Two days ahead on the quarter-hour grid: keypairs other tests make (due within the hour) are due too,
# so assertions look at this module's account only.
DUE = next_tick(datetime.now(UTC) + timedelta(days=2), INTERVAL)
TICK = DUE + timedelta(milliseconds=350)
CROWDED = "due#07"  # one shard holds 2,500 more than its share: its slices continue twice


@dataclasses.dataclass(frozen=True)
class Seeded:
    account: str
    ids: list[str]


@pytest.fixture(scope="module")
def seeded(aws: dict[str, str]) -> Iterator[Seeded]:
    """10,000 due dynamic keypairs: 7,500 spread over the shards by their ids, 2,500 in one shard.

    They live in tables of their own, dropped afterwards: moto reads a whole table for each index query,
    so 10,000 rows left in the session's tables would slow every later test of this process.
    """
    real = get_deps().settings
    settings = dataclasses.replace(real, table_prefix=f"rotasign-fanout-{uuid.uuid4().hex[:8]}-")
    create_tables(settings)  # and points the storage at them
    try:
        account = f"acct_fanout{uuid.uuid4().hex[:12]}"
        due_at = rfc3339(DUE)
        ids = seed_due_keypairs(account, 7_500, due_at) + seed_due_keypairs(account, 2_500, due_at, shard=CROWDED)
        yield Seeded(account, ids)
    finally:
        for model in MODELS.values():
            model.delete_table()
        configure(real)


def process(queue: MemoryQueue) -> Services:
    """The services of one worker process whose SQS client is the in-memory queue."""
    real: Deps = get_deps()
    return build_services(dataclasses.replace(real, sqs=queue, clock=FakeClock(TICK)))


def record(body: str, receives: int = 1) -> dict[str, Any]:
    return {"body": body, "attributes": {"ApproximateReceiveCount": str(receives)}}


@dataclasses.dataclass
class Invocation:
    """What one Lambda invocation of the fan-out did."""

    dynamodb: Counter[str]
    sends: int


def test_the_staged_tick_queues_each_of_10000_due_keypairs_exactly_once(seeded: Seeded) -> None:
    queue = MemoryQueue()
    services = process(queue)
    with RequestCounter() as counter:
        result = fan_out(services.deps, TICK)
    tick = Invocation(Counter(counter.of("dynamodb")), queue.send_calls)
    assert result.slices == result.due_shards == DUE_SHARDS  # 7,500 spread keypairs leave no shard empty
    assert result.lag_seconds is not None and result.lag_seconds >= 0.35

    slices: list[tuple[SliceMessage, Invocation]] = []
    queued: Counter[str] = Counter()
    with RequestCounter() as counter:  # one counter for every slice (finding the clients walks the heap)
        while (body := queue.take()) is not None:
            message = parse_message(body)
            if isinstance(message, RefreshMessage):
                if message.account == seeded.account:
                    assert message.expected_generation == 1
                    queued[message.keypair_id] += 1
                continue
            sends, calls = queue.send_calls, len(counter.calls)
            services.queue.handle_records([record(body)])
            dynamodb = Counter(op for service, op in counter.calls[calls:] if service == "dynamodb")
            slices.append((message, Invocation(dynamodb, queue.send_calls - sends)))

    assert len(queued) == 10_000 and set(queued) == set(seeded.ids)
    assert set(queued.values()) == {1}

    # The tick reads one key per shard and queues one message per shard, whatever the number due.
    assert tick.dynamodb == Counter({"Query": DUE_SHARDS}) and tick.sends == math.ceil(DUE_SHARDS / 10)
    # A slice reads one index page and its rows, and queues at most a page of messages plus its continuation.
    for _, slice_run in slices:
        assert slice_run.dynamodb["Query"] == 1
        assert slice_run.dynamodb["BatchGetItem"] <= SLICE_PAGE // 100
        assert slice_run.sends <= SLICE_PAGE // 10 + 1
    crowded = [message for message, _ in slices if message.shard == CROWDED]
    assert len(crowded) >= 3 and crowded[0].start is None and all(m.start for m in crowded[1:])
    assert {message.bound for message, _ in slices} == {due_bound(TICK, INTERVAL)}


def test_a_slice_that_cannot_queue_is_retried_whole_and_continues_once(seeded: Seeded) -> None:
    queue = MemoryQueue()
    services = process(queue)
    first = SliceMessage(CROWDED, due_bound(TICK, INTERVAL)).body()

    queue.refuse = 10 * SLICE_PAGE  # SQS refuses every entry, the retry inside the slice too
    with pytest.raises(RefreshFailed):
        services.queue.handle_records([record(first)])
    assert not queue.bodies  # nothing queued: above all, no continuation

    queue.refuse = 0
    services.queue.handle_records([record(first, receives=2)])  # the queue delivers the message again
    bodies = [parse_message(body) for body in queue.bodies]
    continuations = [m for m in bodies if isinstance(m, SliceMessage)]
    mine = [m.keypair_id for m in bodies if isinstance(m, RefreshMessage) and m.account == seeded.account]
    assert len(continuations) == 1 and continuations[0].start is not None
    assert len(mine) == len(set(mine)) > 0 and set(mine) <= set(seeded.ids)


def test_a_malformed_slice_message_is_dropped_not_retried(seeded: Seeded) -> None:
    queue = MemoryQueue()
    services = process(queue)
    result = services.queue.handle_records([record('{"slice": "due#00"}')])  # no bound
    assert (result.skipped, result.failed) == (1, 0) and not queue.bodies
