"""Shared fixtures: in-process moto (DynamoDB, KMS, SQS), the Chalice test client, bootstrapped accounts."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.api import Account, Api, make_account

# moto must see fake credentials and no endpoint override before any boto3 client exists.
for _name in [n for n in os.environ if n.startswith("AWS_ENDPOINT_URL")]:
    del os.environ[_name]
os.environ.update(
    AWS_DEFAULT_REGION="us-east-1",
    AWS_REGION="us-east-1",
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_SESSION_TOKEN="testing",
    ROTASIGN_STAGE="test",
    # Few log write shards: moto answers a query ~100x slower than DynamoDB, and the checkpointer reads
    # every shard of every account the suite makes. tests/storage/test_log_shards.py also runs the default.
    ROTASIGN_LOG_SHARDS="4",
)

HSM_PIN = "rotasign-test-pin-1234"
HSM_SO_PIN = "rotasign-test-so-5678"
HSM_LABEL = "rotasign-tests"


@pytest.fixture(scope="session")
def hsm_conf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SoftHSM2 token for this test session (SOFTHSM2_CONF is set for the whole process)."""
    from localdev.softhsm import ensure_token

    conf = ensure_token(tmp_path_factory.mktemp("softhsm"), HSM_LABEL, HSM_PIN, HSM_SO_PIN)
    os.environ["SOFTHSM2_CONF"] = str(conf)
    return conf


@pytest.fixture(scope="session")
def aws(hsm_conf: Path) -> Iterator[dict[str, str]]:
    """moto for the whole session, with every table and a KMS key; settings point at them."""
    from moto import mock_aws

    with mock_aws():
        import boto3

        kms = boto3.client("kms")
        key_id = kms.create_key(Description="rotasign tests")["KeyMetadata"]["KeyId"]
        sqs = boto3.client("sqs")
        sqs.create_queue(QueueName="rotasign-refresh")
        os.environ.update(
            ROTASIGN_KMS_KEY_ID=key_id,
            ROTASIGN_TABLE_PREFIX="rotasign-test-",
            ROTASIGN_HSM_TOKEN_LABEL=HSM_LABEL,
            ROTASIGN_HSM_PIN=HSM_PIN,
        )
        from chalicelib.services.container import set_deps
        from localdev.emulator import serialize_dynamodb
        from localdev.softhsm import find_module

        # DynamoDB applies each request atomically and in isolation; threaded tests need moto to as well.
        serialize_dynamodb()
        os.environ["ROTASIGN_PKCS11_MODULE"] = find_module()
        use_tables("rotasign-test-")
        yield {"kms_key_id": key_id}
        set_deps(None)


_MODULE_TABLES = itertools.count(1)


def use_tables(prefix: str) -> None:
    """Point the settings, the storage and a fresh set of services at (new) tables named with `prefix`."""
    from chalicelib.services.container import set_deps
    from chalicelib.settings import get_settings
    from chalicelib.storage.tables import create_tables

    os.environ["ROTASIGN_TABLE_PREFIX"] = prefix
    get_settings.cache_clear()
    set_deps(None)
    create_tables(get_settings())


@pytest.fixture(scope="module", autouse=True)
def module_tables(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each test module that uses moto gets tables (and services) of its own, dropped after it.

    moto copies each table a transaction touches, to restore it if the transaction fails: a transaction
    costs time in proportion to everything in those tables. With one set of tables for a whole test
    process, half of the API tests' time went to these copies; per module, the tables stay small. It
    also keeps one module's accounts, keypairs and log entries out of another's queries and ticks.
    """
    module = request.node
    if not any("aws" in getattr(item, "fixturenames", ()) for item in request.session.items
               if item.getparent(pytest.Module) is module):
        yield
        return
    request.getfixturevalue("aws")
    use_tables(f"rotasign-test-{next(_MODULE_TABLES)}-")
    yield
    from chalicelib.storage.tables import MODELS

    for model in MODELS.values():
        model.delete_table()


@pytest.fixture
def services(aws: dict[str, str]) -> Any:
    """This process's services."""
    from chalicelib.services.container import get_services

    return get_services()


@pytest.fixture
def account(aws: dict[str, str]) -> Account:
    """A fresh account for one test."""
    return make_account()


@pytest.fixture(scope="module")
def shared_account(aws: dict[str, str]) -> Account:
    """One account shared by the tests of a module (for expensive keys made once)."""
    return make_account()


@pytest.fixture
def client(aws: dict[str, str]) -> Iterator[Any]:
    """Chalice's test client on the app."""
    from chalice.test import Client

    from app import app

    with Client(app, stage_name="local") as c:
        yield c


@pytest.fixture
def api(client: Any, account: Account) -> Api:
    """The API as the fresh account's admin."""
    return Api(client, account)
