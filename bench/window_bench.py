"""What a release window costs a signature: an offline keypair in a window beside an online one, same run.

An online keypair's warm signature writes one PutItem; an offline keypair's signature inside a release
window writes one TransactWriteItems of its log entry plus a conditional ADD to the window's counter
(so the budget is exact under concurrency). Per warm signature on one thread (ECDSA P-256 disk keys,
Chalice's test client, in-process moto), in interleaved rounds (median): the wall time, the part spent
inside DynamoDB calls (timed around botocore's `_make_api_call`), and the rest — rotasign's own work —
with the ratio of that rest between the two.

moto applies a TransactWriteItems by deep-copying its tables, which grow during the run, so the DynamoDB
column of the windowed row is moto's cost, not DynamoDB's: DynamoDB bills a transactional write at twice
the write units of its items (bench/requests_per_signature.py prints them).

Run: `.venv/bin/python bench/window_bench.py [--seconds 6]` (or `make bench`); prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `python bench/window_bench.py`

from common import print_table, sign_body, stack

ROUNDS = 5


class DynamoTimer:
    """Seconds spent inside botocore API calls of the DynamoDB service, summed."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def install(self) -> None:
        from botocore.client import BaseClient

        real = getattr(BaseClient, "_make_api_call")  # noqa: B009 -- private, and not in botocore's stubs
        timer = self

        def timed(client: Any, operation: str, params: Any) -> Any:
            if client.meta.service_model.service_name != "dynamodb":
                return real(client, operation, params)
            started = time.perf_counter()
            try:
                return real(client, operation, params)
            finally:
                timer.seconds += time.perf_counter() - started

        setattr(BaseClient, "_make_api_call", timed)  # noqa: B010 -- as above


def _ms(fn: Callable[[], object], seconds: float, timer: DynamoTimer) -> tuple[float, float]:
    """Milliseconds per call of `fn`, and of those the milliseconds inside DynamoDB calls."""
    done, started, in_dynamo = 0, time.perf_counter(), timer.seconds
    while time.perf_counter() - started < seconds or done < 10:
        fn()
        done += 1
    return (time.perf_counter() - started) / done * 1000, (timer.seconds - in_dynamo) / done * 1000


def main() -> None:
    """Print one row per keypair kind."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=8.0, help="measuring time per row (all rounds)")
    args = parser.parse_args()
    from chalicelib.clock import rfc3339

    with stack() as s:
        spec = {"algorithm": "ECDSA", "curve": "P-256"}
        online = s.keypair("bench-online", spec)
        offline = s.keypair("bench-window", spec, status="offline")
        now = datetime.now(UTC)
        status, made = s.call("POST", "/release-windows", {
            "name": "bench", "keypair_ids": [offline["id"]], "starts_at": rfc3339(now - timedelta(minutes=1)),
            "ends_at": rfc3339(now + timedelta(hours=2)), "max_signatures": 100_000_000})
        assert status == 201, made
        body = sign_body(hashlib.sha256(b"bench").digest())
        timer = DynamoTimer()
        timer.install()
        rows: dict[str, Callable[[], object]] = {
            "online keypair (PutItem)": lambda: s.sign(online["id"], body),
            "offline keypair in a window (TransactWriteItems)": lambda: s.sign(offline["id"], body),
        }
        for fn in rows.values():  # warm-up: principal, states, windows, key objects
            for _ in range(10):
                fn()
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in rows}
        for _ in range(ROUNDS):
            for name, fn in rows.items():
                samples[name].append(_ms(fn, args.seconds / ROUNDS, timer))
        ms = {name: (statistics.median(t for t, _ in v), statistics.median(d for _, d in v)) for name, v in
              samples.items()}
        base = ms["online keypair (PutItem)"][0] - ms["online keypair (PutItem)"][1]
        print_table("Milliseconds per warm signature (in-process moto, median of interleaved rounds)",
                    ["keypair", "total", "in DynamoDB (moto)", "rotasign", "rotasign ÷ online"],
                    [[name, f"{t:.2f}", f"{d:.2f}", f"{t - d:.2f}", f"{(t - d) / base:.2f}"]
                     for name, (t, d) in ms.items()])
        print(json.dumps({"window_bench": {name: {"total_ms": round(t, 3), "dynamodb_ms": round(d, 3)}
                                           for name, (t, d) in ms.items()}}))


if __name__ == "__main__":
    main()
