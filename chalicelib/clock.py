"""Time: one injectable clock, RFC 3339 formatting, and quarter-hour (interval) arithmetic."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]
# RFC 3339 section 5.6 date-time: what `fromisoformat` takes beyond it (basic format, a space for the
# `T`, no offset) is refused, so that every time a client sends reads one way.
RFC3339_RE = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})", re.ASCII)


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def rfc3339(value: datetime) -> str:
    """`2026-11-29T12:00:00Z` (milliseconds kept when present)."""
    naive = value.astimezone(UTC).replace(tzinfo=None)
    return naive.isoformat(timespec="milliseconds" if naive.microsecond else "seconds") + "Z"


def rfc3339_ms(value: datetime) -> str:
    """`2026-11-29T12:00:00.000Z`: fixed width, so strings sort in time order (log sort keys)."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def parse_rfc3339(value: str) -> datetime:
    """Parse an RFC 3339 timestamp; raises ValueError."""
    if not RFC3339_RE.fullmatch(value):
        raise ValueError("not an RFC 3339 date-time")
    # The pattern demands an offset (or Z), so the parsed time is always aware.
    return datetime.fromisoformat(value.upper().replace("Z", "+00:00")).astimezone(UTC)


def next_tick(now: datetime, interval_seconds: int) -> datetime:
    """The first interval boundary strictly after `now` (the quarter hour for 900 s)."""
    epoch = int(now.timestamp())
    return datetime.fromtimestamp((epoch // interval_seconds + 1) * interval_seconds, UTC)


def skew_allowance(interval_seconds: int) -> timedelta:
    """Clock-skew allowance: 5 minutes on the 15-minute schedule, scaled with the interval."""
    return timedelta(seconds=interval_seconds / 3)


def due_window(interval_seconds: int) -> timedelta:
    """How far ahead a tick looks: 60 s on the 15-minute schedule (EventBridge fires within the minute)."""
    return timedelta(seconds=interval_seconds / 15)


def next_refresh_at(created: datetime, interval_seconds: int) -> datetime:
    """When a key made at `created` is next due: the first tick that will not already see it as due."""
    return next_tick(created + due_window(interval_seconds), interval_seconds)


def dynamic_validity(created: datetime, interval_seconds: int) -> tuple[datetime, datetime]:
    """Certificate validity of a dynamic key: skew before creation until the tick after next."""
    tick = next_refresh_at(created, interval_seconds)
    return created - skew_allowance(interval_seconds), tick + timedelta(seconds=interval_seconds)
