"""The account's log key: made at bootstrap (disk or HSM), or on first use for accounts made before the log existed.

Checkpoints signed with it are opened with the outside verifier (tests/support/tlog) using the public key
the trust route publishes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from chalicelib.domain.transparency import origin
from chalicelib.services.container import Deps, get_services
from chalicelib.services.log_keys import log_key_ref
from chalicelib.storage.connection import client as dynamodb
from chalicelib.storage.tables import KeyMaterialModel
from tests.support import tlog
from tests.support.api import Account, cas_on_the_hsm, make_account

LATER = datetime.now(UTC) + timedelta(days=1)


def made_before_the_log(services: Any, account: Account, *, keep_hsm_key: bool = True) -> None:
    """Make an account look as it did before the transparency log: no log key recorded (or kept on disk)."""
    dynamodb().update_item(TableName=services.deps.settings.table_name("accounts"), Key={"id": {"S": account.id}},
                           UpdateExpression="REMOVE log_public_key_pem")
    KeyMaterialModel(log_key_ref(account.id)).delete()  # nothing to delete for an HSM account
    if not keep_hsm_key and services.deps.store.accounts.get(account.id).ca_storage == "hsm":
        services.deps.hsm().destroy(log_key_ref(account.id))
    services.accounts.forget(account.id)


def published_key(client: Any, account: Account) -> str:
    return str(json.loads(client.http.get(f"/api/v1/trust/{account.id}").body)["log_public_key"])


def checkpoint_and_open(services: Any, client: Any, account: Account) -> str:
    """Checkpoint the account, open its audit checkpoint with the key the trust route publishes; returns that key."""
    services.checkpointer.run_account(account.id, LATER)
    public_pem = published_key(client, account)
    state = services.deps.store.trees.state(account.id, "audit")
    opened = tlog.open_checkpoint(state.checkpoint, origin(account.id, "audit"), public_pem)
    assert opened.size == state.size >= 3  # the bootstrap's entries
    return public_pem


def test_bootstrap_makes_the_log_key_sealed_on_disk(client: Any, services: Any, account: Account) -> None:
    pem = published_key(client, account)
    assert KeyMaterialModel.get(log_key_ref(account.id)).key_ref == log_key_ref(account.id)
    assert checkpoint_and_open(services, client, account) == pem


def test_an_account_made_before_the_log_gets_its_key_on_first_use(client: Any, services: Any, account: Account) -> None:
    made_before_the_log(services, account)
    assert json.loads(client.http.get(f"/api/v1/trust/{account.id}").body)["log_public_key"] is None
    pem = checkpoint_and_open(services, client, account)
    assert services.deps.store.accounts.get(account.id).log_public_key == pem
    services.checkpointer.run_account(account.id, LATER + timedelta(minutes=15))
    assert published_key(client, account) == pem  # made once, then reused


def test_racing_first_uses_all_end_with_the_one_recorded_key(services: Any, account: Account) -> None:
    made_before_the_log(services, account)
    stale = services.deps.store.accounts.get(account.id)
    with ThreadPoolExecutor(3) as pool:
        got = list(pool.map(lambda _: services.log_keys.ensure(stale).log_public_key, range(3)))
    recorded = services.deps.store.accounts.get(account.id).log_public_key
    assert recorded and got == [recorded] * 3
    signer = services.log_keys.signer(services.deps.store.accounts.get(account.id))
    assert signer.key.public_key().public_bytes(serialization.Encoding.PEM,
                                                serialization.PublicFormat.SubjectPublicKeyInfo).decode() == recorded


@pytest.fixture
def hsm_deps(aws: dict[str, str]) -> Iterator[Deps]:
    """This test runs with `ca_storage=hsm`: new accounts keep their CA, TSA and log keys on the token."""
    with cas_on_the_hsm() as deps:
        yield deps


def test_on_the_hsm_the_log_key_is_a_token_key(client: Any, hsm_deps: Deps) -> None:
    services = get_services()
    account = make_account()
    assert hsm_deps.hsm().list_refs(log_key_ref(account.id)) == [log_key_ref(account.id)]
    with pytest.raises(KeyMaterialModel.DoesNotExist):
        KeyMaterialModel.get(log_key_ref(account.id))
    token_pem = hsm_deps.hsm().load(account.id, log_key_ref(account.id), None).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    assert published_key(client, account) == token_pem
    assert checkpoint_and_open(services, client, account) == token_pem


@pytest.mark.parametrize("token_key_left", [True, False])
def test_on_the_hsm_first_use_adopts_a_key_left_on_the_token_or_makes_one(
    client: Any, hsm_deps: Deps, token_key_left: bool
) -> None:
    services = get_services()
    account = make_account()
    left = published_key(client, account)
    made_before_the_log(services, account, keep_hsm_key=token_key_left)
    pem = checkpoint_and_open(services, client, account)
    assert (pem == left) is token_key_left
    assert hsm_deps.hsm().list_refs(log_key_ref(account.id)) == [log_key_ref(account.id)]
