"""Audit entries: structured records of every state change, written in the change's transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from chalicelib.clock import rfc3339, rfc3339_ms
from chalicelib.ids import ulid
from chalicelib.storage.models import AuditLogModel

SCHEDULER = "system:scheduler"


@dataclass(frozen=True)
class Actor:
    """Who did something, from where."""

    account: str
    actor: str
    source_ip: str | None = None


def log_sort_key(at: datetime) -> str:
    """`at#ulid`: time-ordered and unique, so a conditional put never overwrites an entry."""
    return f"{rfc3339_ms(at)}#{ulid(int(at.timestamp() * 1000))}"


def audit_item(
    who: Actor,
    at: datetime,
    *,
    type: str,
    action: str,
    resource_id: str | None = None,
    resource_alias: str | None = None,
    outcome: str = "success",
    error: str | None = None,
    details: dict[str, Any] | None = None,
    retention_days: int = 0,
) -> AuditLogModel:
    """Build one audit entry (save it with `AuditLogModel.sk.does_not_exist()`)."""
    sk = log_sort_key(at)
    return AuditLogModel(
        who.account,
        sk,
        id=f"log_{sk.split('#')[1]}",
        at=rfc3339(at),
        actor=who.actor,
        type=type,
        action=action,
        resource_id=resource_id,
        resource_alias=resource_alias,
        outcome=outcome,
        error=error,
        details=details or {},
        source_ip=who.source_ip,
        expires=(at + timedelta(days=retention_days)) if retention_days > 0 else None,
        k_type_action=f"{who.account}#{type}#{action}",
        k_type=f"{who.account}#{type}",
        k_action=f"{who.account}#{action}",
        k_resource=f"{who.account}#{resource_id}" if resource_id else None,
        k_actor=f"{who.account}#{who.actor}",
    )


def write_audit(item: AuditLogModel) -> None:
    """Write one entry on its own (for events with no other state change)."""
    item.save(condition=AuditLogModel.sk.does_not_exist())


def audit_dict(item: AuditLogModel) -> dict[str, Any]:
    """The API.md form of an audit entry."""
    return {
        "id": item.id,
        "at": item.at,
        "actor": item.actor,
        "type": item.type,
        "action": item.action,
        "resource_id": item.resource_id,
        "resource_alias": item.resource_alias,
        "outcome": item.outcome,
        "error": item.error,
        "details": dict(item.details.as_dict() if hasattr(item.details, "as_dict") else item.details),
        "source_ip": item.source_ip,
    }

