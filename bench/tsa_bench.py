"""CPU per RFC 3161 time-stamp token beside one raw signature with the same TSA key, in the same run.

Every signature the service makes carries a token over SHA-256 of the signature value, so the token
should cost little more than the TSA key's own signature (goal: at most 3x). Rows, CPU microseconds
per call on one thread (process CPU time, so other load on the machine does not inflate them):

- raw TSA-key signature: `sign` over a SHA-256 digest, exactly the call a token makes;
- TimeStampAuthority.stamp: the whole token (TSTInfo, signed attributes, CMS SignedData), as the sign
  path asks for it (with the TSA certificate and chain), and without certificates;
- TimeStampAuthority.respond: a granted reply to an `openssl ts -query` (parsing the query included);
- TimestampService.signature_token: what the sign path calls per signature (caches, counter, base64);
- POST /timestamp and POST /keypairs/{k}/sign through Chalice's test client on in-process moto, for
  the token's share of a request (moto's DynamoDB dominates the sign row).

The account's TSA (ECDSA P-256, made by bootstrap) comes first; then the same two rows for a TSA of
each other key type. Rows are measured in interleaved rounds and each figure is the median round, so
a slow patch on a shared machine hits every row alike.

Run: `.venv/bin/python bench/tsa_bench.py [--seconds 4]` (or `make bench`); prints tables and one JSON line.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `python bench/tsa_bench.py` or `-m bench.tsa_bench`

from common import print_table, sign_body, stack

ROUNDS = 5
GOAL = 3.0


def _cpu_us(fn: Callable[[], object], seconds: float) -> float:
    """CPU microseconds per call of `fn`, over about `seconds` of CPU time."""
    done, started = 0, time.process_time()
    while True:
        for _ in range(10):
            fn()
        done += 10
        spent = time.process_time() - started
        if spent >= seconds:
            return spent / done * 1e6


def measure(rows: dict[str, Callable[[], object]], seconds: float) -> dict[str, float]:
    """Median CPU µs per call of each row, from ROUNDS interleaved rounds of `seconds` / ROUNDS each."""
    for fn in rows.values():  # warm-up: caches, lazy imports, first key use
        for _ in range(20):
            fn()
    rounds: dict[str, list[float]] = {name: [] for name in rows}
    for _ in range(ROUNDS):
        for name, fn in rows.items():
            rounds[name].append(_cpu_us(fn, seconds / ROUNDS))
    return {name: statistics.median(values) for name, values in rounds.items()}


def _openssl_query(data: bytes) -> bytes:
    """An `openssl ts -query` for `data` (SHA-256, nonce, certReq), as a TSA client sends it."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data"
        path.write_bytes(data)
        return subprocess.run(
            ["openssl", "ts", "-query", "-data", str(path), "-sha256", "-cert"], capture_output=True, check=True
        ).stdout


def other_key_types(seconds: float) -> dict[str, dict[str, float]]:
    """Raw signature and token for a TSA of each other key type (no AWS: a throwaway CA and TSA)."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    from chalicelib.keys.algorithms import SIG_ALGS, PrivateKey, sign
    from chalicelib.pki.certificates import issue_tsa_certificate, make_ca_certificate
    from chalicelib.pki.tsa import TimeStampAuthority

    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = make_ca_certificate(ca_key, "bench", "production", now)
    # Each key with the signature algorithm and digest its tokens use (RFC 5753, RFC 8419).
    keys: dict[str, tuple[PrivateKey, str, str | None]] = {
        "ECDSA P-384": (ec.generate_private_key(ec.SECP384R1()), "SHA384withECDSA", "sha384"),
        "RSA-2048": (rsa.generate_private_key(public_exponent=65537, key_size=2048), "SHA256withRSA", "sha256"),
        "RSA-3072": (rsa.generate_private_key(public_exponent=65537, key_size=3072), "SHA256withRSA", "sha256"),
        "Ed25519": (ed25519.Ed25519PrivateKey.generate(), "Ed25519", None),
    }
    digest = hashlib.sha256(b"signature value").digest()
    figures = {}
    for label, (key, sig_alg, digest_alg) in keys.items():
        tsa = TimeStampAuthority(key, issue_tsa_certificate(ca_key, ca, key.public_key(), "bench", now), chain=[ca])
        to_sign = digest if digest_alg is None else hashlib.new(digest_alg, digest).digest()

        def raw(key: PrivateKey = key, sig_alg: str = sig_alg, to_sign: bytes = to_sign) -> bytes:
            return sign(key, SIG_ALGS[sig_alg], to_sign)

        def token(tsa: TimeStampAuthority = tsa) -> bytes:
            return tsa.stamp(digest)

        figures[label] = measure({"raw": raw, "stamp": token}, seconds)
    return figures


def run(seconds: float) -> dict[str, Any]:
    """Measure every row; returns the figures."""
    from chalicelib.keys.algorithms import SIG_ALGS
    from chalicelib.keys.algorithms import sign as raw_sign
    from chalicelib.services.container import get_services

    digest = hashlib.sha256(b"signature value").digest()
    query = _openssl_query(b"artifact")
    with stack() as s:
        services = get_services()
        account = services.accounts.get(s.account)
        key = services.authorities.get(account, "tsa").key
        tsa = services.timestamps.authority(account)
        assert s.keypair("bench", {"algorithm": "ECDSA", "curve": "P-256"})
        ts_headers = {"X-API-Key": s.api_key, "Content-Type": "application/timestamp-query", "Accept": "*/*"}
        json_headers = {"X-API-Key": s.api_key, "Content-Type": "application/json"}
        body = sign_body(digest)

        def route() -> None:
            assert s.client.http.post("/api/v1/timestamp", headers=ts_headers, body=query).status_code == 200

        def sign_route() -> None:
            response = s.client.http.post("/api/v1/keypairs/bench/sign", headers=json_headers, body=body)
            assert response.status_code == 200

        account_tsa = measure(
            {
                "raw": lambda: raw_sign(key, SIG_ALGS["SHA256withECDSA"], digest),
                "stamp": lambda: tsa.stamp(digest),
                "stamp_no_certs": lambda: tsa.stamp(digest, cert_req=False),
                "respond": lambda: tsa.respond(query),
                "signature_token": lambda: services.timestamps.stamp_signature(account, digest),
            },
            seconds,
        )
        requests = measure({"route": route, "sign": sign_route}, seconds)
        services.timestamps.counter.flush()
    return {"account_tsa": account_tsa, "requests": requests, "other_keys": other_key_types(seconds)}


def main(argv: list[str] | None = None) -> int:
    """Print the tables and the JSON figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=4.0, help="CPU seconds per row, over all rounds (default 4)")
    args = parser.parse_args(argv)
    figures = run(args.seconds)
    tsa, requests = figures["account_tsa"], figures["requests"]
    raw = tsa["raw"]
    labels = {
        "raw": "raw TSA-key signature",
        "stamp": "TimeStampAuthority.stamp",
        "stamp_no_certs": "  stamp(cert_req=False)",
        "respond": "TimeStampAuthority.respond",
        "signature_token": "TimestampService.signature_token",
    }
    print_table(
        "RFC 3161 token vs raw signature, account TSA (ECDSA P-256), CPU per call, one thread",
        ["row", "µs", "÷ raw"],
        [[labels[name], f"{us:.1f}", f"{us / raw:.2f}"] for name, us in tsa.items()]
        + [
            ["POST /timestamp (test client)", f"{requests['route']:.1f}", f"{requests['route'] / raw:.2f}"],
            ["POST /keypairs/{k}/sign", f"{requests['sign']:.1f}", f"{requests['sign'] / raw:.2f}"],
        ],
    )
    print(f"token ÷ raw signature: {tsa['stamp'] / raw:.2f} (goal ≤ {GOAL:g}); "
          f"the token is {tsa['signature_token'] / requests['sign']:.1%} of a sign request's CPU")
    print_table(
        "Other TSA key types (throwaway CA), CPU per call",
        ["TSA key", "raw µs", "token µs", "token ÷ raw"],
        [[label, f"{f['raw']:.1f}", f"{f['stamp']:.1f}", f"{f['stamp'] / f['raw']:.2f}"]
         for label, f in figures["other_keys"].items()],
    )
    summary = {
        "bench": "tsa",
        "token_us": round(tsa["stamp"], 2),
        "raw_signature_us": round(raw, 2),
        "token_to_raw": round(tsa["stamp"] / raw, 3),
        **{f"{name}_us": round(us, 2) for name, us in tsa.items() if name not in ("raw", "stamp")},
        **{f"{name}_request_us": round(us, 1) for name, us in requests.items()},
        "other_keys": {k: {n: round(v, 2) for n, v in f.items()} for k, f in figures["other_keys"].items()},
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
