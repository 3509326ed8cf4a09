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
