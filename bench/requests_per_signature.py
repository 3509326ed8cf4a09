"""DynamoDB and KMS requests per signature, counted from botocore `before-call` events (not assumed).

Scenarios: warm caches (the steady state of a warm Lambda), the first signature after the 5-second
principal and account caches lapse, the first signature with a keypair in this process, and refusals.
Run: `.venv/bin/python bench/requests_per_signature.py`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from common import RequestCounter, Stack, print_table, sign_body, stack


def main() -> None:
    """Print one row per scenario."""
    with stack() as s:
        from chalicelib.services.container import get_services

        services = get_services()
        body = sign_body(hashlib.sha256(b"counted").digest())
        static = s.keypair("count-static", {"algorithm": "ECDSA", "curve": "P-256"})
        dynamic = s.keypair("count-dynamic", {"algorithm": "ECDSA", "curve": "P-256"}, type="dynamic")
        offline = s.keypair("count-offline", {"algorithm": "ECDSA", "curve": "P-256"}, status="offline")
        for ref in (static["id"], dynamic["id"], "count-static"):
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
            ("principal + account caches lapsed (every 5 s)", lapsed_caches),
            ("first use of a keypair in this process, by id", first_with_new_keypair("id")),
            ("first use of a keypair in this process, by alias", first_with_new_keypair("alias")),
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


if __name__ == "__main__":
    main()
