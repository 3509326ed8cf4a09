"""`rotasign trust get`: save an account's public trust material (CAs, TSA, transparency-log key) as files."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rotasign_cli import trust
from rotasign_cli.arguments import add_connection_options, add_json_option, example, subcommands
from rotasign_cli.client import Client, segment
from rotasign_cli.context import Context
from rotasign_cli.errors import ApiError, NotFoundError, UsageError
from rotasign_cli.files import write_atomically
from rotasign_cli.output import print_json

CA_FILE = "ca.pem"
LOG_KEY_FILE = "log-key.pem"


def register(sub: Any) -> None:
    """Add `trust` and `trust get`."""
    parser = sub.add_parser(
        "trust",
        help="an account's public trust material",
        description="An account's public trust material: its CAs, its TSA certificate and its transparency-log key.",
        epilog=example("rotasign trust get acct_01JF... --output-dir trust/"),
    )
    add_connection_options(parser)
    verbs = subcommands(parser, "trust commands")
    get = verbs.add_parser(
        "get",
        help="save the CA, TSA and log key as files",
        description=(
            "Fetch GET /api/v1/trust/ACCOUNT_ID (public: no API key) and write into --output-dir:\n"
            f"  {trust.TRUST_FILE}   the whole answer: for `rotasign verify --trust` (with --require-log) and "
            "`python -m rotasign_cli.transparency --trust`\n"
            f"  {CA_FILE}       the production CA and the TSA certificate, as `rotasign ca get` writes them "
            "(for openssl and `verify --ca`)\n"
            f"  {LOG_KEY_FILE}  the Ed25519 key that signs the account's transparency checkpoints\n"
            "Without ACCOUNT_ID, the account of the configured API key."
        ),
        epilog=example("rotasign trust get acct_01JF... --output-dir trust/ && rotasign verify app.tar.gz "
                       "--trust trust/ --require-log"),
    )
    add_connection_options(get)
    add_json_option(get)
    get.add_argument("account", nargs="?", metavar="ACCOUNT_ID", help="the account (default: the API key's)")
    get.add_argument("--output-dir", "-o", type=Path, default=Path("."), metavar="DIR",
                     help="where to write the files (default: the current folder; created if missing)")
    get.set_defaults(func=run_get)


def fetch(client: Client, account_id: str, hint: str = "") -> dict[str, Any]:
    """The trust route's answer; raises NotFoundError for an unknown account or a service without the route."""
    try:
        answer: dict[str, Any] = client.call("GET", f"/trust/{segment(account_id)}", authenticated=False)
    except ApiError as exc:
        if exc.code != ApiError.NOT_API:
            raise
        raise NotFoundError(
            f"{client.endpoint} does not publish trust material (GET /api/v1/trust/ACCOUNT_ID){hint}."
        ) from exc
    return answer


def own_account_id(client: Client) -> str:
    """The id of the API key's account."""
    return str((client.call("GET", "/me").get("account") or {})["id"])


def run_get(args: argparse.Namespace, ctx: Context) -> int:
    """Fetch the trust material and write the three files (or print the answer with --json)."""
    account_id = args.account or own_account_id(ctx.client())
    answer = fetch(ctx.client(authenticated=False), account_id)
    if ctx.json:
        print_json(answer)
        return 0
    directory: Path = args.output_dir
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{directory}: {exc.strerror or exc}.") from exc
    pem = trust.pem_bundle(answer, include_test=False)
    write_atomically(directory / trust.TRUST_FILE, (json.dumps(answer, indent=2, sort_keys=True) + "\n").encode())
    write_atomically(directory / CA_FILE, pem.encode("ascii"))
    written = [trust.TRUST_FILE, CA_FILE]
    if answer.get("log_public_key"):
        write_atomically(directory / LOG_KEY_FILE, str(answer["log_public_key"]).encode("ascii"))
        written.append(LOG_KEY_FILE)
    print(f"Wrote {', '.join(written)} of account {answer.get('account_id')} into {directory}")
    return 0
