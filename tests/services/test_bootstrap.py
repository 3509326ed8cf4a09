"""The bootstrap: one account with its CAs, TSA and first admin; the admin's key shown once, never logged."""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.errors import ValidationError
from chalicelib.services.accounts import AccountExists, bootstrap_account
from chalicelib.storage.tables import (
    AccountModel,
    AccountNameClaim,
    ApiKeyModel,
    AuditLogModel,
    KeyMaterialModel,
    UserModel,
)
from chalicelib.structured_logging import JsonFormatter


class Capture(logging.Handler):
    """Keeps every record of the root and `rotasign` loggers at DEBUG while installed."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def text(self) -> str:
        """Every record as the JSON formatter, a plain formatter and repr would show it."""
        plain = logging.Formatter("%(message)s")
        return "\n".join(
            f"{JsonFormatter().format(r)}\n{plain.format(r)}\n{r.args!r}\n{r.__dict__!r}" for r in self.records
        )


def capture_points() -> list[logging.Logger]:
    """The root logger and every logger that does not propagate to it (`rotasign`, `rotasign.metrics`, ...)."""
    known = logging.root.manager.loggerDict.values()
    quiet = [lg for lg in known if isinstance(lg, logging.Logger) and not lg.propagate]
    return [logging.getLogger(), logging.getLogger("rotasign"), *[lg for lg in quiet if lg.name != "rotasign"]]


@pytest.fixture
def logs() -> Iterator[Capture]:
    """Capture all log records (root and the non-propagating `rotasign` logger) at DEBUG."""
    capture = Capture()
    loggers = capture_points()
    saved = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(capture)
        lg.setLevel(logging.DEBUG)
    yield capture
    for lg, level in zip(loggers, saved, strict=True):
        lg.removeHandler(capture)
        lg.setLevel(level)


@pytest.fixture
def deps(aws: dict[str, str]) -> Any:
    """This process's dependencies."""
    from chalicelib.services.container import get_deps

    return get_deps()


def unique(prefix: str = "bootco") -> str:
    """A fresh account name."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def me(client: Any, key: str) -> Any:
    """GET /me with a key."""
    return client.http.get("/api/v1/me", headers={"X-API-Key": key})


def test_bootstrap_makes_a_working_admin_and_never_logs_the_key(
    deps: Any, client: Any, logs: Capture
) -> None:
    name = unique()
    result = bootstrap_account(deps, name, "Ada", "ada@example.com")
    response = me(client, result.api_key)
    assert response.status_code == 200
    body = json.loads(response.body)
    assert body["user"] == {"id": result.user_id, "name": "Ada", "roles": ["admin"], "group_ids": [], "team_ids": []}
    assert body["account"]["id"] == result.account_id and body["account"]["name"] == name
    assert body["permissions"] == sorted(
        ["generate_keypair", "view_keypair", "manage_keypair", "sign", "view_audit_log", "manage_users",
         "manage_teams", "manage_profiles", "manage_releases", "manage_account"]
    )
    # The key works for real work, not just /me.
    created = client.http.post(
        "/api/v1/keypairs", headers={"X-API-Key": result.api_key, "Content-Type": "application/json"},
        body=json.dumps({"alias": "first", "type": "static", "algorithm": "EdDSA"}),
    )
    assert created.status_code == 201

    secret = result.api_key.split("_")[2]
    assert logs.records, "nothing was captured"
    assert result.api_key not in logs.text() and secret not in logs.text()
    assert secret.upper() not in logs.text()


def test_bootstrap_stores_only_the_hash_of_the_secret(deps: Any) -> None:
    result = bootstrap_account(deps, unique())
    _, kid, secret = result.api_key.split("_")
    item = ApiKeyModel.get(kid)
    assert item.account == result.account_id and item.user_id == result.user_id
    assert bytes(item.secret_sha256) == hashlib.sha256(secret.encode()).digest()
    assert secret not in json.dumps(item.serialize(), default=repr)
    assert len(secret) == 52  # 256 bits in base32


def test_bootstrap_writes_the_account_its_authorities_and_audit_entries(deps: Any) -> None:
    name = unique()
    result = bootstrap_account(deps, name)
    account = AccountModel.get(result.account_id)
    assert account.name == name and account.ca_storage == "disk"
    assert AccountNameClaim.get(f"name#{name.lower()}").account_id == result.account_id
    assert UserModel.get(result.account_id, result.user_id).roles == ["admin"]
    materials = {m.id for m in KeyMaterialModel.scan(KeyMaterialModel.account == result.account_id)}
    assert materials == {f"{result.account_id}/ca/production", f"{result.account_id}/ca/test",
                         f"{result.account_id}/tsa", f"{result.account_id}/log"}  # the transparency-log key
    entries = {(e.type, e.action, e.actor, e.outcome) for e in AuditLogModel.query(result.account_id)}
    assert entries == {
        ("account", "create", "system:bootstrap", "success"),
        ("user", "create", "system:bootstrap", "success"),
        ("api_key", "create", "system:bootstrap", "success"),
    }


@pytest.mark.parametrize("variant", [str, str.upper, str.title], ids=["same", "upper", "title"])
def test_bootstrap_refuses_an_existing_name(deps: Any, client: Any, variant: Any) -> None:
    name = unique("taken")
    first = bootstrap_account(deps, name)
    accounts_before = sum(1 for _ in AccountModel.scan(attributes_to_get=["id"]))
    with pytest.raises(AccountExists) as refused:
        bootstrap_account(deps, variant(name))
    assert refused.value.status == 409 and refused.value.body()["error"]["code"] == "account_exists"
    assert sum(1 for _ in AccountModel.scan(attributes_to_get=["id"])) == accounts_before
    # The first account is untouched and its key still works.
    assert me(client, first.api_key).status_code == 200


@pytest.mark.parametrize(
    "name", ["", " leading-space", "a" * 101, "semi;colon", "new\nline", "trailing-newline\n", "ünïcode", None, 7]
)
def test_bootstrap_refuses_a_bad_name(deps: Any, name: Any) -> None:
    accounts_before = sum(1 for _ in AccountModel.scan(attributes_to_get=["id"]))
    with pytest.raises(ValidationError):
        bootstrap_account(deps, name)
    assert sum(1 for _ in AccountModel.scan(attributes_to_get=["id"])) == accounts_before


def test_bootstrap_lambda_function(client: Any, logs: Capture) -> None:
    name = unique("lambda")
    response = client.lambda_.invoke("bootstrap", {"account": name, "admin_name": "root"})
    payload = response.payload
    assert payload["api_key"].startswith("rsk_")
    body = json.loads(me(client, payload["api_key"]).body)
    assert body["user"]["id"] == payload["user_id"] and body["user"]["name"] == "root"
    assert body["account"] == {**body["account"], "id": payload["account_id"], "name": name}
    assert payload["api_key"] not in logs.text() and payload["api_key"].split("_")[2] not in logs.text()
    with pytest.raises(AccountExists):
        client.lambda_.invoke("bootstrap", {"account": name})
