"""Audit-log and signature-log entries: append-only records, identified by time-ordered keys."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from chalicelib.clock import rfc3339, rfc3339_ms
from chalicelib.ids import looks_like_id, ulid, ulid_ms

SCHEDULER = "system:scheduler"
# The fields of a signature-log entry as the API shows it, after its id (a success adds two more).
SIGNATURE_FIELDS = ("signed_at", "status", "signer", "keypair_id", "keypair_alias", "keypair_type", "key_id",
                    "generation", "algorithm", "sig_alg", "signature_type", "hash_algorithm", "hash", "signature",
                    "file_name", "tool", "client_ip", "error")


@dataclass(frozen=True)
class LogKey:
    """`<at, to the millisecond>#<ulid>`: time-ordered and unique, so a conditional put never overwrites."""

    sort_key: str

    @classmethod
    def new(cls, at: datetime) -> LogKey:
        """A fresh key for an entry made at `at`."""
        return cls(f"{rfc3339_ms(at)}#{ulid(int(at.timestamp() * 1000))}")

    @property
    def entry_id(self) -> str:
        """The entry's public id, `log_<ulid>`."""
        return f"log_{self.sort_key.split('#', 1)[1]}"

    @staticmethod
    def range_of(entry_id: str) -> tuple[str, str] | None:
        """The sort keys an entry id can have (its ULID's millisecond or the next), or None for no log id.

        `new` takes the ULID's time from a float product that may fall one millisecond short of the key's.
        """
        if not looks_like_id(entry_id, "log"):
            return None
        ms = datetime.fromtimestamp(ulid_ms(entry_id[4:]) / 1000, UTC)
        return f"{rfc3339_ms(ms)}#", f"{rfc3339_ms(ms + timedelta(milliseconds=1))}#~"


@dataclass(frozen=True)
class Actor:
    """Who did something, from where."""

    account: str
    actor: str
    source_ip: str | None = None


@dataclass(frozen=True)
class AuditEntry:
    """One structured audit record (docs/api.md "Logs")."""

    account: str
    key: LogKey
    at: str
    actor: str
    type: str
    action: str
    resource_id: str | None = None
    resource_alias: str | None = None
    outcome: str = "success"
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    source_ip: str | None = None
    expires: datetime | None = None

    @property
    def id(self) -> str:
        """`log_<ulid>`."""
        return self.key.entry_id

    def as_dict(self) -> dict[str, Any]:
        """The entry as the API returns it (and as the transparency log hashes it)."""
        return {
            "id": self.id,
            "at": self.at,
            "actor": self.actor,
            "type": self.type,
            "action": self.action,
            "resource_id": self.resource_id,
            "resource_alias": self.resource_alias,
            "outcome": self.outcome,
            "error": self.error,
            "details": self.details,
            "source_ip": self.source_ip,
        }

    @classmethod
    def new(
        cls,
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
        expires: datetime | None = None,
    ) -> AuditEntry:
        """An entry for something `who` did at `at`."""
        return cls(who.account, LogKey.new(at), rfc3339(at), who.actor, type, action, resource_id, resource_alias,
                   outcome, error, details or {}, who.source_ip, expires)


@dataclass(frozen=True)
class SignatureEntry:
    """One signature attempt (docs/api.md "Logs"): a success with its signature, or a refusal with its error."""

    account: str
    key: LogKey
    signed_at: str
    status: str
    signer: str
    keypair_id: str | None = None
    keypair_alias: str | None = None
    keypair_type: str | None = None
    key_id: str | None = None
    generation: int | None = None
    algorithm: str | None = None
    sig_alg: str | None = None
    signature_type: str | None = None
    hash_algorithm: str | None = None
    hash: str | None = None
    signature: str | None = None
    file_name: str | None = None
    tool: str | None = None
    client_ip: str | None = None
    error: str | None = None
    timestamp_token: str | None = None
    certificate_serial: str | None = None
    expires: datetime | None = None

    @property
    def id(self) -> str:
        """`log_<ulid>`."""
        return self.key.entry_id

    def as_dict(self) -> dict[str, Any]:
        """The entry as the API returns it (a success also carries its time-stamp token and certificate serial)."""
        body: dict[str, Any] = {"id": self.id}
        body.update({name: getattr(self, name) for name in SIGNATURE_FIELDS})
        if self.status == "success":
            body["timestamp_token"] = self.timestamp_token
            body["certificate_serial"] = self.certificate_serial
        return body


@dataclass(frozen=True)
class TimeRange:
    """An inclusive [start, end] range of entry times; either end may be open."""

    start: datetime | None = None
    end: datetime | None = None

    @property
    def bounded(self) -> bool:
        """Whether either end is set."""
        return self.start is not None or self.end is not None

    def contains(self, at: datetime) -> bool:
        """Whether `at` lies in the range (to the millisecond)."""
        return (self.start is None or at >= self.start) and (self.end is None or at <= self.end)


@dataclass(frozen=True)
class AuditFilter:
    """The filters of GET /audit-logs (each None when not given)."""

    type: str | None = None
    action: str | None = None
    resource_id: str | None = None
    actor: str | None = None
    outcome: str | None = None
    time: TimeRange = TimeRange()


@dataclass(frozen=True)
class SignatureFilter:
    """The filters of GET /signature-logs (each None when not given)."""

    keypair_id: str | None = None
    keypair_alias: str | None = None
    status: str | None = None
    signer: str | None = None
    time: TimeRange = TimeRange()
