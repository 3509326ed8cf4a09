"""`rotasign keypair-profile ...`: named presets of keypair parameters, fixed or customizable."""

from __future__ import annotations

import argparse
from typing import Any

from rotasign_cli.arguments import add_paging_options, comma_list
from rotasign_cli.client import segment
from rotasign_cli.commands import common
from rotasign_cli.commands.keypair import ALGORITHMS, CATEGORIES, CURVES, KEY_SIZES, STATUSES, STORAGES, TYPES
from rotasign_cli.context import Context
from rotasign_cli.output import Column, algorithm_label, field

MODES = ("fixed", "customizable")
PRESETS = ("type", "algorithm", "key_size", "curve", "category", "storage", "status")
COLUMNS = (
    Column("NAME", field("name"), max_width=32),
    Column("ID", field("id")),
    Column("MODE", field("mode")),
    Column("TYPE", field("type")),
    Column("ALGORITHM", lambda p: algorithm_label(p) if p.get("algorithm") else None),
    Column("CATEGORY", field("category")),
    Column("STORAGE", field("storage")),
    Column("STATUS", field("status")),
    Column("TEAMS", field("team_ids")),
)


def presets(text: str) -> list[str]:
    """`type,curve`: names of the keypair fields a profile can set."""
    names = comma_list(text)
    unknown = [n for n in names if n not in PRESETS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(PRESETS)}")
    return names


def register(sub: Any) -> None:
    """Add `keypair-profile`."""
    verbs = common.noun(
        sub, "keypair-profile", "keypair profiles: presets for keypair create (manage_profiles)",
        "A keypair profile presets keypair fields. `fixed`: its values are imposed and a request may not "
        "contradict them; `customizable`: they are defaults. A field the profile leaves unset is the "
        "request's. Use one with `rotasign keypair create --keypair-profile ID`.",
        "rotasign keypair-profile create hsm-ecdsa --mode fixed --algorithm ECDSA --curve P-256 --storage hsm",
    )
    create = common.leaf(verbs, "create", "create a profile", "Create a keypair profile.",
                         "rotasign keypair-profile create release --mode customizable --type dynamic", run_create)
    create.add_argument("name", help="1 to 100 characters")
    create.add_argument("--mode", choices=MODES, required=True, help="fixed: imposed; customizable: defaults")
    _fields(create)
    ls = common.leaf(verbs, "ls", "list profiles", "The account's keypair profiles, newest first.",
                     "rotasign keypair-profile ls",
                     lambda args, ctx: common.ls(args, ctx, "/keypair-profiles", COLUMNS, "keypair profiles"))
    add_paging_options(ls)
    desc = common.leaf(verbs, "desc", "describe a profile", "Every field of a keypair profile.",
                       "rotasign keypair-profile desc prof_01...",
                       lambda args, ctx: common.desc(ctx, "/keypair-profiles", args.ident, _pairs))
    desc.add_argument("ident", metavar="PROFILE_ID")
    update = common.leaf(
        verbs, "update", "change a profile (keypairs made with it keep theirs)",
        "Change a profile; keypairs made with it keep their parameters. --unset leaves fields to requests; "
        "--teams replaces the teams it is allocated to ('' allocates it to none).",
        "rotasign keypair-profile update prof_01... --status offline --unset curve", run_update,
    )
    update.add_argument("ident", metavar="PROFILE_ID")
    update.add_argument("--name", help="1 to 100 characters")
    update.add_argument("--mode", choices=MODES)
    _fields(update)
    update.add_argument("--unset", type=presets, metavar="FIELD,...", help="of " + ", ".join(PRESETS))
    delete = common.leaf(verbs, "delete", "delete a profile", "Delete a keypair profile. Asks unless --yes.",
                         "rotasign keypair-profile delete prof_01... --yes",
                         lambda args, ctx: common.delete(args, ctx, "keypair profile", "/keypair-profiles",
                                                         args.ident, ""))
    delete.add_argument("ident", metavar="PROFILE_ID")
    common.add_yes(delete)


def _fields(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--type", choices=TYPES)
    parser.add_argument("--algorithm", choices=ALGORITHMS)
    parser.add_argument("--key-size", type=int, choices=KEY_SIZES, help="RSA key size in bits")
    parser.add_argument("--curve", choices=CURVES)
    parser.add_argument("--category", choices=CATEGORIES)
    parser.add_argument("--storage", choices=STORAGES)
    parser.add_argument("--status", choices=STATUSES)
    parser.add_argument("--teams", type=comma_list, metavar="TEAM,...", help="team ids it is allocated to")


def _body(args: argparse.Namespace) -> dict[str, Any]:
    values = {name: getattr(args, name) for name in PRESETS}
    values.update(name=args.name, mode=args.mode, team_ids=args.teams)
    body = common.body_of(values)
    for name in getattr(args, "unset", None) or ():
        body[name] = None
    return body


def _pairs(profile: dict[str, Any]) -> list[tuple[str, Any]]:
    return [("name", profile.get("name")), ("id", profile.get("id")), ("mode", profile.get("mode")),
            *((name.replace("_", " "), profile.get(name)) for name in PRESETS),
            ("teams", profile.get("team_ids")), ("created", profile.get("created_at"))]


def _line(verb: str, profile: dict[str, Any]) -> str:
    sets = ", ".join(f"{n}={profile[n]}" for n in PRESETS if profile.get(n) is not None) or "nothing"
    return f"{verb} keypair profile {profile.get('name')} ({profile.get('id')}), {profile.get('mode')}: {sets}"


def run_create(args: argparse.Namespace, ctx: Context) -> int:
    """POST /keypair-profiles."""
    profile = ctx.client().call("POST", "/keypair-profiles", _body(args))
    common.show(ctx, profile, _pairs(profile), _line("Created", profile))
    return 0


def run_update(args: argparse.Namespace, ctx: Context) -> int:
    """PATCH /keypair-profiles/{id}."""
    body = common.require_change(_body(args), "rotasign keypair-profile update",
                                 "--name, --mode, a keypair field, --unset or --teams")
    profile = ctx.client().call("PATCH", f"/keypair-profiles/{segment(args.ident)}", body)
    common.show(ctx, profile, _pairs(profile), _line("Updated", profile))
    return 0
