"""Dynamic refresh: refreshes per second beside raw key generation + certificate, and one scheduler tick at scale.

1. Per algorithm and storage (disk; HSM when SoftHSM is installed), the refresh the SQS worker runs for one
   message (read, generate, issue, one TransactWriteItems, destroy the old key) against the raw work it
   cannot avoid, in the same process: generate a key of the same spec in the same backend and issue its
   certificate with the same CA (on the HSM the raw loop also destroys its key, as a refresh does).
   RSA key generation time varies a lot from key to key (prime search), so RSA ratios are noisy.
2. The staged tick over 1,000 and then 10,000 due keypairs (rows written directly in batches): the tick
   (one Limit-1 query and one slice message per due-index shard) and the slices (one index page, its rows, the refresh
   messages), with the work of the largest invocation of each stage, and a check that each due keypair
   was queued exactly once. SQS is an in-memory queue (moto's SQS lists the whole queue per call).
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


def fan_out_rows(s: Any, total: int) -> list[list[str]]:
    """The staged tick over `total` due keypairs: one row per stage (tick, slices) and the whole, per invocation."""
    import dataclasses

    from chalicelib.clock import rfc3339
    from chalicelib.services.container import build_services, get_services
    from chalicelib.services.refresh_queue import RefreshMessage, SliceMessage, parse_message
    from chalicelib.services.scheduler import fan_out
    from tests.support.fanout import MemoryQueue, seed_due_keypairs

    now = get_services().deps.clock()
    due_at = rfc3339((now - timedelta(minutes=1)).replace(microsecond=0))
    started = time.perf_counter()
    ids = set(seed_due_keypairs(s.account, total, due_at))
    seeding = time.perf_counter() - started
    queue = MemoryQueue()
    services = build_services(dataclasses.replace(get_services().deps, sqs=queue))
    with RequestCounter() as counter:
        started = time.perf_counter()
        tick = fan_out(services.deps, now)
        tick_s = time.perf_counter() - started
        tick_calls, tick_sends = len(counter.calls), queue.send_calls
        slice_times: list[float] = []
        slice_calls: list[int] = []
        slice_sends: list[int] = []
        queued: dict[str, int] = {}
        while (body := queue.take()) is not None:
            message = parse_message(body)
            if isinstance(message, RefreshMessage):
                queued[message.keypair_id] = queued.get(message.keypair_id, 0) + 1
                continue
            assert isinstance(message, SliceMessage)
            calls, sends = len(counter.calls), queue.send_calls
            started = time.perf_counter()
            services.queue.handle_records([{"body": body, "attributes": {"ApproximateReceiveCount": "1"}}])
            slice_times.append(time.perf_counter() - started)
            slice_calls.append(len(counter.calls) - calls)
            slice_sends.append(queue.send_calls - sends)
    mine = {k: v for k, v in queued.items() if k in ids}
    assert len(mine) == total and set(mine.values()) == {1}, "each due keypair is queued exactly once"
    slices_s = sum(slice_times)
    return [
        ["tick", f"{total:,}", "1", f"{tick_s:.3f}", f"{tick_s:.3f}", str(tick_calls), str(tick_sends),
         f"{tick.slices} slice messages", f"{seeding:.1f}"],
        ["slices", f"{total:,}", str(len(slice_times)), f"{slices_s:.2f}", f"{max(slice_times):.3f}",
         str(max(slice_calls)), str(max(slice_sends)),
         f"{len(mine):,} refresh messages, {1000 * slices_s / total:.3f} ms/kp", ""],
    ]


def refresh_table(s: Any, seconds: float, hsm_note: str | None) -> None:
    """Print refreshes per second beside raw key generation + certificate issuing (disk, and HSM when present)."""
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


def main(seconds: float = 2.0, fan_out_only: bool = False) -> None:
    """Print the refresh table and the staged tick's table (only the latter with `--fan-out`)."""
    hsm_note = hsm_env(Path(tempfile.mkdtemp(prefix="rotasign-bench-hsm-")))
    with stack() as s:
        if not fan_out_only:
            refresh_table(s, seconds, hsm_note)
        rows = fan_out_rows(s, 1_000) + fan_out_rows(s, 10_000)
        print_table(
            "The staged tick: the tick reads the oldest key of each due-index shard and queues a slice message per "
            "shard with due keypairs; each slice reads one page "
            "(<= 1,000 keys) of its shard, their rows, and queues their refresh messages and its continuation "
            "(in-process moto DynamoDB; SQS: an in-memory queue)",
            ["stage", "due keypairs", "invocations", "total s", "max s/invocation", "max DynamoDB calls/invocation",
             "max SendMessageBatch/invocation", "queued", "seeding s"],
            rows,
        )
        print("The 10,000 run's slices read a table that already holds the 1,000 run's rows. moto reads the whole "
              "table for every index query (O(rows) per Query; DynamoDB reads one partition's page), so a slice "
              "costs more here the more rows exist; its work in requests stays bounded (columns 6-7).")


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--fan-out"]
    main(float(args[0]) if args else 2.0, fan_out_only="--fan-out" in sys.argv[1:])
