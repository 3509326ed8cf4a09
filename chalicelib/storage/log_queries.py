"""What the two log tables share: newest-first queries by index with a time range on the `at#ulid` key,
merged over the account's write shards (chalicelib.storage.shards).

Every index (and the table) is ranged by `sk` = `<at>#<ulid>`, so a time range is a key condition and
"newest first" is a reverse key order. Partition keys start with the account id, so a query can only ever
read the caller's account.

A page reads every shard newest first and merges them by `sk`. Its position (what a pagination token
seals) is the shards' positions: `after`, the key of the page's last entry, where every shard resumes
(all it has below that key is still to come, and nothing above it is: the page was the newest entries of
all shards), and `done`, a bit per shard that ran out, which later pages no longer read. A page costs
one Query per shard still in play, plus at most one per `shard page` of entries returned, whatever the
size of the account's log.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from pynamodb.expressions.condition import Condition

from chalicelib.clock import parse_rfc3339
from chalicelib.domain.logs import LogKey, TimeRange
from chalicelib.errors import InvalidPaginationToken
from chalicelib.storage.connection import connection
from chalicelib.storage.errors import FAILURES, translate
from chalicelib.storage.shards import ShardReader, merged, shard_of, sharded

# DynamoDB reads at most 1 MB per request anyway; with a residual filter, ask for many items per
# request (over all shards) so a sparse filter costs fewer round trips.
FILTERED_PAGE_SIZE = 500
MAX_PAGE_SIZE = 500
# Unfiltered, each shard is asked for twice its share of a page (at least this many): a shard that
# holds more than that costs one more request per this many entries returned.
MIN_SHARD_PAGE = 8
LogPosition = dict[str, Any]


@dataclass(frozen=True)
class Plan:
    """How one log query runs: which index (None = the table), its logical partition value, what is filtered.

    `filter` is evaluated by DynamoDB; `keep`, by this process, for what the index cannot compare.
    """

    index: str | None
    hash_attr: str
    hash_value: str
    filter: Condition | None
    keep: Callable[[Any], bool] | None = None


def all_of(conditions: list[Condition]) -> Condition | None:
    """The AND of some conditions (None for none)."""
    result: Condition | None = None
    for condition in conditions:
        result = condition if result is None else result & condition
    return result


def _second(value: datetime) -> str:
    """`YYYY-MM-DDTHH:MM:SS`, zero-padded whatever the year (strftime does not pad years below 1000)."""
    return f"{value.year:04d}-{value.month:02d}-{value.day:02d}T{value.hour:02d}:{value.minute:02d}:{value.second:02d}"


def _key_condition(model: Any, window: TimeRange, after: str | None) -> Condition | None:
    """A condition on `sk` covering whole seconds and ending at `after`; `_rows` trims the edges."""
    # Stored keys carry milliseconds, but only the 19-character second prefix orders correctly against
    # a bound whatever its sub-second format.
    low = _second(window.start) if window.start else None
    high = _second(window.end) + "~" if window.end else None
    if after is not None and (high is None or after < high):
        high = after  # inclusive in BETWEEN: `_rows` drops the entry at `after` itself
        if low is None:
            return model.sk < after  # type: ignore[no-any-return]
    if low and high:
        result: Condition = model.sk.between(low, high)
        return result
    if low:
        return model.sk >= low  # type: ignore[no-any-return]
    if high:
        return model.sk <= high  # type: ignore[no-any-return]
    return None


def _rows(rows: Iterable[Any], window: TimeRange, after: str | None, keep: Callable[[Any], bool] | None
          ) -> Iterator[Any]:
    for row in rows:
        if after is not None and row.sk >= after:
            continue
        if window.bounded and not window.contains(parse_rfc3339(row.sk.split("#", 1)[0])):
            continue
        if keep is not None and not keep(row):
            continue
        yield row


def _cursor(start: LogPosition | None, shards: int) -> tuple[str | None, int]:
    """`after` and `done` of a sealed position; raises InvalidPaginationToken for one of another layout."""
    if start is None:
        return None, 0
    after, done = start.get("after"), start.get("done")
    if not isinstance(after, str) or not isinstance(done, int) or done >> shards:
        raise InvalidPaginationToken()
    return after, done


def run_query(
    model: Any, plan: Plan, window: TimeRange, limit: int, start: LogPosition | None, shards: int
) -> tuple[list[Any], LogPosition | None]:
    """One page of a log query over every shard, newest first, with the shards' positions after it."""
    after, done = _cursor(start, shards)
    key_condition = _key_condition(model, window, after)
    page_size = min(limit + 1, MAX_PAGE_SIZE, max(MIN_SHARD_PAGE, -(-2 * (limit + 1) // shards)))
    if plan.filter is not None or plan.keep is not None:
        # Unknown how many match: each round of requests examines about 2 x FILTERED_PAGE_SIZE entries in all.
        page_size = max(page_size, min(FILTERED_PAGE_SIZE, -(-2 * FILTERED_PAGE_SIZE // shards)))
    readers = [
        ShardReader(shard, _rows(model.shard_query(
            sharded(plan.hash_value, shard), range_key_condition=key_condition, filter_condition=plan.filter,
            index_name=plan.index, scan_index_forward=False, page_size=page_size), window, after, plan.keep))
        for shard in range(shards) if not done >> shard & 1
    ]
    items: list[Any] = []
    for row in merged(readers, key=lambda row: str(row.sk), newest_first=True):
        items.append(row)
        if len(items) > limit:
            break
    if len(items) <= limit:
        return items, None
    done |= sum(1 << reader.shard for reader in readers if reader.exhausted)
    return items[:limit], {"after": items[limit - 1].sk, "done": done}


def by_id(model: Any, account: str, entry_id: str, shards: int) -> Any | None:
    """The row of one entry by its public id: a consistent Query of its shard over the one or two keys it can have."""
    bounds = LogKey.range_of(entry_id)
    if bounds is None:
        return None
    rows = model.shard_query(sharded(account, shard_of(entry_id[4:], shards)), range_key_condition=model.sk.between(
        *bounds), consistent_read=True)
    return next((row for row in rows if row.id == entry_id), None)


def ascending(model: Any, account: str, low: str, high: str, page_size: int, shards: int) -> Iterator[Any]:
    """Rows with low <= key <= high over every shard, oldest first, read consistently (storage errors translated)."""
    try:
        readers = [ShardReader(shard, model.shard_query(
            sharded(account, shard), range_key_condition=model.sk.between(low, high), consistent_read=True,
            page_size=page_size)) for shard in range(shards)]
        yield from merged(readers, key=lambda row: str(row.sk), newest_first=False)
    except FAILURES as exc:
        raise translate(exc) from exc


class ShardedLog:
    """What both log repositories share: their model and how many write shards its entries are spread over.

    `shards`: the account's write shards (default: the configured ROTASIGN_LOG_SHARDS).
    """

    model: ClassVar[Any]

    def __init__(self, shards: int | None = None) -> None:
        self._shards = shards

    @property
    def shards(self) -> int:
        """How many write shards each account's entries are spread over."""
        if self._shards:
            return self._shards
        connection()  # configures the models (table names, shard count) on first use
        return int(self.model.shards)
