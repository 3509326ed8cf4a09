"""`rotasign` — manage keypairs, sign digests and read logs from the command line.

Reads ROTASIGN_ENDPOINT and ROTASIGN_API_KEY from the environment.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from rotasign_cli.client import ApiError, Client

HASHES = {"SHA-256": hashlib.sha256, "SHA-384": hashlib.sha384, "SHA-512": hashlib.sha512}


def _print(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True))


def _keypair(args: argparse.Namespace, client: Client) -> Any:
    if args.action == "create":
        body: dict[str, Any] = {"alias": args.alias, "type": args.type, "algorithm": args.algorithm,
                                "category": args.category, "storage": args.storage}
        if args.key_size:
            body["key_size"] = args.key_size
        if args.curve:
            body["curve"] = args.curve
        if args.refresh_after_sign:
            body["refresh_after_sign"] = True
        return client.call("POST", "/keypairs", body)
    if args.action == "list":
        return list(client.pages("/keypairs", {"type": args.type, "limit": 100}))
    if args.action == "get":
        return client.call("GET", f"/keypairs/{args.keypair}")
    if args.action == "refresh":
        return client.call("POST", f"/keypairs/{args.keypair}/refresh")
    if args.action == "generations":
        return list(client.pages(f"/keypairs/{args.keypair}/generations", {"limit": 100}))
    if args.action == "delete":
        client.call("DELETE", f"/keypairs/{args.keypair}")
        return {"deleted": args.keypair}
    raise SystemExit(f"unknown action {args.action}")


def _sign(args: argparse.Namespace, client: Client) -> Any:
    data = Path(args.file).read_bytes()
    digest = HASHES[args.hash_algorithm](data).digest()
    body: dict[str, Any] = {"hash": base64.b64encode(digest).decode(), "hash_algorithm": args.hash_algorithm,
                            "file_name": Path(args.file).name, "tool": "rotasign-cli/0.1"}
    if args.sig_alg:
        body["sig_alg"] = args.sig_alg
    answer = client.call("POST", f"/keypairs/{args.keypair}/sign", body)
    if args.out:
        Path(args.out).write_bytes(base64.b64decode(answer["signature"]))
        if answer.get("certificate"):
            Path(args.out + ".pem").write_text(answer["certificate"]["pem"])
        if answer.get("timestamp_token"):
            Path(args.out + ".tsr").write_bytes(base64.b64decode(answer["timestamp_token"]))
    return answer


def _logs(args: argparse.Namespace, client: Client) -> Any:
    if args.kind == "audit":
        params = {"type": args.type, "action": args.action, "limit": args.limit}
        return client.call("GET", "/audit-logs", params=params)
    params = {"keypair_alias": args.alias, "keypair_id": args.keypair_id, "limit": args.limit}
    return client.call("GET", "/signature-logs", params=params)


def parser() -> argparse.ArgumentParser:
    """The command-line grammar."""
    root = argparse.ArgumentParser(prog="rotasign", description=__doc__)
    sub = root.add_subparsers(dest="command", required=True)
    kp = sub.add_parser("keypair", help="create, list, get, refresh, delete keypairs")
    kp_sub = kp.add_subparsers(dest="action", required=True)
    create = kp_sub.add_parser("create")
    create.add_argument("alias")
    create.add_argument("--type", choices=["static", "dynamic"], default="dynamic")
    create.add_argument("--algorithm", choices=["RSA", "ECDSA", "EdDSA"], default="ECDSA")
    create.add_argument("--key-size", type=int)
    create.add_argument("--curve")
    create.add_argument("--category", choices=["production", "test"], default="production")
    create.add_argument("--storage", choices=["disk", "hsm"], default="disk")
    create.add_argument("--refresh-after-sign", action="store_true")
    listing = kp_sub.add_parser("list")
    listing.add_argument("--type", choices=["static", "dynamic"])
    for name in ("get", "refresh", "generations", "delete"):
        kp_sub.add_parser(name).add_argument("keypair", help="id or alias")
    sign = sub.add_parser("sign", help="hash a file locally and sign its digest")
    sign.add_argument("keypair")
    sign.add_argument("file")
    sign.add_argument("--hash-algorithm", choices=sorted(HASHES), default="SHA-256")
    sign.add_argument("--sig-alg")
    sign.add_argument("--out", help="write the signature here (+ .pem certificate, + .tsr timestamp token)")
    logs = sub.add_parser("logs", help="audit or signature logs")
    logs.add_argument("kind", choices=["audit", "signatures"])
    logs.add_argument("--type")
    logs.add_argument("--action")
    logs.add_argument("--alias")
    logs.add_argument("--keypair-id")
    logs.add_argument("--limit", type=int, default=50)
    sub.add_parser("ca", help="the account's trust anchors")
    sub.add_parser("me", help="who the API key belongs to")
    return root


def main(argv: list[str] | None = None, client: Client | None = None) -> int:
    """Run one command; 0 on success, 1 on an API error, 2 on bad usage."""
    args = parser().parse_args(argv)
    if client is None:
        endpoint, key = os.environ.get("ROTASIGN_ENDPOINT"), os.environ.get("ROTASIGN_API_KEY")
        if not endpoint or not key:
            print("set ROTASIGN_ENDPOINT and ROTASIGN_API_KEY", file=sys.stderr)
            return 2
        client = Client(endpoint, key)
    try:
        if args.command == "keypair":
            result = _keypair(args, client)
        elif args.command == "sign":
            result = _sign(args, client)
        elif args.command == "logs":
            result = _logs(args, client)
        elif args.command == "ca":
            result = client.call("GET", "/ca")
        else:
            result = client.call("GET", "/me")
    except ApiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    _print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
