"""What every identity change shares: one transaction holding the change and its audit entry."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Any

from chalicelib.domain.identity import Principal
from chalicelib.domain.logs import Actor, AuditEntry
from chalicelib.errors import ValidationError
from chalicelib.storage.transaction import Transaction
from chalicelib.structured_logging import annotate

if TYPE_CHECKING:
    from chalicelib.services.container import Deps

# DynamoDB's limit on the items of one TransactWriteItems.
MAX_TRANSACTION_ITEMS = 100


@dataclass
class AuditedChange:
    """A transaction under way for `principal`, time-stamped once (the change and its entry share `at`)."""

    deps: Deps
    principal: Principal
    source_ip: str | None
    at: datetime = field(init=False)
    tx: Transaction = field(init=False)

    def __post_init__(self) -> None:
        self.at = self.deps.clock()
        self.tx = self.deps.store.transaction()

    def commit(self, *, type: str, action: str, resource_id: str, name: str | None,
               details: dict[str, Any] | None = None) -> None:
        """Stage the audit entry of the change, then commit both (raises what the failed item means)."""
        who = Actor(self.principal.account, self.principal.user_id, self.source_ip)
        self.deps.store.audit.stage(self.tx, AuditEntry.new(
            who, self.at, type=type, action=action, resource_id=resource_id, resource_alias=name,
            details=details or {}, expires=self.deps.log_expiry(self.at),
        ))
        self.tx.commit()
        annotate(action=f"{type}_{action}", resource_id=resource_id, outcome="success")


def plain(value: Any) -> Any:
    """A field's value as an audit entry records it (lists for tuples, strings for enums and times)."""
    if isinstance(value, tuple):
        return [plain(v) for v in value]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        from chalicelib.clock import rfc3339

        return rfc3339(value)
    return value


def changes(before: Any, after: Any, names: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """`{field: {"from", "to"}}` for the fields that differ."""
    return {name: {"from": plain(getattr(before, name)), "to": plain(getattr(after, name))}
            for name in names if getattr(before, name) != getattr(after, name)}


def require_known(ids: tuple[str, ...], found: set[str], noun: str, field: str) -> None:
    """Raise a 400 naming `field` for the first of `ids` not in `found` (objects of the caller's account)."""
    missing = [i for i in ids if i not in found]
    if missing:
        raise ValidationError(f"No such {noun} {missing[0]} in this account.", details={"field": field})
