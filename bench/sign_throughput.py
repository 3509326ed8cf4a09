"""Signatures per second through the service (Chalice test client, in-process moto) beside raw `cryptography`.

Both columns sign the same SHA-256 digest with the same private key in the same process and thread; the
ratio is what the service costs on top of the cryptography. The time of one service signature is split
into what was spent inside DynamoDB calls (here: moto, in-process), inside the RFC 3161 time-stamp of the
signature (when a timestamper is wired), and the rest (HTTP handling, auth, JSON, the signature itself).
Run: `.venv/bin/python bench/sign_throughput.py [seconds per measurement]`.
"""

from __future__ import annotations

import hashlib
import sys
from functools import partial

from common import ALGORITHMS, RequestCounter, print_table, rate, sign_body, stack, time_timestamper


def main(seconds: float = 1.5) -> None:
    """Print one row per algorithm."""
    with stack() as s:
        from chalicelib.keys.algorithms import resolve_sig_alg, sign
        from chalicelib.services.container import get_deps, get_services

        signing = get_services().signing
        stamping = time_timestamper(signing)

        digest = hashlib.sha256(b"rotasign benchmark artifact").digest()
        body = sign_body(digest)
        rows = []
        for name, spec in ALGORITHMS.items():
            kp = s.keypair(f"bench-{name.replace(' ', '-').lower()}", spec)
            s.sign(kp["id"], body)  # warm: decrypted key, principal and account cached
            stamping[0] = 0.0
            with RequestCounter() as counter:
                n, elapsed = rate(partial(s.sign, kp["id"], body), seconds)
            per_sig = 1000 * elapsed / n
            dynamo = 1000 * counter.seconds.get("dynamodb", 0.0) / n
            stamp = 1000 * stamping[0] / n

            row, material = get_deps().store.keypairs.read_with_material(s.account, kp["id"])
            assert row is not None and material is not None
            key = get_deps().disk.load(s.account, row.key_ref, material.sealed)
            sig_alg = resolve_sig_alg(row.spec, "SHA-256", None)
            m, raw_elapsed = rate(partial(sign, key, sig_alg, digest), seconds / 3, 50)
            raw = m / raw_elapsed
            service = n / elapsed
            rows.append([
                name, sig_alg.name, f"{service:,.1f}", f"{raw:,.0f}", f"{service / raw:.4f}", f"{per_sig:.2f}",
                f"{1000 / raw:.3f}", f"{dynamo:.2f}", f"{stamp:.2f}", f"{per_sig - dynamo - stamp - 1000 / raw:.2f}",
            ])
        print_table(
            "Signatures per second: the service (Chalice test client + in-process moto) vs raw cryptography, "
            "one thread, same key and digest",
            ["algorithm", "sig_alg", "service/s", "raw/s", "service÷raw", "ms/sig", "of which: sign",
             "DynamoDB (moto)", "timestamp", "rest"],
            rows,
        )
        print("ms/sig = 1000 / service rate; 'of which' columns split it: the raw signature, time inside DynamoDB"
              " calls, inside the RFC 3161 timestamper, and the rest (HTTP, auth, JSON, logging).")


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 1.5)
