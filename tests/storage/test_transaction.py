"""Transactions name the item that failed by its identity: the error is the one its stager attached."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from chalicelib.errors import AliasTaken, Conflict, NotFound, Throttled
from chalicelib.storage.tables import AccountNameClaim, AliasClaim
from chalicelib.storage.transaction import Transaction, TransactionConflicted
from tests.support.faults import failing


class Named(Exception):
    """An error that says which staged item raised it."""


def claim(name: str) -> AccountNameClaim:
    return AccountNameClaim(f"name#{name}", account_id="acct_test")


def taken(aws: Any) -> str:
    name = f"taken-{uuid.uuid4().hex}"
    claim(name).save()
    return name


@pytest.mark.parametrize("failing_at", [0, 1, 2, 3])
def test_the_failed_item_is_found_wherever_it_stands(aws: Any, failing_at: int) -> None:
    tx = Transaction()
    for index in range(4):
        name = taken(aws) if index == failing_at else f"free-{uuid.uuid4().hex}"
        if index % 2:
            # ConditionChecks are sent first by PynamoDB's own TransactWrite; here they keep their place.
            tx.check(AccountNameClaim, f"name#{name}", condition=AccountNameClaim.id.does_not_exist(),
                     on_fail=lambda i=index: Named(i))
        else:
            tx.put(claim(name), AccountNameClaim.id.does_not_exist(), on_fail=lambda i=index: Named(i))
    with pytest.raises(Named) as raised:
        tx.commit()
    assert raised.value.args == (failing_at,)


def test_nothing_of_a_failed_transaction_is_written(aws: Any) -> None:
    fresh = f"fresh-{uuid.uuid4().hex}"
    tx = Transaction()
    tx.put(claim(fresh), AccountNameClaim.id.does_not_exist())
    tx.put(claim(taken(aws)), AccountNameClaim.id.does_not_exist(), on_fail=lambda: AliasTaken())
    with pytest.raises(AliasTaken):
        tx.commit()
    with pytest.raises(AccountNameClaim.DoesNotExist):
        AccountNameClaim.get(f"name#{fresh}")


def test_an_item_without_its_own_error_is_a_conflict(aws: Any) -> None:
    tx = Transaction()
    tx.put(claim(taken(aws)), AccountNameClaim.id.does_not_exist())
    with pytest.raises(Conflict):
        tx.commit()


@pytest.mark.parametrize("failure", ["throttled", "internal", "dropped"])
def test_storage_failures_are_domain_errors(aws: Any, failure: str) -> None:
    from chalicelib.errors import StorageUnavailable
    from chalicelib.storage.connection import client

    tx = Transaction()
    tx.put(claim(f"free-{uuid.uuid4().hex}"), AccountNameClaim.id.does_not_exist(), on_fail=NotFound)
    with failing(client(), "TransactWriteItems", failure), pytest.raises((Throttled, StorageUnavailable)) as raised:
        tx.commit()
    assert isinstance(raised.value, Throttled) == (failure == "throttled")


def test_a_transaction_conflict_is_told_apart(aws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from botocore.exceptions import ClientError

    from chalicelib.storage.connection import client

    def conflict(**_: Any) -> None:
        raise ClientError({"Error": {"Code": "TransactionCanceledException", "Message": "injected"},
                           "CancellationReasons": [{"Code": "None"}, {"Code": "TransactionConflict"}]},
                          "TransactWriteItems")

    events = client().meta.events
    events.register("before-parameter-build.dynamodb.TransactWriteItems", conflict, unique_id="tx-conflict")
    try:
        tx = Transaction()
        tx.put(AliasClaim("acct", "a", keypair_id="kp"), AliasClaim.alias_key.does_not_exist())
        tx.put(AliasClaim("acct", "b", keypair_id="kp"), AliasClaim.alias_key.does_not_exist())
        with pytest.raises(TransactionConflicted):
            tx.commit()
    finally:
        events.unregister("before-parameter-build.dynamodb.TransactWriteItems", unique_id="tx-conflict")


def test_an_empty_transaction_sends_nothing(aws: Any) -> None:
    from tests.support.requests import RequestCounter

    with RequestCounter() as counter:
        Transaction().commit()
    assert counter.calls == []
