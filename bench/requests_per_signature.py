"""DynamoDB and KMS requests per signature, counted from botocore `before-call` events (not assumed),
and the write capacity units one signature's log entry costs.

Scenarios: warm caches (the steady state of a warm Lambda), an offline keypair inside a release window
(its count is a second item of the same write), the first signature after the 5-second principal and
account caches lapse, the first signature with a keypair in this process, a batch of 100, and refusals.
Write units follow DynamoDB's pricing rules: ceil(item size / 1 KB) for the table and for each index the
item lands in, on the copy the index's projection keeps (bench/log_wcu.py); a transactional write costs twice.
Run: `.venv/bin/python bench/requests_per_signature.py`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from common import RequestCounter, Stack, print_table, sign_body, stack

from chalicelib.clock import rfc3339


def main() -> None:
    """Print one row per scenario."""
    with stack() as s:
        from chalicelib.services.container import get_services

        services = get_services()
        body = sign_body(hashlib.sha256(b"counted").digest())
        static = s.keypair("count-static", {"algorithm": "ECDSA", "curve": "P-256"})
        dynamic = s.keypair("count-dynamic", {"algorithm": "ECDSA", "curve": "P-256"}, type="dynamic")
        offline = s.keypair("count-offline", {"algorithm": "ECDSA", "curve": "P-256"}, status="offline")
        windowed = s.keypair("count-windowed", {"algorithm": "ECDSA", "curve": "P-256"}, status="offline")
        now = datetime.now(UTC)
        status, _ = s.call("POST", "/release-windows", {
            "name": "bench", "keypair_ids": [windowed["id"]], "starts_at": rfc3339(now - timedelta(minutes=1)),
            "ends_at": rfc3339(now + timedelta(hours=1)), "max_signatures": 1_000_000})
        assert status == 201
        for ref in (static["id"], dynamic["id"], "count-static", windowed["id"]):
            s.sign(ref, body)

        def first_with_new_keypair(by: str) -> Callable[[Stack], object]:
            kp = s.keypair(f"count-new-{by}", {"algorithm": "ECDSA", "curve": "P-256"})
            ref = kp["id"] if by == "id" else kp["alias"]
            return lambda st: st.sign(ref, body)

        def lapsed_caches(st: Stack) -> object:
            services.auth.forget()
            services.accounts.forget()
            return st.sign(static["id"], body)

        scenarios: list[tuple[str, Callable[[Stack], object]]] = [
            ("warm, static keypair by id", lambda st: st.sign(static["id"], body)),
            ("warm, static keypair by alias", lambda st: st.sign("count-static", body)),
            ("warm, dynamic keypair by id", lambda st: st.sign(dynamic["id"], body)),
            ("warm, offline keypair in a release window", lambda st: st.sign(windowed["id"], body)),
            ("principal + account caches lapsed (every 5 s)", lapsed_caches),
            ("first use of a keypair in this process, by id", first_with_new_keypair("id")),
            ("first use of a keypair in this process, by alias", first_with_new_keypair("alias")),
            ("a batch of 100, warm (per request)", lambda st: st.call(
                "POST", f"/keypairs/{static['id']}/sign",
                '{"items": [' + ",".join([body] * 100) + "]}")),
            ("refused: unknown keypair id", lambda st: st.call("POST", "/keypairs/kp_01JZZZZZZZZZZZZZZZZZZZZZZZ/sign",
                                                               body)),
            ("refused: unknown alias", lambda st: st.call("POST", "/keypairs/no-such-alias/sign", body)),
            ("refused: keypair offline", lambda st: st.call("POST", f"/keypairs/{offline['id']}/sign", body)),
        ]
        rows = []
        for label, run in scenarios:
            # Fill the 5-second principal and account caches afresh, so that only the scenario decides.
            services.auth.forget()
            services.accounts.forget()
            s.sign(static["id"], body)
            with RequestCounter() as counter:
                run(s)
            dynamo, kms = counter.of("dynamodb"), counter.of("kms")
            rows.append([label, len(dynamo), len(kms), " + ".join(dynamo + [f"kms:{op}" for op in kms])])
        print_table("Requests per signature (counted from botocore before-call events on every client in the process)",
                    ["scenario", "DynamoDB", "KMS", "calls"], rows)
        print_table("Write capacity units of one signature's log entry", ["entry", "item bytes", "indexes",
                                                                          "WCU (PutItem)", "WCU (in a transaction)"],
                    write_units(services, s))


def write_units(services: Any, s: Stack) -> list[list[str]]:
    """WCU of the newest success entry of this account, as the table and its indexes charge it (bench/log_wcu.py)."""
    from log_wcu import includes, item_bytes, layout_units

    from chalicelib.domain.logs import SignatureFilter
    from chalicelib.storage.signature_log import item_of
    from chalicelib.storage.tables import ReleaseWindowModel, SignatureLogModel

    store = services.deps.store
    [entry], _ = store.signatures.query(s.account, SignatureFilter(status="success"), 1, None)
    size, table, copies = layout_units(item_of(entry, store.signatures.shards), ("pk", "sk"),
                                       includes(SignatureLogModel))
    units = table + sum(copies)
    # The release window's counter: its item (and its one local index, which projects all of it).
    window = next(iter(ReleaseWindowModel.query(s.account)))
    window_size = item_bytes(window.serialize())
    window_units = -(-window_size // 1024) * 2
    return [["success entry (token and certificate serial included)", str(size), str(len(copies)), str(units),
             str(2 * units)],
            ["release window counter (`ADD signatures_used`)", str(window_size), "1", str(window_units),
             str(2 * window_units)]]


if __name__ == "__main__":
    main()
