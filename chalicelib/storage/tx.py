"""Transactions and DynamoDB failures mapped to domain errors."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from pynamodb.connection import Connection
from pynamodb.exceptions import PynamoDBException, TransactWriteError
from pynamodb.transactions import TransactWrite

from chalicelib.errors import Conflict, RotasignError, StorageUnavailable, Throttled
from chalicelib.settings import get_settings

_THROTTLING = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "LimitExceededException",
}
_local = threading.local()


def _connection() -> Connection:
    # One Connection per thread: botocore clients are thread-safe, but PynamoDB keeps the client on
    # the Connection and creates it lazily, which is not.
    conn: Connection | None = getattr(_local, "conn", None)
    region = get_settings().region
    if conn is None or conn.region != region:
        conn = Connection(region=region)
        _local.conn = conn
    return conn


def reset_connections() -> None:
    """Forget this thread's connection (tests that switch endpoints)."""
    _local.conn = None


def cancellation_codes(exc: TransactWriteError) -> list[str | None]:
    """The per-item cancellation codes of a failed transaction (None where the item was fine)."""
    return [reason.code if reason else None for reason in (exc.cancellation_reasons or [])]


def storage_error(exc: PynamoDBException) -> RotasignError:
    """The domain error for a DynamoDB failure that the caller did not expect."""
    code = exc.cause_response_code
    if code in _THROTTLING:
        return Throttled("Storage is throttling requests; retry later.")
    if isinstance(exc, TransactWriteError):
        codes = set(cancellation_codes(exc))
        if codes & _THROTTLING:
            return Throttled("Storage is throttling requests; retry later.")
        if "TransactionConflict" in codes or "ConditionalCheckFailed" in codes:
            return Conflict()
    return StorageUnavailable()


@contextmanager
def transaction() -> Iterator[TransactWrite]:
    """A TransactWriteItems, committed when the block ends; failures propagate as TransactWriteError."""
    with TransactWrite(connection=_connection()) as tx:
        yield tx


def commit(build: Callable[[TransactWrite], None]) -> None:
    """Run `build` into one transaction and commit it."""
    with transaction() as tx:
        build(tx)
