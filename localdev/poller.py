"""Feeding the refresh queue to the SQS handler, as Lambda's SQS integration does."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from localdev.events import WORKER_HANDLER, Handler, lambda_context, sqs_event
from localdev.state import MAX_RECEIVES

log = logging.getLogger("localdev")
REFRESH_QUEUE = "rotasign-refresh"
DEAD_LETTER_QUEUE = "rotasign-refresh-dlq"


@dataclass
class Batch:
    """One received batch and whether the handler took it."""

    messages: list[dict[str, Any]]
    ok: bool
    result: Any = None


class QueuePoller:
    """Feeds one queue to an SQS handler: delete after a normal return, leave for redelivery on a raise."""

    def __init__(self, sqs: Any, queue_url: str, handler: Handler, region: str) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.handler = handler
        self.region = region
        attrs = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
        self.queue_arn = str(attrs["Attributes"]["QueueArn"])

    def poll_once(self, wait_seconds: int) -> Batch | None:
        """Receive up to 10 messages and hand them to the handler; None when the queue had nothing."""
        response = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=wait_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages: list[dict[str, Any]] = response.get("Messages", [])
        if not messages:
            return None
        try:
            result = self.handler(sqs_event(messages, self.queue_arn, self.region), lambda_context(WORKER_HANDLER))
        except Exception:
            # As in Lambda: the batch stays on the queue, reappears after the visibility timeout and
            # goes to the dead-letter queue after MAX_RECEIVES attempts.
            log.exception("%s raised; %d message(s) left on the queue for redelivery", WORKER_HANDLER, len(messages))
            return Batch(messages, ok=False)
        self.sqs.delete_message_batch(
            QueueUrl=self.queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
        )
        return Batch(messages, ok=True, result=result)

    def drain(self) -> list[Batch]:
        """Hand every visible message to the handler, batch by batch, until the queue looks empty."""
        batches = []
        while (batch := self.poll_once(0)) is not None:
            batches.append(batch)
        return batches


def create_queues(sqs: Any, name: str = REFRESH_QUEUE) -> str:
    """Create the refresh queue and its dead-letter queue (redrive after MAX_RECEIVES); returns the queue URL."""
    dlq_url = sqs.create_queue(QueueName=DEAD_LETTER_QUEUE)["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVES)})
    return str(sqs.create_queue(QueueName=name, Attributes={"RedrivePolicy": redrive})["QueueUrl"])
