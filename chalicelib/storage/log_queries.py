"""What the two log tables share: newest-first queries by index with a time range on the `at#ulid` key.

Every index (and the table) is ranged by `sk` = `<at>#<ulid>`, so a time range is a key condition and
"newest first" is a reverse key order. Index partition keys start with the account id, so a query can
only ever read the caller's account.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pynamodb.expressions.condition import Condition
from pynamodb.models import Model

from chalicelib.clock import parse_rfc3339
from chalicelib.domain.logs import LogKey, TimeRange
from chalicelib.storage.errors import FAILURES, translate
from chalicelib.storage.paging import Position, page

# DynamoDB reads at most 1 MB per request anyway; with a residual filter, ask for many items per
# request so a sparse filter costs fewer round trips.
FILTERED_PAGE_SIZE = 500
MAX_PAGE_SIZE = 500


@dataclass(frozen=True)
class Plan:
    """How one log query runs: which index (None = the table), its partition value, what is filtered."""

    index: str | None
    hash_attr: str
    hash_value: str
    filter: Condition | None


def all_of(conditions: list[Condition]) -> Condition | None:
    """The AND of some conditions (None for none)."""
    result: Condition | None = None
    for condition in conditions:
        result = condition if result is None else result & condition
    return result


def _second(value: datetime) -> str:
    """`YYYY-MM-DDTHH:MM:SS`, zero-padded whatever the year (strftime does not pad years below 1000)."""
    return f"{value.year:04d}-{value.month:02d}-{value.day:02d}T{value.hour:02d}:{value.minute:02d}:{value.second:02d}"


def _key_condition(model: Any, window: TimeRange) -> Condition | None:
    """A condition on `sk` covering whole seconds; `_within` trims the sub-second edges."""
    # Stored keys carry milliseconds, but only the 19-character second prefix orders correctly against
    # a bound whatever its sub-second format.
    low = _second(window.start) if window.start else None
    high = _second(window.end) + "~" if window.end else None
    if low and high:
        result: Condition = model.sk.between(low, high)
        return result
    if low:
        return model.sk >= low  # type: ignore[no-any-return]
    if high:
        return model.sk <= high  # type: ignore[no-any-return]
    return None


def _within(items: Iterable[Model], window: TimeRange) -> Iterator[Model]:
    for item in items:
        if window.contains(parse_rfc3339(item.sk.split("#", 1)[0])):  # type: ignore[attr-defined]
            yield item


def run_query(
    model: Any, plan: Plan, window: TimeRange, limit: int, start: Position | None
) -> tuple[list[Any], Position | None]:
    """One page of a log query, newest first, with the position of its last entry."""
    source: Any = getattr(model, plan.index) if plan.index else model
    key_condition = _key_condition(model, window)
    page_size = FILTERED_PAGE_SIZE if plan.filter is not None else min(limit + 1, MAX_PAGE_SIZE)

    def run(start_key: Position | None) -> Iterable[Model]:
        items: Iterable[Model] = source.query(
            plan.hash_value,
            range_key_condition=key_condition,
            filter_condition=plan.filter,
            scan_index_forward=False,
            last_evaluated_key=start_key,
            page_size=page_size,
        )
        return _within(items, window) if window.bounded else items

    key_attrs = ("account", "sk") if plan.index is None else ("account", "sk", plan.hash_attr)
    return page(run, limit, start, key_attrs)


def by_id(model: Any, account: str, entry_id: str) -> Any | None:
    """The row of one entry by its public id: a consistent Query over the one or two keys it can have."""
    bounds = LogKey.range_of(entry_id)
    if bounds is None:
        return None
    rows = model.query(account, model.sk.between(*bounds), filter_condition=model.id == entry_id,
                       consistent_read=True)
    return next(iter(rows), None)


def ascending(model: Any, account: str, low: str, high: str, page_size: int) -> Iterator[Any]:
    """Rows with low <= key <= high, oldest first, read consistently, page by page (storage errors translated)."""
    try:
        yield from model.query(account, model.sk.between(low, high), consistent_read=True, page_size=page_size)
    except FAILURES as exc:
        raise translate(exc) from exc
