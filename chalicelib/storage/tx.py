"""Transactions and DynamoDB failures mapped to domain errors."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from pynamodb.connection import Connection
from pynamodb.exceptions import PynamoDBException, TransactWriteError
from pynamodb.transactions import TransactWrite

from chalicelib.errors import Conflict, RotasignError, StorageUnavailable, Throttled
from chalicelib.settings import get_settings
from chalicelib.storage.models import configure_models, shared_connection

_THROTTLING = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "LimitExceededException",
}


def connection() -> Connection:
    """The shared PynamoDB connection (built from settings on first use)."""
    try:
        return shared_connection()
    except RuntimeError:
        configure_models(get_settings())
        return shared_connection()


def reset_connections() -> None:
    """Build fresh clients for every model (tests that switch endpoints or add botocore handlers)."""
    configure_models(get_settings())


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
    with TransactWrite(connection=connection()) as tx:
        yield tx


def commit(build: Callable[[TransactWrite], None]) -> None:
    """Run `build` into one transaction and commit it."""
    with transaction() as tx:
        build(tx)
