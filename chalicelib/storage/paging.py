"""Newest-first pages over queries: filled up to `limit`, with the position of the last item returned."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from pynamodb.models import Model

M = TypeVar("M", bound=Model)
Position = dict[str, dict[str, Any]]


def page(
    run: Callable[[Position | None], Iterable[M]],
    limit: int,
    start: Position | None,
    key_attrs: tuple[str, ...],
) -> tuple[list[M], Position | None]:
    """Read items until `limit` match, plus one to know whether more exist.

    `run(start)` performs the query (with its filters) from an exclusive start key. The returned
    position is the key of the last item returned, not DynamoDB's LastEvaluatedKey, so items that a
    filter read past but the page did not return are not skipped.
    """
    items: list[M] = []
    for item in run(start):
        items.append(item)
        if len(items) > limit:
            break
    if len(items) <= limit:
        return items, None
    last = items[limit - 1]
    serialized = last.serialize()
    return items[:limit], {name: serialized[name] for name in key_attrs if name in serialized}


def newest_first(
    model: Any,
    account: str,
    limit: int,
    start: Position | None,
    keep: Callable[[Any], bool] | None = None,
) -> tuple[list[Any], Position | None]:
    """One page of an account's rows in a table keyed by account + time-ordered id, read consistently.

    Only the rows `keep` accepts (all when None) count towards `limit`.
    """

    def run(start_key: Position | None) -> Iterable[Any]:
        rows = model.query(account, scan_index_forward=False, last_evaluated_key=start_key, consistent_read=True,
                           page_size=min(limit + 1, 500))
        return rows if keep is None else (row for row in rows if keep(row))

    return page(run, limit, start, ("account", "id"))
