"""Lambda-shaped events and handlers: what EventBridge and SQS would hand the app's functions."""

from __future__ import annotations

import importlib
import math
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
TICK_HANDLER = "refresh_tick"
WORKER_HANDLER = "refresh_worker"
LOCAL_ACCOUNT_ID = "123456789012"

Handler = Callable[[dict[str, Any], Any], Any]


def load_handler(name: str) -> Handler | None:
    """A Lambda-form handler of `app.py` by name, or None when the app does not define it (yet)."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    module = importlib.import_module("app")
    handler = getattr(module, name, None)
    return handler if callable(handler) else None


def lambda_context(function_name: str) -> Any:
    """A Lambda context object like the one `chalice local` passes."""
    from chalice.local import LambdaContext

    return LambdaContext(function_name=function_name, memory_size=512, max_runtime_ms=900_000)


def scheduled_event(at: float, region: str, rule: str = TICK_HANDLER) -> dict[str, Any]:
    """The EventBridge event a scheduled rule delivers at `at` (epoch seconds)."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": LOCAL_ACCOUNT_ID,
        "time": datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:events:{region}:{LOCAL_ACCOUNT_ID}:rule/rotasign-local-{rule}"],
        "detail": {},
    }


def sqs_event(messages: list[dict[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    """The event Lambda's SQS integration delivers for a batch of received messages."""
    records = []
    for message in messages:
        attributes = {
            name: {
                "stringValue": value.get("StringValue"),
                "binaryValue": value.get("BinaryValue"),
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": value.get("DataType", "String"),
            }
            for name, value in message.get("MessageAttributes", {}).items()
        }
        records.append(
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": message.get("Attributes", {}),
                "messageAttributes": attributes,
                "md5OfBody": message.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
        )
    return {"Records": records}


def next_boundary(now: float, interval: float) -> float:
    """The first multiple of `interval` seconds since the epoch after `now` (the cron's alignment)."""
    return (math.floor(now / interval) + 1) * interval


def fire_tick(handler: Handler, at: float, region: str) -> Any:
    """Invoke the scheduled handler once, as EventBridge would at `at`; returns what it returned."""
    return handler(scheduled_event(at, region), lambda_context(TICK_HANDLER))
