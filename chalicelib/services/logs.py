"""The audit-log and signature-log queries: every filter served by the most selective index, never a scan.

Index choice (first match wins; the other filters become a FilterExpression):

audit log      resource_id → by_resource; type+action → by_type_action; actor → by_actor;
               type → by_type; action → by_action; otherwise the account's partition of the table.
signature log  keypair_id → by_keypair_id; keypair_alias → by_alias; signer → by_signer;
               status → by_status; otherwise the account's partition of the table.

Every index (and the table) is ranged by `sk` = `<at>#<ulid>`, so `from`/`to` is a key condition and
"newest first" is a reverse key order. Index partition keys start with the account id, so a query can
only ever read the caller's account.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pynamodb.exceptions import PynamoDBException
from pynamodb.expressions.condition import Condition
from pynamodb.models import Model

from chalicelib.clock import parse_rfc3339
from chalicelib.errors import ValidationError
from chalicelib.ids import looks_like_id
from chalicelib.services import pagination
from chalicelib.services.access import Principal
from chalicelib.services.audit import audit_dict
from chalicelib.services.deps import Deps
from chalicelib.services.keypair_rules import ALIAS_RE
from chalicelib.storage.models import AuditLogModel, SignatureLogModel
from chalicelib.storage.paging import Position, page
from chalicelib.storage.tx import storage_error

AUDIT_ROUTE = "audit-logs"
SIGNATURE_ROUTE = "signature-logs"
AUDIT_FILTERS = ("type", "action", "resource_id", "actor", "outcome", "from", "to")
SIGNATURE_FILTERS = ("keypair_alias", "keypair_id", "status", "signer", "from", "to")
OUTCOMES = ("success", "failure")
SIGNATURE_STATUSES = ("success", "failed")
_WORD_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_ACTOR_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
_RESOURCE_RE = re.compile(r"^[A-Za-z0-9_.:/-]{1,200}$")
# DynamoDB reads at most 1 MB per request anyway; with a residual filter, ask for many items per
# request so a sparse filter costs fewer round trips.
_FILTERED_PAGE_SIZE = 500


@dataclass(frozen=True)
class Plan:
    """How one log query runs: which index (None = the table), its partition value, what is filtered."""

    index: str | None
    hash_attr: str
    hash_value: str
    filter: Condition | None
    filtered_by: tuple[str, ...]


@dataclass(frozen=True)
class TimeRange:
    """An inclusive [from, to] range; either end may be open."""

    start: datetime | None
    end: datetime | None

    def key_condition(self, model: type[AuditLogModel] | type[SignatureLogModel]) -> Condition | None:
        """A condition on `sk` covering whole seconds; `contains` trims the sub-second edges."""
        # `rfc3339` omits ".000" for whole seconds, so `...:05Z#` sorts after `...:05.123Z#`: only the
        # 19-character second prefix orders correctly, whatever the sub-second format.
        low = _second(self.start) if self.start else None
        high = _second(self.end) + "~" if self.end else None
        if low and high:
            return model.sk.between(low, high)
        if low:
            return model.sk >= low
        if high:
            return model.sk <= high
        return None

    def contains(self, sort_key: str) -> bool:
        """Whether the entry with this `at#ulid` sort key lies in the range (exactly, to the millisecond)."""
        at = parse_rfc3339(sort_key.split("#", 1)[0])
        return (self.start is None or at >= self.start) and (self.end is None or at <= self.end)

    @property
    def bounded(self) -> bool:
        """Whether either end is set."""
        return self.start is not None or self.end is not None


def _second(value: datetime) -> str:
    """`YYYY-MM-DDTHH:MM:SS`, zero-padded whatever the year (strftime does not pad years below 1000)."""
    return f"{value.year:04d}-{value.month:02d}-{value.day:02d}T{value.hour:02d}:{value.minute:02d}:{value.second:02d}"


def _bad(field: str, message: str) -> ValidationError:
    return ValidationError(message, details={"field": field})


def _check_params(params: dict[str, str], allowed: tuple[str, ...]) -> dict[str, str]:
    """The filter values (without limit/next); raises ValidationError for unknown or empty ones."""
    unknown = sorted(set(params) - {*allowed, "limit", "next"})
    if unknown:
        raise _bad(unknown[0], f"Unknown query parameter {unknown[0]!r}; use {', '.join(allowed)}, limit, next.")
    filters = {k: params[k] for k in sorted(params) if k not in ("limit", "next")}
    for field, value in filters.items():
        if not value:
            raise _bad(field, f"{field} needs a value; leave it out to not filter on it.")
    return filters


def _match(field: str, value: str, pattern: re.Pattern[str], what: str) -> str:
    # fullmatch: `$` in the patterns would also accept a trailing newline.
    if not pattern.fullmatch(value):
        raise _bad(field, f"{field} must be {what}.")
    return value


def _is_id(value: str, prefix: str) -> bool:
    return looks_like_id(value, prefix) and not value.endswith("\n")


def _choice(field: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise _bad(field, f"{field} must be one of {', '.join(choices)}.")
    return value


def parse_time_range(filters: dict[str, str]) -> TimeRange:
    """`from` and `to` (RFC 3339, both inclusive); raises ValidationError when malformed or reversed."""
    bounds: dict[str, datetime | None] = {}
    for field in ("from", "to"):
        raw = filters.get(field)
        if raw is None:
            bounds[field] = None
            continue
        try:
            bounds[field] = parse_rfc3339(raw)
        except (ValueError, OverflowError):  # OverflowError: year 1 or 9999 pushed out of range by an offset
            raise _bad(field, f"{field} must be an RFC 3339 time such as 2026-11-29T12:00:00Z.") from None
    start, end = bounds["from"], bounds["to"]
    if start is not None and end is not None and start > end:
        raise _bad("from", "from must not be later than to.")
    return TimeRange(start, end)


def _and(conditions: list[Condition]) -> Condition | None:
    result: Condition | None = None
    for condition in conditions:
        result = condition if result is None else result & condition
    return result


def audit_plan(account: str, filters: dict[str, str]) -> Plan:
    """The index and residual filter for an audit-log query (filters already validated)."""
    m = AuditLogModel
    kind, action = filters.get("type"), filters.get("action")
    resource, actor = filters.get("resource_id"), filters.get("actor")
    # One resource has few entries; type+action next (the documented refresh query); then the actor
    # (a user's own entries); type or action alone are broad but still narrower than the partition.
    if resource is not None:
        index, attr, value, served = "by_resource", "k_resource", f"{account}#{resource}", {"resource_id"}
    elif kind is not None and action is not None:
        index, attr, value, served = "by_type_action", "k_type_action", f"{account}#{kind}#{action}", {"type", "action"}
    elif actor is not None:
        index, attr, value, served = "by_actor", "k_actor", f"{account}#{actor}", {"actor"}
    elif kind is not None:
        index, attr, value, served = "by_type", "k_type", f"{account}#{kind}", {"type"}
    elif action is not None:
        index, attr, value, served = "by_action", "k_action", f"{account}#{action}", {"action"}
    else:
        index, attr, value, served = None, "account", account, set()
    columns = {"type": m.type, "action": m.action, "resource_id": m.resource_id, "actor": m.actor, "outcome": m.outcome}
    residual = [f for f in ("type", "action", "resource_id", "actor", "outcome") if f in filters and f not in served]
    return Plan(index, attr, value, _and([columns[f] == filters[f] for f in residual]), tuple(residual))


def signature_plan(account: str, filters: dict[str, str]) -> Plan:
    """The index and residual filter for a signature-log query (filters already validated)."""
    m = SignatureLogModel
    alias = filters.get("keypair_alias")
    alias_key = f"{account}#{alias.lower()}" if alias is not None else None
    if "keypair_id" in filters:
        index, attr, value, served = "by_keypair_id", "k_keypair_id", f"{account}#{filters['keypair_id']}", "keypair_id"
    elif alias_key is not None:
        index, attr, value, served = "by_alias", "k_alias", alias_key, "keypair_alias"
    elif "signer" in filters:
        index, attr, value, served = "by_signer", "k_signer", f"{account}#{filters['signer']}", "signer"
    elif "status" in filters:
        index, attr, value, served = "by_status", "k_status", f"{account}#{filters['status']}", "status"
    else:
        index, attr, value, served = None, "account", account, ""
    # The alias is compared through k_alias, which holds it in lower case: aliases are unique
    # case-insensitively, so `Release` and `release` name the same keypair.
    columns: dict[str, Condition] = {
        "keypair_id": m.keypair_id == filters.get("keypair_id", ""),
        "keypair_alias": m.k_alias == (alias_key or ""),
        "signer": m.signer == filters.get("signer", ""),
        "status": m.status == filters.get("status", ""),
    }
    residual = [f for f in ("keypair_id", "keypair_alias", "signer", "status") if f in filters and f != served]
    return Plan(index, attr, value, _and([columns[f] for f in residual]), tuple(residual))


def signature_dict(item: SignatureLogModel) -> dict[str, Any]:
    """The API.md form of a signature-log entry."""
    return {
        "id": item.id,
        "signed_at": item.signed_at,
        "status": item.status,
        "signer": item.signer,
        "keypair_id": item.keypair_id,
        "keypair_alias": item.keypair_alias,
        "keypair_type": item.keypair_type,
        "key_id": item.key_id,
        "generation": int(item.generation) if item.generation is not None else None,
        "algorithm": item.algorithm,
        "sig_alg": item.sig_alg,
        "signature_type": item.signature_type,
        "hash_algorithm": item.hash_algorithm,
        "hash": item.hash,
        "signature": item.signature,
        "file_name": item.file_name,
        "tool": item.tool,
        "client_ip": item.client_ip,
        "error": item.error,
    }


class LogService:
    """Reads the audit and signature logs of the caller's account; it never writes or changes an entry."""

    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    def audit(self, principal: Principal, params: dict[str, str]) -> dict[str, Any]:
        """GET /audit-logs; raises ValidationError or InvalidPaginationToken."""
        filters = _check_params(params, AUDIT_FILTERS)
        for field in ("type", "action"):
            if field in filters:
                _match(field, filters[field], _WORD_RE, "a lower-case word such as dynamic or refresh")
        if "actor" in filters:
            _match("actor", filters["actor"], _ACTOR_RE, "a user id or a system actor such as system:scheduler")
        if "resource_id" in filters:
            _match("resource_id", filters["resource_id"], _RESOURCE_RE, "an object id")
        if "outcome" in filters:
            _choice("outcome", filters["outcome"], OUTCOMES)
        plan = audit_plan(principal.account, filters)
        return self._list(principal, params, AUDIT_ROUTE, filters, AuditLogModel, plan, audit_dict)

    def signatures(self, principal: Principal, params: dict[str, str]) -> dict[str, Any]:
        """GET /signature-logs; raises ValidationError or InvalidPaginationToken."""
        filters = _check_params(params, SIGNATURE_FILTERS)
        if "keypair_id" in filters and not _is_id(filters["keypair_id"], "kp"):
            raise _bad("keypair_id", "keypair_id must be a keypair id (kp_...).")
        if "keypair_alias" in filters:
            _match("keypair_alias", filters["keypair_alias"], ALIAS_RE,
                   "1 to 64 letters, digits, dots, dashes or underscores")
        if "signer" in filters and not _is_id(filters["signer"], "usr"):
            raise _bad("signer", "signer must be a user id (usr_...).")
        if "status" in filters:
            _choice("status", filters["status"], SIGNATURE_STATUSES)
        plan = signature_plan(principal.account, filters)
        return self._list(principal, params, SIGNATURE_ROUTE, filters, SignatureLogModel, plan, signature_dict)

    def _list(
        self,
        principal: Principal,
        params: dict[str, str],
        route: str,
        filters: dict[str, str],
        model: type[AuditLogModel] | type[SignatureLogModel],
        plan: Plan,
        render: Callable[[Any], dict[str, Any]],
    ) -> dict[str, Any]:
        limit = pagination.parse_limit(params.get("limit"))
        window = parse_time_range(filters)
        key = self.deps.settings.token_key
        start: Position | None = None
        if params.get("next"):
            start = pagination.open_token(key, params["next"], principal.account, route, filters)
        source: Any = getattr(model, plan.index) if plan.index else model
        key_condition = window.key_condition(model)
        page_size = _FILTERED_PAGE_SIZE if plan.filter is not None else min(limit + 1, pagination.MAX_LIMIT)

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
        try:
            items, position = page(run, limit, start, key_attrs)
        except PynamoDBException as exc:
            raise storage_error(exc) from exc
        token = pagination.seal(key, principal.account, route, filters, position) if position else None
        return {"items": [render(item) for item in items], "next": token}


def _within(items: Iterable[Model], window: TimeRange) -> Iterator[Model]:
    """Drop the entries of the range's edge seconds that lie outside it to the millisecond."""
    for item in items:
        if window.contains(item.sk):  # type: ignore[attr-defined]
            yield item
