"""`rotasign logs audit` and `rotasign logs signatures`: the account's logs as tables."""

from __future__ import annotations

import argparse
import re
from typing import Any

from rotasign_cli.arguments import (
    add_connection_options,
    add_json_option,
    add_paging_options,
    example,
    subcommands,
    time_value,
)
from rotasign_cli.commands.listing import show_list
from rotasign_cli.context import Context
from rotasign_cli.output import Column, field

AUDIT_TYPES = (
    "static", "dynamic", "certificate", "user", "group", "team", "profile", "release_window", "api_key", "account",
)
AUDIT_ACTIONS = (
    "generate", "refresh", "update", "delete", "suspend", "unsuspend", "sign_denied", "create", "revoke",
    "authenticate", "sweep",
)
_WORD = re.compile(r"[a-z][a-z0-9_]{0,63}")
OUTCOMES = ("success", "failure")
SIGNATURE_STATUSES = ("success", "failed")

AUDIT_COLUMNS = (
    Column("AT", field("at")),
    Column("TYPE", field("type")),
    Column("ACTION", field("action")),
    Column("OUTCOME", field("outcome")),
    Column("ACTOR", field("actor")),
    Column("RESOURCE", lambda e: e.get("resource_alias") or e.get("resource_id")),
    Column("RESOURCE ID", field("resource_id")),
    Column("ERROR", field("error"), max_width=40),
    Column("ID", field("id")),
)
SIGNATURE_COLUMNS = (
    Column("SIGNED AT", field("signed_at")),
    Column("STATUS", field("status")),
    Column("KEYPAIR", lambda e: e.get("keypair_alias") or e.get("keypair_id")),
    Column("GEN", field("generation")),
    Column("SIG ALG", field("sig_alg")),
    Column("FILE", field("file_name"), max_width=32),
    Column("SIGNER", field("signer")),
    Column("ERROR", field("error"), max_width=40),
    Column("ID", field("id")),
)


def register(sub: Any) -> None:
    """Add `logs audit` and `logs signatures`."""
    parser = sub.add_parser(
        "logs",
        help="the audit log and the signature log",
        description="Read the account's logs, newest first, as tables (--json for scripts).",
        epilog=example("rotasign logs audit --type dynamic --action refresh --since 1h"),
    )
    add_connection_options(parser)
    kinds = subcommands(parser, "logs")
    since = time_value()

    audit = kinds.add_parser(
        "audit",
        help="who did what to which object",
        description="Audit entries: keypair lifecycle, refreshes, refused signatures, identity changes.",
        epilog=example("rotasign logs audit --type dynamic --action refresh --since 2h"),
    )
    audit.add_argument("--type", type=word, metavar="TYPE", help="one of " + ", ".join(AUDIT_TYPES))
    audit.add_argument(
        "--action", type=word, metavar="ACTION", help="e.g. " + ", ".join(AUDIT_ACTIONS) + " (lower case)"
    )
    audit.add_argument("--resource", metavar="ID", help="the object's id (kp_..., usr_..., ...)")
    audit.add_argument("--actor", metavar="USER_ID", help="a user id, or system:scheduler")
    audit.add_argument("--outcome", choices=OUTCOMES)
    _window(audit, since)
    add_paging_options(audit)
    add_json_option(audit)
    add_connection_options(audit)
    audit.set_defaults(func=run_audit)

    signatures = kinds.add_parser(
        "signatures",
        help="every signature attempt",
        description="Signature-log entries: each attempt, successful or refused, with its keypair and generation.",
        epilog=example("rotasign logs signatures --keypair release --status failed --since 7d"),
    )
    signatures.add_argument("--keypair", metavar="KEYPAIR", help="alias (also under a former alias) or id (kp_...)")
    signatures.add_argument("--status", choices=SIGNATURE_STATUSES)
    signatures.add_argument("--signer", metavar="USER_ID", help="the signing user's id")
    _window(signatures, since)
    add_paging_options(signatures)
    add_json_option(signatures)
    add_connection_options(signatures)
    signatures.set_defaults(func=run_signatures)


def word(text: str) -> str:
    """A lower-case word such as `dynamic` or `sign_denied` (types and actions grow with the service)."""
    if not _WORD.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a lower-case word such as refresh or sign_denied")
    return text


def _window(parser: argparse.ArgumentParser, parse: Any) -> None:
    help_text = "an RFC 3339 time (2026-11-29T12:00:00Z), a date, or an age: 30m, 2h, 7d"
    parser.add_argument("--since", type=parse, metavar="TIME", help=f"entries at or after TIME: {help_text}")
    parser.add_argument("--until", type=parse, metavar="TIME", help=f"entries at or before TIME: {help_text}")


def run_audit(args: argparse.Namespace, ctx: Context) -> int:
    """GET /audit-logs with the filters given."""
    filters = {
        "type": args.type, "action": args.action, "resource_id": args.resource, "actor": args.actor,
        "outcome": args.outcome, "from": args.since, "to": args.until,
    }
    show_list(ctx, "/audit-logs", filters, args, AUDIT_COLUMNS, "audit entries")
    return 0


def run_signatures(args: argparse.Namespace, ctx: Context) -> int:
    """GET /signature-logs with the filters given (`--keypair` by id or alias)."""
    keypair = args.keypair
    by_id = keypair is not None and keypair.startswith("kp_")
    filters = {
        "keypair_id": keypair if by_id else None, "keypair_alias": None if by_id else keypair,
        "status": args.status, "signer": args.signer, "from": args.since, "to": args.until,
    }
    show_list(ctx, "/signature-logs", filters, args, SIGNATURE_COLUMNS, "signature-log entries")
    return 0
