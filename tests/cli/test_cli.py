"""The CLI against the app through Chalice's test client (same requests, no sockets)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import pytest

from rotasign_cli.__main__ import main
from rotasign_cli.client import Client


def chalice_transport(test_client: Any) -> Any:
    """Send the CLI's requests to the in-process app."""

    def send(method: str, url: str, headers: dict[str, str], body: bytes | None) -> tuple[int, bytes]:
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        fn = getattr(test_client.http, method.lower())
        response = fn(path, headers=headers, body=body) if body is not None else fn(path, headers=headers)
        return response.status_code, response.body

    return send


@pytest.fixture
def cli(client: Any, account: Any) -> Client:
    return Client("http://rotasign.test", account.api_key, chalice_transport(client))


def test_keypair_lifecycle_from_the_cli(cli: Client, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keypair", "create", "cli-key", "--type", "static", "--curve", "P-256"], cli) == 0
    created = json.loads(capsys.readouterr().out)
    assert created["alias"] == "cli-key" and created["algorithm"] == "ECDSA"
    assert main(["keypair", "get", "cli-key"], cli) == 0
    assert json.loads(capsys.readouterr().out)["id"] == created["id"]
    assert main(["keypair", "list"], cli) == 0
    assert [kp["id"] for kp in json.loads(capsys.readouterr().out)] == [created["id"]]
    assert main(["keypair", "delete", "cli-key"], cli) == 0
    capsys.readouterr()
    assert main(["keypair", "get", "cli-key"], cli) == 1
    assert "404 not_found" in capsys.readouterr().err


def test_api_errors_exit_1_with_the_code(cli: Client, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keypair", "create", "bad", "--algorithm", "RSA", "--key-size", "1024"], cli) == 1
    assert "400 unsupported_algorithm" in capsys.readouterr().err
