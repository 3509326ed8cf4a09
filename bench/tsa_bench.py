"""Time-stamps per second through POST /api/v1/timestamp, beside raw signing with the TSA key.

In-process: moto (DynamoDB, KMS) and Chalice's test client, one thread, so the figures are the
service's own cost per stamp on one core with the network left out. Rows:

- raw TSA-key signing: one ECDSA P-256 signature with the account's TSA key (the cryptographic floor);
- TimeStampAuthority.stamp: that signature plus building the TSTInfo and CMS SignedData (asn1crypto);
- TimestampService.signature_token: what the sign path calls per signature (caches, counter, base64);
- POST /timestamp: the route (middleware, API-key check from the warm cache, account cache, reply);
- POST /keypairs/{k}/sign: a whole signature with its token, for the token's share of a sign request
  (moto's DynamoDB dominates that row; in AWS the storage calls are network round trips instead).

Run: `.venv/bin/python bench/tsa_bench.py [--seconds 2]` (or `make bench`); prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `python bench/tsa_bench.py` or `-m bench.tsa_bench`

from common import aws_env


def _rate(fn: Callable[[], object], seconds: float) -> float:
    """Calls per second of `fn`, after a short warm-up."""
    for _ in range(20):
        fn()
    done, started = 0, time.perf_counter()
    deadline = started + seconds
    while True:
        for _ in range(20):
            fn()
        done += 20
        now = time.perf_counter()
        if now >= deadline:
            return done / (now - started)


def run(seconds: float) -> dict[str, Any]:
    """Measure every row; returns the figures."""
    aws_env()
    from moto import mock_aws

    with mock_aws():
        import boto3

        os.environ["ROTASIGN_KMS_KEY_ID"] = boto3.client("kms").create_key()["KeyMetadata"]["KeyId"]
        from chalice.test import Client
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        from app import app
        from chalicelib.services.accounts import bootstrap_account
        from chalicelib.services.container import get_deps, get_services
        from chalicelib.settings import get_settings
        from chalicelib.storage.tables import create_tables

        get_settings.cache_clear()
        create_tables(get_settings())
        made = bootstrap_account(get_deps(), "bench")
        services = get_services()
        account = services.accounts.get(made.account_id)
        key = services.authorities.get(account, "tsa").key
        tsa = services.timestamps.authority(account)
        digest = hashlib.sha256(b"artifact").digest()
        assert isinstance(key, ec.EllipticCurvePrivateKey)

        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "data"
            data.write_bytes(b"artifact")
            query = subprocess.run(
                ["openssl", "ts", "-query", "-data", str(data), "-sha256", "-cert"],
                capture_output=True, check=True,
            ).stdout

        ts_headers = {"X-API-Key": made.api_key, "Content-Type": "application/timestamp-query", "Accept": "*/*"}
        json_headers = {"X-API-Key": made.api_key, "Content-Type": "application/json"}
        sign_body = json.dumps({"hash": base64.b64encode(digest).decode()})
        with Client(app, stage_name="local") as client:
            created = client.http.post("/api/v1/keypairs", headers=json_headers, body=json.dumps(
                {"alias": "bench", "type": "static", "algorithm": "ECDSA", "curve": "P-256", "storage": "disk"}))
            assert created.status_code == 201, created.body

            def route() -> None:
                response = client.http.post("/api/v1/timestamp", headers=ts_headers, body=query)
                assert response.status_code == 200

            def sign() -> None:
                response = client.http.post("/api/v1/keypairs/bench/sign", headers=json_headers, body=sign_body)
                assert response.status_code == 200

            figures = {
                "raw_tsa_key_sign_per_s": _rate(lambda: key.sign(digest, ec.ECDSA(hashes.SHA256())), seconds),
                "tsa_stamp_per_s": _rate(lambda: tsa.stamp(digest), seconds),
                "signature_token_per_s": _rate(
                    lambda: services.timestamps.signature_token(made.account_id, digest), seconds
                ),
                "route_per_s": _rate(route, seconds),
                "sign_route_per_s": _rate(sign, seconds),
            }
        services.timestamps.counter.flush()
    figures["route_to_raw_ratio"] = figures["route_per_s"] / figures["raw_tsa_key_sign_per_s"]
    figures["stamp_to_raw_ratio"] = figures["tsa_stamp_per_s"] / figures["raw_tsa_key_sign_per_s"]
    figures["token_ms"] = 1000 / figures["signature_token_per_s"]
    figures["token_share_of_sign"] = figures["sign_route_per_s"] / figures["signature_token_per_s"]
    return figures


def main(argv: list[str] | None = None) -> int:
    """Print the table and the JSON figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=2.0, help="measuring time per row (default 2)")
    args = parser.parse_args(argv)
    figures = run(args.seconds)
    raw = figures["raw_tsa_key_sign_per_s"]
    print("TSA (ECDSA P-256), one thread, in-process moto", file=sys.stderr)
    for label, name in (
        ("raw TSA-key signing", "raw_tsa_key_sign_per_s"),
        ("TimeStampAuthority.stamp", "tsa_stamp_per_s"),
        ("TimestampService.signature_token", "signature_token_per_s"),
        ("POST /timestamp (test client)", "route_per_s"),
        ("POST /keypairs/{k}/sign", "sign_route_per_s"),
    ):
        print(f"  {label:32s} {figures[name]:10.0f}/s  ratio to raw {figures[name] / raw:6.3f}", file=sys.stderr)
    print(f"  the token costs {figures['token_ms']:.3f} ms, {figures['token_share_of_sign']:.1%} of a sign request",
          file=sys.stderr)
    print(json.dumps({"bench": "tsa", **{k: round(v, 4) for k, v in figures.items()}}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
