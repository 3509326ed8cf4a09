"""The process's one DynamoDB connection, built from settings on first use."""

from __future__ import annotations

import threading
from typing import Any

from pynamodb.connection import Connection

from chalicelib.settings import Settings, get_settings

_shared: Connection | None = None
_lock = threading.Lock()


def configure(settings: Settings) -> Connection:
    """Point every table model at this stage's tables through one new connection (and use it from now on)."""
    from chalicelib.storage.tables import configure_tables

    global _shared
    with _lock:
        _shared = configure_tables(settings)
        return _shared


def connection() -> Connection:
    """The shared PynamoDB connection (configured from `get_settings()` when first needed)."""
    conn = _shared
    if conn is None:
        return configure(get_settings())
    return conn


def client() -> Any:
    """The botocore DynamoDB client behind the shared connection (the hot path calls it directly)."""
    return connection().client


def reset() -> None:
    """Build fresh clients for every table (tests that switch endpoints or add botocore handlers)."""
    configure(get_settings())
