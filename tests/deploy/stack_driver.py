"""Run the app's functions as a deployed stage against what a CloudFormation stack created; prints JSON.

`python -m tests.deploy.stack_driver` with AWS_ENDPOINT_URL pointing at the emulator holding the stack. The
stage's environment comes from .chalice/config.json through Chalice's test client, as Lambda would give it:
bootstrap an account, create a dynamic keypair, sign, page the keypair list, fire the scheduled tick, feed
the refresh queue to the SQS worker until it is empty, sign again.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from datetime import timedelta
from typing import Any

STAGE = "dev"


def main() -> None:
    import boto3
    from chalice.test import Client

    from app import app
    from chalicelib.services.container import get_deps

    digest = base64.b64encode(hashlib.sha256(b"released artifact").digest()).decode()
    out: dict[str, Any] = {"digest": digest}
    with Client(app, stage_name=STAGE) as client:
        boot = client.lambda_.invoke("bootstrap", {"account": "cloudformation"}).payload
        headers = {"X-API-Key": boot["api_key"], "Content-Type": "application/json"}

        def call(method: str, path: str, body: Any = None) -> Any:
            fn = getattr(client.http, method)
            kwargs = {"body": json.dumps(body)} if body is not None else {}
            response = fn(f"/api/v1{path}", headers=headers, **kwargs)
            assert response.status_code < 300, (path, response.status_code, response.body[:300])
            return json.loads(response.body)

        created = call("post", "/keypairs", {"alias": "release", "type": "dynamic", "algorithm": "ECDSA",
                                              "curve": "P-256", "storage": "disk"})
        call("post", "/keypairs", {"alias": "second", "type": "static", "algorithm": "EdDSA"})
        out["created"] = created
        out["before"] = call("post", f"/keypairs/{created['id']}/sign", {"hash": digest})
        first = call("get", "/keypairs?limit=1")
        second = call("get", f"/keypairs?limit=1&next={first['next']}")
        out["pages"] = [first["items"][0]["id"], second["items"][0]["id"]]

        deps = get_deps()
        later = deps.clock() + timedelta(seconds=deps.settings.schedule_seconds + 1)
        deps.clock = lambda: later  # the next quarter hour
        tick = client.events.generate_cw_event(source="aws.events", detail_type="Scheduled Event", detail={},
                                               resources=["arn:aws:events:rule/tick"])
        out["tick"] = client.lambda_.invoke("refresh_tick", tick).payload
        sqs = boto3.client("sqs")
        url = sqs.get_queue_url(QueueName=deps.settings.refresh_queue_name)["QueueUrl"]
        handled = 0
        while got := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages"):
            event = client.events.generate_sqs_event(message_bodies=[m["Body"] for m in got],
                                                     queue_name=deps.settings.refresh_queue_name)
            client.lambda_.invoke("refresh_worker", event)
            for message in got:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            handled += len(got)
        out["messages"] = handled
        out["after"] = call("post", f"/keypairs/{created['id']}/sign", {"hash": digest})
        out["refreshes"] = call("get", f"/audit-logs?type=dynamic&action=refresh&resource_id={created['id']}")["items"]
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
