"""DynamoDB failures become domain errors here, and only here."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.exceptions import PynamoDBException

from chalicelib.errors import Conflict, RotasignError, StorageUnavailable, Throttled

THROTTLING = frozenset({
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "LimitExceededException",
})
FAILURES: tuple[type[Exception], ...] = (PynamoDBException, BotoCoreError, ClientError)

P = ParamSpec("P")
R = TypeVar("R")


def error_code(exc: BaseException) -> str | None:
    """The DynamoDB error code behind a PynamoDB or botocore exception, if there is one."""
    if isinstance(exc, PynamoDBException):
        # PynamoDB's own `cause_response_code` raises AttributeError when the cause has no response
        # (a dropped connection): read the code off the botocore error, if that is what the cause is.
        return error_code(exc.cause) if isinstance(exc.cause, ClientError) else None
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code") or "") or None
    return None


def translate(exc: BaseException) -> RotasignError:
    """The domain error for a storage failure: a failed condition is a Conflict, throttling 429, else 503."""
    if isinstance(exc, RotasignError):
        return exc
    if error_code(exc) == "ConditionalCheckFailedException":
        return Conflict()
    if error_code(exc) in THROTTLING:
        return Throttled("Storage is throttling requests; retry later.")
    return StorageUnavailable()


def guarded(fn: Callable[P, R]) -> Callable[P, R]:
    """Decorate a repository method: storage failures leave it as domain errors."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except FAILURES as exc:
            raise translate(exc) from exc

    return wrapper
