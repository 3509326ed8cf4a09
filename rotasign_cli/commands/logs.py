"""`rotasign logs ...`: the audit and signature logs as tables, and checks of the account's transparency log."""

from __future__ import annotations

import argparse
import base64
import re
from pathlib import Path
from typing import Any

from rotasign_cli import bundle, logproof, transparency
from rotasign_cli import trust as trust_material
from rotasign_cli.arguments import (
    add_connection_options,
    add_json_option,
    add_paging_options,
    example,
    subcommands,
    time_value,
)
from rotasign_cli.client import Client, segment
from rotasign_cli.commands import trust as trust_command
from rotasign_cli.commands.listing import show_list
from rotasign_cli.context import Context
from rotasign_cli.errors import UsageError, VerificationFailed
from rotasign_cli.files import read_bytes, write_atomically
from rotasign_cli.output import Column, field, print_json, render_table

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
CHECK_COLUMNS = (
    Column("CHECK", field("name")),
    Column("RESULT", lambda check: "ok" if check["ok"] else "FAILED"),
    Column("DETAIL", field("detail")),
)
LOG_PATHS = {"signatures": "/signature-logs", "audit": "/audit-logs"}
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
        help="the audit log and the signature log, and their transparency proofs",
        description=(
            "Read the account's logs, newest first, as tables (--json for scripts), and check the account's "
            "transparency log: each log is a Merkle tree whose checkpoints the account's log key signs "
            "(permission view_audit_log)."
        ),
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
    _transparency(kinds)


def _transparency(kinds: Any) -> None:
    checkpoint = kinds.add_parser(
        "checkpoint",
        help="the latest signed checkpoint, checked against the account's log key",
        description=(
            "Fetch the log's latest checkpoint, check its signature with the account's log key (from the "
            "trust route, or --trust), print its size and root, and save it with --output: a later "
            "`rotasign logs verify --checkpoint FILE` proves that the log only grew since."
        ),
        epilog=example("rotasign logs checkpoint --output checkpoint-2026-12-03.txt"),
    )
    _log_options(checkpoint)
    checkpoint.add_argument("--output", "-o", type=Path, metavar="FILE", help="save the checkpoint (text)")
    checkpoint.set_defaults(func=run_checkpoint)

    proof = kinds.add_parser(
        "proof",
        help="save an entry's inclusion proof (for verify --require-log)",
        description=(
            "Fetch an entry's inclusion proof, check it offline (log key, root, and for --bundle that the "
            "entry is the bundle's signature) and save it. With --bundle, the entry is the bundle's "
            "signature_log_id and the proof goes beside the bundle as FILE.rsig.proof.json, where "
            "`rotasign verify --require-log` finds it: hand it on with the file and the bundle, and anyone "
            "can check the signature's inclusion without an API key. An entry joins the log about "
            "ROTASIGN_MAX_REQUEST_SECONDS + 5 s after it is written, at the next scheduled tick."
        ),
        epilog=example("rotasign logs proof --bundle dist/app.tar.gz.rsig.json",
                       "rotasign logs proof log_01JF... --log audit --output proof.json"),
    )
    target = proof.add_mutually_exclusive_group(required=True)
    target.add_argument("entry", nargs="?", metavar="ENTRY_ID", help="a log entry id (log_...)")
    target.add_argument("--bundle", type=Path, metavar="B", help="the bundle whose signature to prove")
    _log_options(proof)
    proof.add_argument("--output", "-o", type=Path, metavar="FILE",
                       help="where to write it (default: beside the bundle; without --bundle: stdout)")
    proof.set_defaults(func=run_proof)

    check = kinds.add_parser(
        "verify",
        help="check the log: its checkpoint, its growth since a saved one, entries' inclusion",
        description=(
            "Check, trusting only the account's log key: the latest checkpoint's signature; with --checkpoint, "
            "that the log only grew since that saved checkpoint (an RFC 9162 consistency proof: no entry "
            "removed, altered or reordered); with --entry, each entry's inclusion. --save keeps the latest "
            "checkpoint for the next run. Exits 0 only when all hold, 1 when one fails."
        ),
        epilog=example("rotasign logs verify --checkpoint last.txt --save last.txt --entry log_01JF..."),
    )
    _log_options(check)
    check.add_argument("--checkpoint", type=Path, metavar="FILE", help="an older checkpoint saved before")
    check.add_argument("--entry", action="append", default=[], metavar="ENTRY_ID",
                       help="an entry to prove included (repeatable)")
    check.add_argument("--save", type=Path, metavar="FILE", help="write the latest checkpoint here once verified")
    check.set_defaults(func=run_verify)


def _log_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--log", choices=tuple(LOG_PATHS), default="signatures",
                        help="the signature log (default) or the audit log")
    parser.add_argument("--trust", type=Path, metavar="PATH",
                        help="pin the log key: trust.json (or its folder) from `rotasign trust get` "
                             "(default: the API key's account's trust route)")
    add_json_option(parser)
    add_connection_options(parser)


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


def _log_key(args: argparse.Namespace, client: Client) -> tuple[transparency.LogKey, str | None]:
    """The log key of the chosen log, from --trust or the API key's account; and the account id."""
    if args.trust is not None:
        _, answer = trust_material.load_json_file(args.trust, include_test=False)
    else:
        answer = trust_command.fetch(client, trust_command.own_account_id(client))
    try:
        return transparency.LogKey.from_trust(answer, args.log), answer.get("account_id")
    except transparency.VerificationError as exc:
        raise VerificationFailed(f"the trust material cannot check the {args.log} log: {exc}.") from exc


def _verified(what: str, check: Any) -> Any:
    try:
        return check()
    except transparency.VerificationError as exc:
        raise VerificationFailed(f"{what}: {exc}.") from exc


def run_checkpoint(args: argparse.Namespace, ctx: Context) -> int:
    """GET /{log}/checkpoint; check its signature; print or save it."""
    client = ctx.client()
    key, _ = _log_key(args, client)
    text = client.text(f"{LOG_PATHS[args.log]}/checkpoint")
    checkpoint = _verified("the latest checkpoint", lambda: transparency.verify_checkpoint(text, key))
    if args.output is not None:
        write_atomically(args.output, text.encode("utf-8"))
    summary = {"origin": checkpoint.origin, "size": checkpoint.size, "root": _b64(checkpoint.root),
               "saved": str(args.output) if args.output is not None else None}
    if ctx.json:
        print_json({**summary, "checkpoint": text})
    else:
        saved = f"; saved to {args.output}" if args.output is not None else ""
        print(f"{checkpoint.origin}: {checkpoint.size} entries, root {summary['root']}, signed by the account's "
              f"log key{saved}")
    return 0


def run_proof(args: argparse.Namespace, ctx: Context) -> int:
    """GET /{log}/{id}/proof; check it offline; save it."""
    held = None
    if args.bundle is not None:
        if args.log != "signatures":
            raise UsageError("--bundle goes with the signature log.")
        try:
            held = bundle.Bundle.from_json(read_bytes(args.bundle))
        except bundle.BundleError as exc:
            raise UsageError(f"{args.bundle} is not a valid bundle: {exc}") from exc
        if not held.signature_log_id:
            raise UsageError(f"{args.bundle} names no signature-log entry (signature_log_id).")
    entry_id = held.signature_log_id if held is not None else args.entry
    assert entry_id is not None
    client = ctx.client()
    key, account_id = _log_key(args, client)
    proof = client.call("GET", f"{LOG_PATHS[args.log]}/{segment(entry_id)}/proof")
    checkpoint = _verified(f"the proof of {entry_id}", lambda: transparency.verify_inclusion(proof, key))
    entry = _verified(f"the proof of {entry_id}", lambda: logproof.proven_entry(proof))
    if entry.get("id") != entry_id:
        raise VerificationFailed(f"the proof of {entry_id}: it proves entry {entry.get('id')}.")
    if held is not None and entry.get("signature") != _b64(held.signature):
        raise VerificationFailed(f"the proof of {entry_id}: the entry is not the bundle's signature.")
    output = args.output or (logproof.path_for_bundle(args.bundle) if args.bundle is not None else None)
    if output is None:
        print_json(logproof.document(proof, log=args.log, entry_id=entry_id, account_id=account_id))
        return 0
    logproof.save(output, proof, log=args.log, entry_id=entry_id, account_id=account_id)
    if ctx.json:
        print_json({"written": str(output), "entry_id": entry_id, "leaf_index": proof.get("leaf_index"),
                    "tree_size": checkpoint.size, "origin": checkpoint.origin})
    else:
        print(f"Wrote {output}: entry {entry_id} is leaf {proof.get('leaf_index')} of {checkpoint.size} in "
              f"{checkpoint.origin}")
    return 0


def run_verify(args: argparse.Namespace, ctx: Context) -> int:
    """Check the latest checkpoint, its consistency with a saved one, and entries' inclusion."""
    client = ctx.client()
    key, _ = _log_key(args, client)
    path = LOG_PATHS[args.log]
    old_text = read_bytes(args.checkpoint).decode("utf-8", "replace") if args.checkpoint is not None else None
    rows: list[dict[str, Any]] = []

    def check(name: str, run: Any) -> Any:
        try:
            detail, value = run()
        except transparency.VerificationError as exc:
            rows.append({"name": name, "ok": False, "detail": str(exc)})
            return None
        rows.append({"name": name, "ok": True, "detail": detail})
        return value

    text = client.text(f"{path}/checkpoint")
    latest = check("checkpoint", lambda: _describe(transparency.verify_checkpoint(text, key), "latest"))
    if old_text is not None and latest is not None:
        check("consistency", lambda: _consistency(client, path, old_text, text, latest, key))
    for entry_id in args.entry:
        check(f"entry {entry_id}", lambda entry_id=entry_id: _inclusion(client, path, entry_id, key))
    verified = all(row["ok"] for row in rows)
    if verified and args.save is not None:
        write_atomically(args.save, text.encode("utf-8"))
    if ctx.json:
        print_json({"log": args.log, "verified": verified, "checks": rows, "checkpoint": text})
    else:
        print(render_table(CHECK_COLUMNS, rows))
    if not verified:
        failed = ", ".join(row["name"] for row in rows if not row["ok"])
        raise VerificationFailed(f"the {args.log} log did not verify ({failed}).")
    if not ctx.json:
        print(f"Verified: the {args.log} log" + (f"; saved its checkpoint to {args.save}" if args.save else ""))
    return 0


def _describe(checkpoint: transparency.Checkpoint, which: str) -> tuple[str, transparency.Checkpoint]:
    detail = f"{which}: {checkpoint.size} entries, root {_b64(checkpoint.root)[:16]}…, signed by the log key"
    return detail, checkpoint


def _consistency(client: Client, path: str, old_text: str, new_text: str, new: transparency.Checkpoint,
                 key: transparency.LogKey) -> tuple[str, None]:
    """`new` is `new_text`, already verified by the `checkpoint` check."""
    old = transparency.verify_checkpoint(old_text, key)
    if old.size > new.size:
        raise transparency.VerificationError(f"the saved checkpoint ({old.size}) is larger than the latest "
                                             f"({new.size}): the log shrank")
    proof = client.call("GET", f"{path}/consistency", params={"from": old.size, "to": new.size})
    transparency.verify_checkpoints(old_text, new_text, proof, key)
    return f"the log grew from {old.size} to {new.size} entries without changing the first {old.size}", None


def _inclusion(client: Client, path: str, entry_id: str, key: transparency.LogKey) -> tuple[str, None]:
    entry = client.call("GET", f"{path}/{segment(entry_id)}")
    proof = client.call("GET", f"{path}/{segment(entry_id)}/proof")
    checkpoint = transparency.verify_inclusion(proof, key, entry)
    return f"leaf {proof.get('leaf_index')} of {checkpoint.size}", None


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")
