"""`rotasign keypair ...`: create, list, describe, change, suspend, refresh and delete keypairs."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from rotasign_cli.arguments import (
    add_connection_options,
    add_paging_options,
    comma_list,
    example,
    subcommands,
)
from rotasign_cli.client import Client, segment
from rotasign_cli.commands.common import add_yes, leaf
from rotasign_cli.commands.common import delete as common_delete
from rotasign_cli.commands.listing import show_list
from rotasign_cli.context import Context
from rotasign_cli.errors import CliError, UsageError
from rotasign_cli.output import Column, algorithm_label, field, note, print_json, render_fields, short_id

TYPES = ("static", "dynamic")
ALGORITHMS = ("RSA", "ECDSA", "EdDSA")
KEY_SIZES = (2048, 3072, 4096)
CURVES = ("P-256", "P-384", "P-521", "Ed25519")
CATEGORIES = ("production", "test")
STORAGES = ("hsm", "disk")
STATUSES = ("online", "offline")
ACCESSES = ("open", "restricted")

COLUMNS = (
    Column("ALIAS", field("alias")),
    Column("ID", field("id")),
    Column("TYPE", field("type")),
    Column("ALGORITHM", algorithm_label),
    Column("CATEGORY", field("category")),
    Column("STORAGE", field("storage")),
    Column("STATUS", field("status")),
    Column("ACCESS", field("access")),
    Column("GEN", field("generation")),
    Column("KEY ID", lambda kp: short_id(kp.get("key_id"))),
    Column("NEXT REFRESH", field("next_refresh_at")),
)
GENERATION_COLUMNS = (
    Column("GEN", field("generation")),
    Column("KEY ID", lambda g: short_id(g.get("key_id"))),
    Column("CREATED", field("created_at")),
    Column("RETIRED", field("retired_at")),
    Column("CERT SERIAL", lambda g: short_id((g.get("certificate") or {}).get("serial"), 16)),
    Column("CERT NOT AFTER", lambda g: (g.get("certificate") or {}).get("not_after")),
)


def register(sub: Any) -> None:
    """Add `keypair` and its commands."""
    parser = sub.add_parser(
        "keypair",
        help="create, list, describe, update, suspend, refresh and delete keypairs",
        description="Manage the account's signing keypairs. A keypair is named by its alias or its id (kp_...).",
        epilog=example("rotasign keypair ls --type dynamic"),
    )
    add_connection_options(parser)
    verbs = subcommands(parser, "keypair commands")
    _create(verbs)
    _ls(verbs)
    _desc(verbs)
    _update(verbs)
    _status_change(verbs, "suspend", "offline", "take keypairs offline: they refuse to sign")
    _status_change(verbs, "unsuspend", "online", "bring keypairs back online")
    _refresh(verbs)
    _delete(verbs)
    _generations(verbs)


def _keypair_argument(parser: Any, several: bool = False) -> None:
    if several:
        parser.add_argument("keypairs", nargs="+", metavar="KEYPAIR", help="aliases or ids, comma-separated or spaced")
    else:
        parser.add_argument("keypair", metavar="KEYPAIR", help="alias or id (kp_...)")


# -- create -------------------------------------------------------------------------------------------


def _create(verbs: Any) -> None:
    parser = leaf(
        verbs, "create", "create a keypair",
        "Create a keypair. Values left out take the service's defaults (or the keypair profile's): "
        "category production, storage disk, status online, access open, a certificate generated.",
        "rotasign keypair create release --type dynamic --algorithm ECDSA --curve P-256 --storage hsm",
        create,
    )
    parser.add_argument("alias", help="1 to 64 of A-Z a-z 0-9 . _ -, unique in the account")
    parser.add_argument("--type", choices=TYPES, help="static keeps its key; dynamic gets a new key every quarter hour")
    parser.add_argument("--algorithm", choices=ALGORITHMS, help="RSA needs --key-size, ECDSA needs --curve")
    parser.add_argument("--key-size", type=int, choices=KEY_SIZES, help="RSA key size in bits")
    parser.add_argument("--curve", choices=CURVES, help="ECDSA curve (EdDSA is always Ed25519)")
    parser.add_argument("--category", choices=CATEGORIES, help="production or test (a separate CA)")
    parser.add_argument("--storage", choices=STORAGES, help="hsm: generated on the token; disk: encrypted under KMS")
    parser.add_argument("--status", choices=STATUSES, help="offline keypairs sign only inside a release window")
    parser.add_argument("--access", choices=ACCESSES, help="restricted: only --allowed-users / --allowed-groups sign")
    parser.add_argument("--allowed-users", type=comma_list, metavar="USR,...", help="user ids that may sign")
    parser.add_argument("--allowed-groups", type=comma_list, metavar="GRP,...", help="group ids that may sign")
    parser.add_argument("--team", metavar="TEAM_ID", help="the owning team (team_...), when the account has teams")
    parser.add_argument("--keypair-profile", metavar="PROFILE_ID", help="a keypair profile (prof_...)")
    parser.add_argument("--no-certificate", action="store_true", help="do not issue a certificate for the key")
    parser.add_argument(
        "--refresh-after-sign", action="store_true", help="dynamic only: a new key after every signature (single use)"
    )


def create(args: argparse.Namespace, ctx: Context) -> int:
    """POST /keypairs with the fields given."""
    body: dict[str, Any] = {"alias": args.alias}
    optional = {
        "type": args.type, "algorithm": args.algorithm, "key_size": args.key_size, "curve": args.curve,
        "category": args.category, "storage": args.storage, "status": args.status, "access": args.access,
        "allowed_users": args.allowed_users, "allowed_groups": args.allowed_groups, "team_id": args.team,
        "profile_id": args.keypair_profile,
    }
    body.update({name: value for name, value in optional.items() if value is not None})
    if args.no_certificate:
        body["generate_certificate"] = False
    if args.refresh_after_sign:
        body["refresh_after_sign"] = True
    keypair = ctx.client().call("POST", "/keypairs", body)
    if ctx.json:
        print_json(keypair)
    else:
        print(f"Created keypair {describe(keypair)}")
    return 0


def describe(keypair: dict[str, Any]) -> str:
    """One line: alias, id, type, algorithm, storage, status, generation, key id, next refresh."""
    parts = [
        f"{keypair.get('alias')} ({keypair.get('id')}): {keypair.get('type')} {algorithm_label(keypair)}",
        f"{keypair.get('storage')}, {keypair.get('status')}",
        f"generation {keypair.get('generation')}, key {short_id(keypair.get('key_id'))}",
    ]
    if keypair.get("next_refresh_at"):
        parts.append(f"next refresh {keypair['next_refresh_at']}")
    return ", ".join(parts)


# -- ls / desc ----------------------------------------------------------------------------------------


def _ls(verbs: Any) -> None:
    parser = leaf(
        verbs, "ls", "list keypairs", "List keypairs, newest first, as a table.",
        "rotasign keypair ls --type dynamic --storage hsm --all", ls,
    )
    parser.add_argument("--alias", help="only the keypair with this alias")
    parser.add_argument("--type", choices=TYPES)
    parser.add_argument("--status", choices=STATUSES)
    parser.add_argument("--storage", choices=STORAGES)
    parser.add_argument("--algorithm", choices=ALGORITHMS)
    parser.add_argument("--category", choices=CATEGORIES)
    add_paging_options(parser)


def ls(args: argparse.Namespace, ctx: Context) -> int:
    """GET /keypairs, following pages."""
    filters = {name: getattr(args, name) for name in ("alias", "type", "status", "storage", "algorithm", "category")}
    show_list(ctx, "/keypairs", filters, args, COLUMNS, "keypairs")
    return 0


def _desc(verbs: Any) -> None:
    parser = leaf(
        verbs, "desc", "describe one keypair", "Show every field of a keypair and its current certificate.",
        "rotasign keypair desc release", desc,
    )
    _keypair_argument(parser)


def desc(args: argparse.Namespace, ctx: Context) -> int:
    """GET /keypairs/{keypair}."""
    keypair = ctx.client().call("GET", f"/keypairs/{segment(args.keypair)}")
    if ctx.json:
        print_json(keypair)
        return 0
    certificate = keypair.get("certificate") or {}
    print(render_fields([
        ("alias", keypair.get("alias")),
        ("id", keypair.get("id")),
        ("type", keypair.get("type")),
        ("algorithm", algorithm_label(keypair)),
        ("category", keypair.get("category")),
        ("storage", keypair.get("storage")),
        ("status", keypair.get("status")),
        ("access", keypair.get("access")),
        ("allowed users", keypair.get("allowed_users")),
        ("allowed groups", keypair.get("allowed_groups")),
        ("team", keypair.get("team_id")),
        ("profile", keypair.get("profile_id")),
        ("generate certificate", keypair.get("generate_certificate")),
        ("refresh after sign", keypair.get("refresh_after_sign")),
        ("generation", keypair.get("generation")),
        ("key id", keypair.get("key_id")),
        ("certificate", "yes" if certificate else "no"),
        ("  serial", certificate.get("serial")),
        ("  issuer", certificate.get("issuer")),
        ("  valid", f"{certificate.get('not_before')} to {certificate.get('not_after')}" if certificate else None),
        ("created", f"{keypair.get('created_at')} by {keypair.get('created_by')}"),
        ("refreshed", keypair.get("refreshed_at")),
        ("next refresh", keypair.get("next_refresh_at")),
    ]))
    return 0


# -- update / suspend / unsuspend ---------------------------------------------------------------------


def _update(verbs: Any) -> None:
    parser = leaf(
        verbs, "update", "change alias, status, access or allowed users/groups",
        "Change a keypair. A rename keeps the certificate (its subject keeps the old alias). "
        "An empty list (--allowed-users '') clears it.",
        "rotasign keypair update release --access restricted --allowed-users usr_01ABC,usr_01DEF", update,
    )
    _keypair_argument(parser)
    parser.add_argument("--alias", dest="new_alias", metavar="NEW_ALIAS", help="rename the keypair")
    parser.add_argument("--status", choices=STATUSES)
    parser.add_argument("--access", choices=ACCESSES)
    parser.add_argument("--allowed-users", type=comma_list, metavar="USR,...")
    parser.add_argument("--allowed-groups", type=comma_list, metavar="GRP,...")


def update(args: argparse.Namespace, ctx: Context) -> int:
    """PATCH /keypairs/{keypair} with the fields given."""
    changes = {
        "alias": args.new_alias, "status": args.status, "access": args.access,
        "allowed_users": args.allowed_users, "allowed_groups": args.allowed_groups,
    }
    body = {name: value for name, value in changes.items() if value is not None}
    if not body:
        raise UsageError(
            "rotasign keypair update: nothing to change: give --alias, --status, --access, --allowed-users "
            "or --allowed-groups."
        )
    keypair = ctx.client().call("PATCH", f"/keypairs/{segment(args.keypair)}", body)
    if ctx.json:
        print_json(keypair)
    else:
        print(f"Updated keypair {describe(keypair)}")
    return 0


def _status_change(verbs: Any, verb: str, status: str, help_text: str) -> None:
    parser = leaf(
        verbs, verb, help_text, f"Set each keypair's status to {status}.", f"rotasign keypair {verb} release,nightly",
        lambda args, ctx: for_each(args, ctx, lambda client, ref: client.call(
            "PATCH", f"/keypairs/{segment(ref)}", {"status": status}), verb.capitalize() + "ed"),
    )
    _keypair_argument(parser, several=True)


def _refresh(verbs: Any) -> None:
    parser = leaf(
        verbs, "refresh", "replace dynamic keypairs' keys and certificates now",
        "Refresh dynamic keypairs now: each gets a new key, a new certificate and a newer generation.",
        "rotasign keypair refresh release,nightly",
        lambda args, ctx: for_each(args, ctx, lambda client, ref: client.call(
            "POST", f"/keypairs/{segment(ref)}/refresh"), "Refreshed"),
    )
    _keypair_argument(parser, several=True)


def for_each(
    args: argparse.Namespace, ctx: Context, action: Callable[[Client, str], dict[str, Any]], verb: str
) -> int:
    """Run `action` on every keypair named; report each; raise the first failure after trying all."""
    refs = [ref for text in args.keypairs for ref in comma_list(text)]
    if not refs:
        raise UsageError("Name at least one keypair.")
    client = ctx.client()
    done: list[dict[str, Any]] = []
    failures: list[tuple[str, CliError]] = []
    for ref in refs:
        try:
            keypair = action(client, ref)
        except CliError as exc:
            failures.append((ref, exc))
            note(f"rotasign: error: {ref}: {exc.message}")
            continue
        done.append(keypair)
        if not ctx.json:
            print(f"{verb} keypair {describe(keypair)}")
    if ctx.json:
        print_json(done)
    if failures:
        first = failures[0][1]
        if len(refs) == 1:
            raise first
        failed = CliError(f"{len(failures)} of {len(refs)} keypairs failed.")
        failed.exit_code = first.exit_code
        raise failed
    return 0


# -- delete / generations -----------------------------------------------------------------------------


def _delete(verbs: Any) -> None:
    parser = leaf(
        verbs, "delete", "delete a keypair (its private key is destroyed for good)",
        "Delete a keypair: its private key is destroyed at once and for good; its generations and log "
        "entries stay, so its signatures still verify. Asks for confirmation unless --yes.",
        "rotasign keypair delete old-release --yes", delete,
    )
    _keypair_argument(parser)
    add_yes(parser)


def delete(args: argparse.Namespace, ctx: Context) -> int:
    """GET then DELETE /keypairs/{keypair}, after confirmation."""
    return common_delete(args, ctx, "keypair", "/keypairs", args.keypair,
                         "; its generations and log entries are kept", name_field="alias",
                         also=" and destroy its private key")


def _generations(verbs: Any) -> None:
    parser = leaf(
        verbs, "generations", "list a keypair's generations (keys and certificates)",
        "Every generation of a keypair, newest first: its key id, certificate and when it was retired. "
        "A deleted keypair's generations stay readable by its id.",
        "rotasign keypair generations release --limit 5", generations,
    )
    _keypair_argument(parser)
    add_paging_options(parser)


def generations(args: argparse.Namespace, ctx: Context) -> int:
    """GET /keypairs/{keypair}/generations, following pages."""
    show_list(ctx, f"/keypairs/{segment(args.keypair)}/generations", {}, args, GENERATION_COLUMNS, "generations")
    return 0
