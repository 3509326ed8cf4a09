"""One pagination-token key per deployment: read once per process from its secret, shared by every process."""

from __future__ import annotations

import dataclasses
import json
import secrets
import string
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.services.container import Deps, get_deps, set_deps
from tests.support.api import Account, Api
from tests.support.requests import RequestCounter


def new_secret(value: str | None = None) -> str:
    """A Secrets Manager secret like the deployment's (64 letters and digits); returns its name."""
    import boto3

    name = f"rotasign/test/token-key-{uuid.uuid4().hex[:8]}"
    alphabet = string.ascii_letters + string.digits
    text = value if value is not None else "".join(secrets.choice(alphabet) for _ in range(64))
    boto3.client("secretsmanager").create_secret(Name=name, SecretString=text)
    return name


def process(real: Deps, secret: str | None) -> Deps:
    """What a fresh Lambda process of the deployment holds: its own container, the stage's settings."""
    settings = dataclasses.replace(real.settings, token_key=None, token_key_secret=secret)
    return dataclasses.replace(real, settings=settings, secrets=None, _token_key=None)


@pytest.fixture
def real(aws: dict[str, str]) -> Iterator[Deps]:
    deps = get_deps()
    yield deps
    set_deps(deps)


def first_page(api: Api) -> tuple[list[str], str]:
    for i in range(3):
        api.ok("POST", "/keypairs", {"alias": f"page-{i}", "type": "static", "algorithm": "EdDSA"}, 201)
    page = api.ok("GET", "/keypairs?limit=2")
    assert len(page["items"]) == 2 and page["next"]
    return [kp["id"] for kp in page["items"]], page["next"]


def test_a_next_token_made_by_one_process_opens_in_another(client: Any, account: Account, real: Deps) -> None:
    secret = new_secret()
    api = Api(client, account)
    set_deps(process(real, secret))
    seen, token = first_page(api)

    set_deps(process(real, secret))
    rest = api.ok("GET", f"/keypairs?limit=2&next={token}")
    assert len(rest["items"]) == 1 and rest["next"] is None
    assert rest["items"][0]["id"] not in seen

    # Without the shared key (another deployment's secret, or none: a key per process) the token is refused.
    for other in (process(real, new_secret()), process(real, None)):
        set_deps(other)
        refused = api.call("GET", f"/keypairs?limit=2&next={token}")
        assert refused.status_code == 400
        assert json.loads(refused.body)["error"]["code"] == "invalid_pagination_token"


def test_the_secret_is_read_once_per_process(client: Any, account: Account, real: Deps) -> None:
    secret = new_secret()
    api = Api(client, account)
    deps = process(real, secret)
    deps._secrets()  # the client exists before counting (the counter watches clients alive at its start)
    set_deps(deps)
    with RequestCounter() as counter:
        _, token = first_page(api)
        api.ok("GET", f"/keypairs?limit=2&next={token}")
        api.ok("GET", "/keypairs?limit=1")
    assert counter.of("secretsmanager") == ["GetSecretValue"]


def test_an_unreadable_or_short_secret_is_a_503_that_shows_nothing(client: Any, account: Account,
                                                                     real: Deps) -> None:
    api = Api(client, account)
    short = "tooShortToBeAKey"
    for deps in (process(real, new_secret(short)), process(real, "rotasign/test/no-such-secret")):
        set_deps(deps)
        response = api.call("GET", "/keypairs")
        assert response.status_code == 503
        body = json.loads(response.body)
        assert body["error"]["code"] == "storage_unavailable" and short.encode() not in response.body
        # Nothing is cached after a failure: the next request reads the secret again.
        assert deps._token_key is None
