"""Faults at the I/O boundary: a botocore hook makes chosen AWS calls fail the way AWS and networks fail."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from botocore.exceptions import ClientError, ConnectionClosedError

# Each failure class a request can meet, as botocore reports it once its own retries are spent.
FAILURES: dict[str, Callable[[str], Exception]] = {
    "throttled": lambda op: ClientError({"Error": {"Code": "ThrottlingException", "Message": "injected"}}, op),
    "capacity": lambda op: ClientError(
        {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "injected"}}, op),
    "internal": lambda op: ClientError({"Error": {"Code": "InternalServerError", "Message": "injected"}}, op),
    "dropped": lambda op: ConnectionClosedError(endpoint_url="https://dynamodb.invalid"),
    "conditional": lambda op: _conditional(op),
}
STATUS = {"throttled": 429, "capacity": 429, "internal": 503, "dropped": 503, "conditional": 503}


def _conditional(op: str) -> Exception:
    if op == "TransactWriteItems":
        return ClientError({"Error": {"Code": "TransactionCanceledException", "Message": "injected"},
                            "CancellationReasons": [{"Code": "ConditionalCheckFailed"}]}, op)
    return ClientError({"Error": {"Code": "ConditionalCheckFailedException", "Message": "injected"}}, op)


@contextmanager
def failing(client: Any, operation: str, failure: str, *, times: int | None = None,
            when: Callable[[dict[str, Any]], bool] | None = None) -> Iterator[list[str]]:
    """Make `operation` on `client` fail with `failure` (`times` times, or always; only when `when(params)`).

    Yields the list of operations it failed, so a test can check that the fault was reached.
    """
    failed: list[str] = []
    uid = f"fault-{uuid.uuid4()}"

    def fail(params: dict[str, Any], **_: Any) -> None:
        if times is not None and len(failed) >= times:
            return
        if when is not None and not when(params):
            return
        failed.append(operation)
        raise FAILURES[failure](operation)

    event = f"before-parameter-build.{client.meta.service_model.endpoint_prefix}.{operation}"
    client.meta.events.register(event, fail, unique_id=uid)
    try:
        yield failed
    finally:
        client.meta.events.unregister(event, unique_id=uid)
