"""What the deployed policy relies on: the code writes the log tables only with conditional puts of new keys.

IAM can allow PutItem but cannot demand its condition, so the append-only guarantee of the packaged
policy (no UpdateItem or DeleteItem on the log tables) holds only if every put the code makes there
is conditioned on a new key. Every DynamoDB request of a busy session is recorded and checked.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.storage.retention import LOG_TABLES
from tests.support.api import Api


@pytest.fixture
def requests(aws: dict[str, str]) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """Every DynamoDB request the shared client sends meanwhile: (operation, parameters)."""
    from chalicelib.storage.connection import client

    seen: list[tuple[str, dict[str, Any]]] = []

    def record(model: Any, params: dict[str, Any], **_: Any) -> None:
        body = params.get("body") or b"{}"  # the serialized request: DynamoDB speaks JSON
        seen.append((model.name, json.loads(body)))

    events = client().meta.events
    events.register("before-call.dynamodb", record, unique_id="log-writes")
    try:
        yield seen
    finally:
        events.unregister("before-call.dynamodb", unique_id="log-writes")


def log_writes(requests: list[tuple[str, dict[str, Any]]], tables: set[str]) -> list[tuple[str, str | None]]:
    """(operation, condition) of every write that touches a log table; a transaction's items one by one."""
    found: list[tuple[str, str | None]] = []
    for operation, params in requests:
        if operation == "TransactWriteItems":
            for item in params["TransactItems"]:
                [(kind, body)] = item.items()
                if body["TableName"] in tables:
                    found.append((kind, body.get("ConditionExpression")))
        elif operation in ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem") and (
                params.get("TableName") in tables or set(params.get("RequestItems", {})) & tables):
            found.append((operation, params.get("ConditionExpression")))
    return found


def test_every_log_write_is_a_put_of_a_new_key(api: Api, requests: list[tuple[str, dict[str, Any]]]) -> None:
    from chalicelib.settings import get_settings

    tables = {get_settings().table_name(t) for t in LOG_TABLES}
    digest = base64.b64encode(hashlib.sha256(b"artifact").digest()).decode()
    kp = api.ok("POST", "/keypairs", {"alias": "logged", "type": "dynamic", "algorithm": "EdDSA"}, 201)
    api.ok("POST", f"/keypairs/{kp['id']}/sign", {"hash": digest})
    api.ok("POST", f"/keypairs/{kp['id']}/sign", {"items": [{"hash": digest}, {"hash": digest}]})
    assert api.call("POST", f"/keypairs/{kp['id']}/sign", {"hash": "AAAA"}).status_code == 400
    api.ok("PATCH", f"/keypairs/{kp['id']}", {"status": "offline"})
    assert api.call("POST", f"/keypairs/{kp['id']}/sign", {"hash": digest}).status_code == 403
    api.ok("PATCH", f"/keypairs/{kp['id']}", {"status": "online"})
    api.ok("POST", f"/keypairs/{kp['id']}/refresh")
    api.ok("GET", "/audit-logs")
    api.ok("GET", f"/signature-logs?keypair_id={kp['id']}")
    api.ok("DELETE", f"/keypairs/{kp['id']}", status=204)

    writes = log_writes(requests, tables)
    assert len(writes) >= 8  # generate, 3 signatures, a failed one, suspend, sign_denied, refresh, delete
    assert {operation for operation, _ in writes} <= {"PutItem", "Put"}
    assert all(condition and condition.startswith("attribute_not_exists") for _, condition in writes), writes
