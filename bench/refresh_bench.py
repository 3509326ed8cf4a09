"""Dynamic refresh: refreshes per second beside raw key generation + certificate, and one scheduler tick at scale.

1. Per algorithm and storage (disk; HSM when SoftHSM is installed), the refresh the SQS worker runs for one
   message (read, generate, issue, one TransactWriteItems, destroy the old key) against the raw work it
   cannot avoid, in the same process: generate a key of the same spec in the same backend and issue its
   certificate with the same CA (on the HSM the raw loop also destroys its key, as a refresh does).
   RSA key generation time varies a lot from key to key (prime search), so RSA ratios are noisy.
2. One scheduler tick over 1,000 and then 10,000 due keypairs (rows written directly in batches): the
   index query and BatchGetItems alone ("find"), then find + SendMessageBatch ("tick"), per keypair.
All on in-process moto. Run: `.venv/bin/python bench/refresh_bench.py [seconds per measurement]`.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from common import ALGORITHMS, RequestCounter, print_table, stack

HSM_LABEL, HSM_PIN, HSM_SO_PIN = "rotasign-bench", "bench-pin-1234", "bench-so-5678"


def hsm_env(state_dir: Path) -> str | None:
    """Make a SoftHSM token and point the settings at it; None when SoftHSM is missing."""
    from chalicelib.errors import HsmUnavailable
    from localdev.softhsm import ensure_token, find_module

    try:
        module = find_module()
        conf = ensure_token(state_dir, HSM_LABEL, HSM_PIN, HSM_SO_PIN)
    except (HsmUnavailable, RuntimeError, FileNotFoundError) as exc:
        return f"no HSM ({exc})"
    os.environ.update(SOFTHSM2_CONF=str(conf), ROTASIGN_PKCS11_MODULE=module, ROTASIGN_HSM_TOKEN_LABEL=HSM_LABEL,
                      ROTASIGN_HSM_PIN=HSM_PIN)
    return None


def refresh_rows(s: Any, storage: str, seconds: float) -> list[list[str]]:
    """One row per algorithm: the service's refresh rate beside the raw generate + issue rate."""
    from chalicelib.clock import dynamic_validity
    from chalicelib.keys.algorithms import KeySpec, generate_private_key
    from chalicelib.pki.certificates import issue_keypair_certificate
    from chalicelib.services.container import get_services
    from chalicelib.services.refresh_queue import RefreshMessage

    services = get_services()
    deps = services.deps
    account = services.accounts.get(s.account)
    issuer = services.authorities.get(account, "production")
    rows = []
    for name, spec in ALGORITHMS.items():
        rsa = spec["algorithm"] == "RSA"
        floor = 3 if rsa and storage == "hsm" else (10 if rsa else 30)
        kp = s.keypair(f"refresh-{storage}-{name.replace(' ', '-').lower()}", spec, type="dynamic", storage=storage)
        generation = [int(kp["generation"])]

        def refresh(kp_id: str = kp["id"], generation: list[int] = generation) -> None:
            outcome = services.queue.handle_message(RefreshMessage(s.account, kp_id, generation[0]))
            assert outcome.refreshed
            generation[0] += 1

        refresh()  # warm: this thread's DynamoDB connection, the CA, the account
        key_spec = KeySpec(spec["algorithm"], spec.get("key_size"), spec.get("curve"))

        def raw(label: str, key_spec: KeySpec = key_spec) -> None:
            now = deps.clock()
            if storage == "disk":
                public = generate_private_key(key_spec).public_key()
            else:
                public = deps.hsm().generate(s.account, label, key_spec).public_key
            not_before, not_after = dynamic_validity(now, deps.settings.schedule_seconds)
            issue_keypair_certificate(issuer.key, issuer.certificate, public, alias="raw", account_name=account.name,
                                      category="production", not_before=not_before, not_after=not_after)
            if storage == "hsm":
                deps.hsm().destroy(label)

        # Refresh and raw alternate, so both see the same machine load (other processes share the cores).
        n, elapsed, raw_elapsed = 0, 0.0, 0.0
        with RequestCounter() as counter:
            while n < floor or elapsed + raw_elapsed < 2 * seconds:
                started = time.perf_counter()
                refresh()
                middle = time.perf_counter()
                raw(f"bench-raw/{n}")
                elapsed += middle - started
                raw_elapsed += time.perf_counter() - middle
                n += 1
        m = n
        service, raw_rate = n / elapsed, m / raw_elapsed
        per = 1000 * elapsed / n
        dynamo = 1000 * counter.seconds.get("dynamodb", 0.0) / n
        kms = 1000 * counter.seconds.get("kms", 0.0) / n
        calls = len(counter.of("dynamodb")) / n
        rows.append([
            name, storage, f"{service:,.1f}", f"{raw_rate:,.1f}", f"{service / raw_rate:.3f}", f"{per:.2f}",
            f"{1000 / raw_rate:.2f}", f"{dynamo:.2f}", f"{kms:.2f}", f"{per - 1000 / raw_rate - dynamo - kms:.2f}",
            f"{calls:.0f}", str(n),
        ])
    return rows


def seed_due(account: str, count: int, due_at: str) -> None:
    """Write `count` due dynamic keypair rows directly, in BatchWriteItem calls."""
    from chalicelib.ids import new_id
    from chalicelib.storage.keypairs import DUE_SHARD
    from chalicelib.storage.tables import KeypairModel

    with KeypairModel.batch_write() as batch:
        for _ in range(count):
            kp_id = new_id("kp")
            batch.save(KeypairModel(
                account, kp_id, alias=f"due-{kp_id.lower()}", type="dynamic", algorithm="ECDSA", curve="P-256",
                category="production", storage="disk", status="online", access="open", key_id="0" * 64,
                key_ref=f"{kp_id}/1/0", generation=1, public_key="-", created_at=due_at, created_by="bench",
                refreshed_at=due_at, next_refresh_at=due_at, due_shard=DUE_SHARD, version=1,
            ))


class NullSqs:
    """An SQS client that accepts every message at once: isolates the tick's own work from moto's SQS.

    moto's queue recounts its messages on every send (a property that lists them all), so one tick of
    10,000 messages into moto costs O(n²) there; SQS itself does not behave like that.
    """

    def __init__(self) -> None:
        self.messages = 0

    def get_queue_url(self, QueueName: str) -> dict[str, str]:  # boto3's parameter names
        return {"QueueUrl": f"null://{QueueName}"}

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, str]]) -> dict[str, Any]:
        self.messages += len(Entries)
        return {"Successful": [{"Id": e["Id"]} for e in Entries], "Failed": []}


def tick_rows(s: Any) -> list[list[str]]:
    """Find and enqueue 1,000 then 10,000 due keypairs (the second run includes the first thousand)."""
    import boto3

    from chalicelib.clock import rfc3339
    from chalicelib.services.container import get_services
    from chalicelib.services.scheduler import due_messages, enqueue_due

    deps = get_services().deps
    real_sqs = boto3.client("sqs")
    now = deps.clock()
    due_at = rfc3339((now - timedelta(minutes=1)).replace(microsecond=0))
    rows, seeded = [], 0
    for total in (1_000, 10_000):
        seed_due(s.account, total - seeded, due_at)
        seeded = total
        started = time.perf_counter()
        found = sum(1 for _ in due_messages(deps, now))
        find = time.perf_counter() - started
        null = NullSqs()
        deps.sqs = null
        with RequestCounter() as counter:
            started = time.perf_counter()
            result = enqueue_due(deps, now)
            tick = time.perf_counter() - started
        assert found == result.due == result.enqueued == null.messages == total, (found, result, null.messages)
        calls = counter.calls
        moto_tick = "-"
        if total <= 1_000:
            deps.sqs = real_sqs
            started = time.perf_counter()
            queued = enqueue_due(deps, now).enqueued
            moto_tick = f"{time.perf_counter() - started:.2f}"
            url = real_sqs.get_queue_url(QueueName=deps.settings.refresh_queue_name)["QueueUrl"]
            attrs = real_sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
            assert queued == int(attrs["Attributes"]["ApproximateNumberOfMessages"]) == total
        rows.append([
            f"{total:,}", f"{find:.2f}", f"{1000 * find / total:.3f}", f"{tick:.2f}", f"{1000 * tick / total:.3f}",
            str(sum(1 for _, op in calls if op == "Query")), str(sum(1 for _, op in calls if op == "BatchGetItem")),
            str(total // 10), moto_tick,
        ])
    deps.sqs = real_sqs
    return rows


def main(seconds: float = 2.0) -> None:
    """Print the refresh table and the tick table."""
    hsm_note = hsm_env(Path(tempfile.mkdtemp(prefix="rotasign-bench-hsm-")))
    with stack() as s:
        import boto3

        boto3.client("sqs").create_queue(QueueName="rotasign-refresh")
        rows = refresh_rows(s, "disk", seconds)
        if hsm_note is None:
            rows += refresh_rows(s, "hsm", seconds)
        print_table(
            "Refreshes per second (the SQS worker's refresh of one message, in-process moto) vs raw key generation "
            "+ certificate issuing, same process, one thread",
            ["algorithm", "storage", "refresh/s", "raw/s", "refresh÷raw", "ms/refresh", "of which: raw", "DynamoDB",
             "KMS", "rest", "DynamoDB calls", "n"],
            rows,
        )
        print("raw = generate the key in the same backend + issue its certificate (HSM: + destroy it). "
              "DynamoDB/KMS = time inside those calls (moto, in-process)."
              + (f" HSM rows skipped: {hsm_note}" if hsm_note else ""))
        print_table(
            "One scheduler tick: find the due keypairs (index query + BatchGetItem, in-process moto) and enqueue "
            "a message each (SendMessageBatch of 10, 4 in flight, to a null SQS client; last column: to moto's SQS)",
            ["due keypairs", "find s", "find ms/kp", "tick s", "tick ms/kp", "Query", "BatchGetItem",
             "SendMessageBatch", "tick s, moto SQS"],
            tick_rows(s),
        )
        print("moto's SQS recounts the queue on every send (O(n²) per tick), so it is timed at 1,000 only.")


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 2.0)
