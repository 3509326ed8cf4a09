"""One TransactWriteItems whose failures name the item that failed, by identity, never by position.

PynamoDB's own `TransactWrite` reorders the items (condition checks, deletes, puts, updates), so the
position of a cancellation reason says nothing about which item the caller added. This builder sends the
items in the order they were added, and each item carries the error its failed condition means.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

from botocore.exceptions import ClientError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action
from pynamodb.models import Model

from chalicelib.errors import Conflict, RotasignError, Throttled
from chalicelib.storage.connection import connection
from chalicelib.storage.errors import FAILURES, THROTTLING, translate

OnFail = Callable[[], Exception]


class TransactionConflicted(Conflict):
    """Another transaction held one of the items at the same moment (DynamoDB's TransactionConflict)."""


class Transaction:
    """Collects writes and commits them atomically (at most 100 items, DynamoDB's limit)."""

    def __init__(self) -> None:
        self._items: list[dict[str, Any]] = []
        self._on_fail: list[OnFail | None] = []

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: Model, condition: Condition | None = None, *, on_fail: OnFail | None = None) -> None:
        """Write a whole item (PynamoDB adds the version condition of versioned models)."""
        self._add("Put", item.get_save_kwargs_from_instance(condition=condition), on_fail)

    def update(
        self,
        item: Model,
        actions: Sequence[Action],
        condition: Condition | None = None,
        *,
        on_fail: OnFail | None = None,
        add_version_condition: bool = True,
    ) -> None:
        """Change attributes of an item (`item` carries its key, and its version when versioned)."""
        kwargs = item.get_update_kwargs_from_instance(
            actions=list(actions), condition=condition, add_version_condition=add_version_condition
        )
        self._add("Update", kwargs, on_fail)

    def delete(
        self,
        item: Model,
        condition: Condition | None = None,
        *,
        on_fail: OnFail | None = None,
        add_version_condition: bool = False,
    ) -> None:
        """Delete an item."""
        kwargs = item.get_delete_kwargs_from_instance(condition=condition, add_version_condition=add_version_condition)
        self._add("Delete", kwargs, on_fail)

    def check(
        self,
        model: type[Model],
        hash_key: str,
        range_key: Any = None,
        *,
        condition: Condition,
        on_fail: OnFail | None = None,
    ) -> None:
        """Require a condition of an item that the transaction does not write."""
        self._add("ConditionCheck", model.get_operation_kwargs_from_class(hash_key, range_key, condition=condition),
                  on_fail)

    def put_values(self, table: str, item: dict[str, Any], condition: str, *, on_fail: OnFail | None = None) -> None:
        """Write an item already in DynamoDB's wire format (the log tables' hot path skips PynamoDB models)."""
        self._add("Put", {"TableName": table, "Item": item, "ConditionExpression": condition}, on_fail)

    def _add(self, kind: str, kwargs: dict[str, Any], on_fail: OnFail | None) -> None:
        self._items.append({kind: kwargs})
        self._on_fail.append(on_fail)

    def commit(self) -> None:
        """Send the items; raises the failed item's `on_fail()` (default Conflict), Throttled or 503."""
        if not self._items:
            return
        # A retry of a commit whose answer was lost (a timeout, a dropped connection) must not report the
        # commit's own items as conflicting: DynamoDB treats a repeated token as the same transaction.
        request = {"TransactItems": self._items, "ClientRequestToken": uuid.uuid4().hex}
        try:
            connection().dispatch("TransactWriteItems", request)
        except ClientError as exc:
            raise self._failure(exc) from exc
        except FAILURES as exc:
            raise translate(exc) from exc

    def _failure(self, exc: ClientError) -> Exception:
        reasons: list[Any] = list(getattr(exc, "cancellation_reasons", None) or [])
        codes = [reason.code if reason is not None else None for reason in reasons]
        for index, code in enumerate(codes):
            if code == "ConditionalCheckFailed":
                factory = self._on_fail[index] if index < len(self._on_fail) else None
                return factory() if factory is not None else Conflict()
        if THROTTLING & set(codes):
            return Throttled("Storage is throttling requests; retry later.")
        if "TransactionConflict" in codes:
            return TransactionConflicted()
        error: RotasignError = translate(exc)
        return error
