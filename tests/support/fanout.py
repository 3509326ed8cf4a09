"""The refresh fan-out at scale: due keypair rows written directly, and an in-memory refresh queue.

moto's SQS lists every message of a queue on each send and receive (measured here: ~50 ms per
SendMessageBatch once a queue holds a few hundred messages), so a fan-out of 10,000 messages through it
takes hours. `MemoryQueue` stands in at the SQS client boundary with the two calls the scheduler makes
and can refuse entries, as SendMessageBatch does, for fault injection.
"""

from __future__ import annotations

from collections import deque
from typing import Any


def seed_due_keypairs(account: str, count: int, due_at: str, shard: str | None = None) -> list[str]:
    """Write `count` live dynamic keypair rows due at `due_at` in BatchWriteItem calls; returns their ids.

    With `shard`, every id is drawn until it hashes to that due-index shard (a crowded shard).
    """
    from chalicelib.ids import new_id
    from chalicelib.storage.keypairs import due_shard
    from chalicelib.storage.tables import KeypairModel

    ids: list[str] = []
    with KeypairModel.batch_write() as batch:
        while len(ids) < count:
            kp_id = new_id("kp")
            if shard is not None and due_shard(kp_id) != shard:
                continue
            ids.append(kp_id)
            batch.save(KeypairModel(
                account, kp_id, alias=f"due-{kp_id.lower()}", type="dynamic", algorithm="ECDSA", curve="P-256",
                category="production", storage="disk", status="online", access="open", key_id="0" * 64,
                key_ref=f"{kp_id}/1/0", generation=1, public_key="-", created_at=due_at, created_by="seed",
                refreshed_at=due_at, next_refresh_at=due_at, due_shard=due_shard(kp_id), version=1,
            ))
    return ids


class MemoryQueue:
    """A first-in first-out queue behind the SQS client calls the scheduler makes.

    `refuse` entries of the coming SendMessageBatch calls are answered as `Failed` (fault injection).
    """

    def __init__(self) -> None:
        self.bodies: deque[str] = deque()
        self.send_calls = 0
        self.refuse = 0

    def get_queue_url(self, QueueName: str) -> dict[str, str]:  # boto3's parameter names
        return {"QueueUrl": f"memory://{QueueName}"}

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, str]]) -> dict[str, Any]:
        self.send_calls += 1
        ok, failed = [], []
        for entry in Entries:
            if self.refuse > 0:
                self.refuse -= 1
                failed.append({"Id": entry["Id"], "SenderFault": False, "Code": "InternalError"})
            else:
                self.bodies.append(entry["MessageBody"])
                ok.append({"Id": entry["Id"]})
        return {"Successful": ok, "Failed": failed}

    def take(self) -> str | None:
        """The oldest message body, removed; None when empty."""
        return self.bodies.popleft() if self.bodies else None
