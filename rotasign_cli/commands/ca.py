"""`rotasign ca get`: save the account's trust material (CA and TSA certificates) as PEM."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from rotasign_cli import trust
from rotasign_cli.arguments import add_connection_options, add_json_option, example, subcommands
from rotasign_cli.context import Context
from rotasign_cli.files import write_atomically
from rotasign_cli.output import print_json


def register(sub: Any) -> None:
    """Add `ca` and `ca get`."""
    parser = sub.add_parser(
        "ca",
        help="the account's certificate authorities",
        description="The account's trust material: its production CA, its test CA and its TSA certificate.",
        epilog=example("rotasign ca get --output ca.pem"),
    )
    add_connection_options(parser)
    verbs = subcommands(parser, "ca commands")
    get = verbs.add_parser(
        "get",
        help="write the CA and TSA certificates as PEM",
        description=(
            "Write the production CA and the TSA certificate as one PEM file (stdout without --output), the "
            "trust anchors for `rotasign verify --ca` and `openssl cms -verify -CAfile`. The test CA is left "
            "out unless --include-test, so that test signatures do not verify as production ones."
        ),
        epilog=example("rotasign ca get --output ca.pem"),
    )
    add_connection_options(get)
    add_json_option(get)
    get.add_argument("--output", "-o", type=Path, metavar="FILE", help="write the PEM file here")
    get.add_argument("--include-test", action="store_true", help="also include the test CA")
    get.set_defaults(func=run_get)


def run_get(args: argparse.Namespace, ctx: Context) -> int:
    """GET /ca; write or print the PEM (or the JSON answer)."""
    answer = ctx.client().call("GET", "/ca")
    if ctx.json:
        print_json(answer)
        return 0
    pem = trust.pem_bundle(answer, include_test=args.include_test)
    if args.output is None:
        sys.stdout.write(pem)
        return 0
    write_atomically(args.output, pem.encode("ascii"))
    names = "production CA, " + ("test CA, " if args.include_test else "") + "TSA"
    print(f"Wrote {args.output} ({names})")
    return 0
