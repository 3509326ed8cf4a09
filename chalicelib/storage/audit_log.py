"""The audit log: append-only entries, one index per filter of docs/api.md, spread over the account's write shards.

Index choice (first match wins; the other filters become a FilterExpression): resource_id →
by_resource; type+action → by_type_action (the documented refresh query); actor → by_actor; type →
by_type; action → by_action; otherwise the account's partition of the table.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from chalicelib.domain.logs import AuditEntry, AuditFilter, LogKey
from chalicelib.storage.errors import guarded
from chalicelib.storage.log_queries import LogPosition, Plan, ShardedLog, all_of, ascending, by_id, run_query
from chalicelib.storage.shards import shard_of, sharded
from chalicelib.storage.tables import AuditLogModel
from chalicelib.storage.transaction import Transaction


def _row(entry: AuditEntry, shards: int) -> AuditLogModel:
    account = entry.account
    shard = shard_of(entry.id[4:], shards)

    def key(value: str) -> str:
        return sharded(f"{account}#{value}", shard)

    return AuditLogModel(
        sharded(account, shard),
        entry.key.sort_key,
        at=entry.at,
        actor=entry.actor,
        type=entry.type,
        action=entry.action,
        resource_id=entry.resource_id,
        resource_alias=entry.resource_alias,
        outcome=entry.outcome,
        error=entry.error,
        details=entry.details,
        source_ip=entry.source_ip,
        expires=entry.expires,
        k_type_action=key(f"{entry.type}#{entry.action}"),
        k_type=key(entry.type),
        k_action=key(entry.action),
        k_resource=key(entry.resource_id) if entry.resource_id else None,
        k_actor=key(entry.actor),
    )


def _entry(row: AuditLogModel) -> AuditEntry:
    details: Any = row.details
    return AuditEntry(
        account=row.account,
        key=LogKey(row.sk),
        at=row.at,
        actor=row.actor,
        type=row.type,
        action=row.action,
        resource_id=row.resource_id,
        resource_alias=row.resource_alias,
        outcome=row.outcome,
        error=row.error,
        details=dict(details.as_dict() if hasattr(details, "as_dict") else details or {}),
        source_ip=row.source_ip,
    )


def plan(account: str, f: AuditFilter) -> Plan:
    """The index and residual filter for an audit-log query."""
    m = AuditLogModel
    if f.resource_id is not None:
        index, attr, value, served = "by_resource", "k_resource", f"{account}#{f.resource_id}", {"resource_id"}
    elif f.type is not None and f.action is not None:
        index, attr, value, served = "by_type_action", "k_type_action", f"{account}#{f.type}#{f.action}", {
            "type", "action"}
    elif f.actor is not None:
        index, attr, value, served = "by_actor", "k_actor", f"{account}#{f.actor}", {"actor"}
    elif f.type is not None:
        index, attr, value, served = "by_type", "k_type", f"{account}#{f.type}", {"type"}
    elif f.action is not None:
        index, attr, value, served = "by_action", "k_action", f"{account}#{f.action}", {"action"}
    else:
        index, attr, value, served = None, "pk", account, set()
    columns = {"type": m.type, "action": m.action, "resource_id": m.resource_id, "actor": m.actor,
               "outcome": m.outcome}
    residual = [columns[name] == getattr(f, name) for name in columns
                if getattr(f, name) is not None and name not in served]
    return Plan(index, attr, value, all_of(residual))


class AuditLog(ShardedLog):
    """Writes (always conditional: a repeated key would silently overwrite) and queries of the audit log."""

    model = AuditLogModel

    def stage(self, tx: Transaction, entry: AuditEntry) -> None:
        """Write the entry in the transaction of the change it records."""
        tx.put(_row(entry, self.shards), AuditLogModel.sk.does_not_exist())

    @guarded
    def append(self, entry: AuditEntry) -> None:
        """Write one entry on its own (for events with no other state change)."""
        _row(entry, self.shards).save(condition=AuditLogModel.sk.does_not_exist())

    @guarded
    def query(self, account: str, f: AuditFilter, limit: int, start: LogPosition | None
              ) -> tuple[list[AuditEntry], LogPosition | None]:
        """One page, newest first, merged over the shards; raises InvalidPaginationToken for a foreign position."""
        rows, position = run_query(AuditLogModel, plan(account, f), f.time, limit, start, self.shards)
        return [_entry(row) for row in rows], position

    @guarded
    def get(self, account: str, entry_id: str) -> AuditEntry | None:
        """One entry of the account by id (one shard, read consistently); None when there is none."""
        row = by_id(AuditLogModel, account, entry_id, self.shards)
        return _entry(row) if row is not None else None

    def between(self, account: str, low: str, high: str, page_size: int = 1000) -> Iterator[AuditEntry]:
        """Entries with keys in [low, high], oldest first over every shard, read consistently (the transparency log)."""
        return (_entry(row) for row in ascending(AuditLogModel, account, low, high, page_size, self.shards))
