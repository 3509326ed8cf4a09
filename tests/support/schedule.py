"""The scheduled tick and its fan-out, driven through Chalice's test client as EventBridge and SQS would."""

from __future__ import annotations

import json
from typing import Any

REFRESH_QUEUE = "rotasign-refresh"


def fire_tick(client: Any) -> dict[str, Any]:
    """Invoke the scheduled function once; its result (`due_shards`, `slices`, `swept`, `lag_seconds`)."""
    event = client.events.generate_cw_event(source="aws.events", detail_type="Scheduled Event", detail={},
                                            resources=["arn:aws:events:rule/tick"])
    payload: dict[str, Any] = client.lambda_.invoke("refresh_tick", event).payload
    return payload


def is_slice(body: str) -> bool:
    """Whether a queue message body is a slice message (the fan-out's middle stage)."""
    data = json.loads(body)
    return isinstance(data, dict) and "slice" in data


def run_slices(client: Any, sqs: Any, url: str, queue: str = REFRESH_QUEUE) -> int:
    """Feed every slice message on the queue to the worker until none is left; returns how many ran.

    Refresh messages are left on the queue (visible again) for the test to read.
    """
    ran = 0
    while True:
        received: list[dict[str, Any]] = []
        while got := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=300,
                                         WaitTimeSeconds=0).get("Messages", []):
            received += got
        slices = [m for m in received if is_slice(m["Body"])]
        for message in slices:
            event = client.events.generate_sqs_event(message_bodies=[message["Body"]], queue_name=queue)
            client.lambda_.invoke("refresh_worker", event)
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        for message in received:
            if not is_slice(message["Body"]):
                sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"],
                                              VisibilityTimeout=0)
        ran += len(slices)
        if not slices:
            return ran


def tick(client: Any, sqs: Any, url: str) -> dict[str, Any]:
    """A tick and its slices: afterwards the queue holds the refresh messages. Returns the tick's result."""
    result = fire_tick(client)
    run_slices(client, sqs, url)
    return result
