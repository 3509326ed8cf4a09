"""The packaged policy grants every DynamoDB action the code performs, on the table it performs it on.

The least-privilege checker (test_template.py) fails on too much; this fails on too little: a workload
that goes through every kind of write and read the service makes (bootstrap, identity, keypairs, single,
batch and windowed signatures, refreshes through the queue, the tick, checkpoints, proofs, deletes) is
recorded at the botocore boundary, and each (action, table) must be allowed by a statement of the policy
`make package` generates for the role that makes it: the scheduled tick's (the checkpointer's) for what the
tick does, every other function's for the rest. Moto does not enforce IAM, so without this a missing grant
would show only in AWS.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from tests.support.api import Api, digest_body, make_account

EC = {"type": "static", "algorithm": "ECDSA", "curve": "P-256", "storage": "disk"}
TRANSACT = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem", "ConditionCheck": "ConditionCheckItem"}


def dynamodb_actions(operation: str, params: dict[str, Any]) -> set[tuple[str, str]]:
    """The IAM (action, table name) pairs one DynamoDB API call needs."""
    if operation == "TransactWriteItems":
        return {(f"dynamodb:{TRANSACT[kind]}", body["TableName"])
                for item in params["TransactItems"] for kind, body in item.items()}
    if operation == "TransactGetItems":
        return {("dynamodb:GetItem", item["Get"]["TableName"]) for item in params["TransactItems"]}
    if operation in ("BatchGetItem", "BatchWriteItem"):
        return {(f"dynamodb:{operation}", table) for table in params["RequestItems"]}
    return {(f"dynamodb:{operation}", params["TableName"])}


@dataclass
class Recorded:
    """(action, table name) of the DynamoDB calls made, by the role making them ("app" or "checkpointer")."""

    role: str = "app"
    calls: dict[str, set[tuple[str, str]]] = field(default_factory=lambda: {"app": set(), "checkpointer": set()})


@pytest.fixture
def recorded(aws: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Recorded]:
    """Every DynamoDB call made while the test runs, filed under the role the test says is calling."""
    from botocore.client import BaseClient

    found = Recorded()
    real = BaseClient._make_api_call

    def record(self: Any, operation: str, params: dict[str, Any]) -> Any:
        if self.meta.service_model.service_name == "dynamodb":
            found.calls[found.role].update(dynamodb_actions(operation, params))
        return real(self, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", record)
    yield found


def allowed(policy: dict[str, Any], action: str, table_logical_id: str) -> bool:
    """Whether a statement allows `action` on the table (the table's own ARN, by its template id)."""
    for statement in policy["Statement"]:
        targets = {r["Fn::GetAtt"][0] for r in statement["Resource"] if isinstance(r, dict) and "Fn::GetAtt" in r}
        if action in statement["Action"] and table_logical_id in targets:
            return True
    return False


def workload(client: Any, services: Any, recorded: Recorded) -> None:
    """A bit of everything the service writes and reads in DynamoDB."""
    from chalicelib.clock import rfc3339, utc_now
    from chalicelib.services.scheduler import run_tick

    account = make_account()
    admin = Api(client, account)
    admin.ok("PATCH", "/account", {"teams_enabled": True})
    user = admin.new_user("dev", roles=("developer",))
    group = admin.ok("POST", "/groups", {"name": "g", "member_ids": [user.user_id]}, 201)
    team = admin.ok("POST", "/teams", {"name": "t", "member_ids": [user.user_id]}, 201)
    admin.ok("POST", "/keypair-profiles", {"name": "p", "mode": "fixed", "algorithm": "EdDSA",
                                           "team_ids": [team["id"]]}, 201)
    static = admin.ok("POST", "/keypairs", {"alias": "static", **EC}, 201)
    dynamic = admin.ok("POST", "/keypairs", {"alias": "dynamic", **EC, "type": "dynamic"}, 201)
    single = admin.ok("POST", "/keypairs", {"alias": "single", "type": "dynamic", "algorithm": "EdDSA",
                                            "refresh_after_sign": True}, 201)
    offline = admin.ok("POST", "/keypairs", {"alias": "offline", **EC, "status": "offline"}, 201)
    now = utc_now()
    admin.ok("POST", "/release-windows", {"name": "w", "keypair_ids": [offline["id"]], "max_signatures": 5,
                                          "starts_at": rfc3339(now), "ends_at": rfc3339(now + timedelta(hours=1))},
             201)
    for kp in (static, dynamic, single, offline):
        admin.ok("POST", f"/keypairs/{kp['id']}/sign", digest_body(kp["alias"].encode()))
    admin.ok("POST", f"/keypairs/{static['id']}/sign", {"items": [digest_body(b"a"), digest_body(b"b")]})
    admin.ok("POST", f"/keypairs/{dynamic['id']}/refresh")
    Api(client, user).call("POST", f"/keypairs/{offline['id']}/sign", digest_body(b"refused"))  # audited refusal
    key_id = account.api_key.split("_")[1]
    wrong_secret = f"rsk_{key_id}_{'a' * 52}"
    client.http.get("/api/v1/me", headers={"X-API-Key": wrong_secret})  # a failed authentication, audited
    for route in ("/audit-logs?type=dynamic", "/signature-logs?keypair_alias=static", f"/keypairs/{dynamic['id']}"
                  "/generations", "/keypairs?type=dynamic", "/users", "/groups", "/teams", "/keypair-profiles",
                  "/release-windows"):
        admin.ok("GET", route)
    # The quarter-hour tick a day ahead (every dynamic keypair due), its queue drained by the worker.
    later = now + timedelta(days=1)
    recorded.role = "checkpointer"  # the scheduled tick's role
    run_tick(services, later)
    recorded.role = "app"
    import boto3

    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName=services.deps.settings.refresh_queue_name)["QueueUrl"]
    for _ in range(20):
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"]).get("Messages")
        if not messages:
            break
        records = [{"body": m["Body"], "messageId": m["MessageId"], "attributes": m["Attributes"]} for m in messages]
        services.queue.handle_records(records)
        for m in messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    entry = admin.ok("GET", "/signature-logs?limit=1")["items"][0]["id"]
    admin.ok("GET", f"/signature-logs/{entry}/proof")
    admin.ok("GET", "/audit-logs/consistency?from=1")
    admin.ok("PATCH", f"/groups/{group['id']}", {"name": "renamed"})
    admin.ok("DELETE", f"/keypairs/{static['id']}", status=204)
    admin.ok("DELETE", f"/users/{user.user_id}", status=204)


def test_the_policy_allows_every_dynamodb_call_the_code_makes(client: Any, services: Any, recorded: Recorded) -> None:
    from chalicelib.storage.tables import MODELS
    from deploy.template import app_functions, policy, table_id

    workload(client, services, recorded)
    settings = services.deps.settings
    by_name = {settings.table_name(model): model for model in MODELS}
    missing = []
    for role, calls in recorded.calls.items():
        needed = {(action, by_name[name]) for action, name in calls if name in by_name}
        document = policy(settings, app_functions(), checkpointer=role == "checkpointer")
        missing += sorted(f"{role}: {action} on {table}" for action, table in needed
                          if not allowed(document, action, table_id(table)))
    app_tables = {by_name[name] for _, name in recorded.calls["app"] if name in by_name}
    assert app_tables >= {"keypairs", "signature_log", "audit_log", "transparency", "release_windows", "teams",
                          "groups"}, "the workload reached too little"
    assert ("dynamodb:PutItem", settings.table_name("transparency")) in recorded.calls["checkpointer"]
    assert missing == [], "the packaged policy lacks: " + ", ".join(missing)


def test_only_the_checkpointer_writes_the_trees_and_no_role_rewrites_a_log(aws: Any) -> None:
    """The trees: read by every role, written only by the checkpointer's; the logs: put, never updated or deleted."""
    from chalicelib.settings import get_settings
    from deploy.template import app_functions, policy, table_id

    app = policy(get_settings(), app_functions())
    checkpointer = policy(get_settings(), app_functions(), checkpointer=True)
    tree = table_id("transparency")
    for action in ("dynamodb:PutItem", "dynamodb:BatchWriteItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"):
        assert not allowed(app, action, tree), action
    assert allowed(app, "dynamodb:Query", tree) and allowed(app, "dynamodb:BatchGetItem", tree)
    assert allowed(checkpointer, "dynamodb:BatchWriteItem", tree) and allowed(checkpointer, "dynamodb:PutItem", tree)
    assert not allowed(app, "dynamodb:Scan", table_id("accounts"))
    for document in (app, checkpointer):
        for log in ("audit_log", "signature_log"):
            assert allowed(document, "dynamodb:PutItem", table_id(log))
            assert not allowed(document, "dynamodb:UpdateItem", table_id(log))
            assert not allowed(document, "dynamodb:DeleteItem", table_id(log))
